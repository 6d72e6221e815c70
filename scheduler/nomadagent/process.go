package nomadagent

import (
	"fmt"
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
