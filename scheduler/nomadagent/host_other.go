//go:build !linux

package nomadagent

import "syscall"

// Elsewhere than Linux there is no /proc to find the agent's descendants,
// and the Nomad client leaves no mounts or cgroups; only the agent itself is
// stopped.

type proc struct{ pid int }

func descendants(int) []proc { return nil }

func (p proc) alive() bool { return syscall.Kill(p.pid, 0) == nil }

func (p proc) kill() { _ = syscall.Kill(p.pid, syscall.SIGKILL) }

func cleanupHost(string, []string) []error { return nil }
