package nomadagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// What Stop does to end a Nomad agent's tasks and clean up after it, for
// other supervisors of a Nomad agent (agent/nomadclient runs a contributor's
// Nomad client).

// Processes are processes found below an agent at one moment, each
// identified by PID and start time so a recycled PID is never signalled.
type Processes []proc

// Descendants returns every process below pid in the process tree (none
// elsewhere than Linux). Take it before stopping the agent: its executors
// run in their own sessions and are re-parented when it exits.
func Descendants(pid int) Processes { return Processes(descendants(pid)) }

// Kill sends SIGKILL to those of ps still running and waits up to wait for
// them to go; it returns an error for each survivor.
func (ps Processes) Kill(wait time.Duration) []error {
	for _, p := range ps {
		p.kill()
	}
	var errs []error
	deadline := time.Now().Add(wait)
	for _, p := range ps {
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p.alive() {
			errs = append(errs, fmt.Errorf("process %d survived SIGKILL", p.pid))
		}
	}
	return errs
}

// CleanupHost removes what a Nomad client can leave behind when it does not
// shut down cleanly: mounts at or below dir and the cgroups of allocIDs'
// tasks.
func CleanupHost(dir string, allocIDs []string) []error { return cleanupHost(dir, allocIDs) }

// Env is this process's environment without AWS_CA_BUNDLE, which a Nomad
// agent must not see (see the package documentation).
func Env() []string { return agentEnv() }

// ProcessesUnder lists running processes whose command line or working
// directory mentions dir, as "PID command line": what an agent whose
// directory is dir may have left running (executors, tasks).
func ProcessesUnder(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.Contains(string(cmdline), dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}
