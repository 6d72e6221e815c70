//go:build unix

package benchmark

import (
	"fmt"
	"syscall"
)

// mapBuffer maps size bytes of anonymous memory outside the Go heap, so
// that unmapping returns it to the system at once (a heap buffer would stay
// resident until the runtime scavenges it, and raise the heap's GC target).
func mapBuffer(size int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("benchmark: map %d MB: %w", size>>20, err)
	}
	return b, nil
}

func unmapBuffer(b []byte) { _ = syscall.Munmap(b) }
