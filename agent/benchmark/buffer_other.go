//go:build !unix

package benchmark

func mapBuffer(size int) ([]byte, error) { return make([]byte, size), nil }

func unmapBuffer([]byte) {}
