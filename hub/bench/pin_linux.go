package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// pinTree binds process pid, every thread of it and every process below it
// to the CPUs in cpus (a taskset list, e.g. "0"). Threads and processes
// created later inherit the binding from their parent.
func pinTree(pid int, cpus string) error {
	for _, p := range append([]int{pid}, descendantsOf(pid)...) {
		out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(p)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("bench: taskset %s on %d: %v: %s", cpus, p, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// descendantsOf lists the processes below pid, from /proc.
func descendantsOf(pid int) []int {
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		p, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		if fields, ok := statFields(p); ok && len(fields) >= 2 {
			parent[p], _ = strconv.Atoi(fields[1])
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// pinSplit puts Nomad on CPU 0 and this process (the hub and the
// benchmark's clients) and PostgreSQL on CPU 1: the shape of a deployment
// where the hub and its database run beside, not on, the Nomad servers.
func pinSplit(nomadPID, postgresPID int) error {
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("bench: -pin needs two CPUs; this machine has %d", runtime.NumCPU())
	}
	// Nomad and PostgreSQL are this process's children: pin this
	// process's tree first, then take Nomad's out of it.
	if err := pinTree(os.Getpid(), "1"); err != nil {
		return err
	}
	if err := pinTree(postgresPID, "1"); err != nil {
		return err
	}
	if err := pinTree(nomadPID, "0"); err != nil {
		return err
	}
	for _, want := range []struct {
		pid  int
		what string
		cpus string
	}{{nomadPID, "Nomad", "0"}, {postgresPID, "PostgreSQL", "1"}, {os.Getpid(), "the hub", "1"}} {
		got, err := allowedCPUs(want.pid)
		if err != nil {
			return err
		}
		if got != want.cpus {
			return fmt.Errorf("bench: %s (process %d) may run on CPUs %s after pinning, not only %s", want.what, want.pid, got, want.cpus)
		}
	}
	return nil
}

// allowedCPUs is the CPU list process pid may run on (its
// Cpus_allowed_list, e.g. "0" or "0-1").
func allowedCPUs(pid int) (string, error) { return procStatusField(pid, "Cpus_allowed_list") }
