package nomad

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// CheckNamespace is the hub's own namespace for spot checks (hub/contrib):
// no renter's, since it does not start with the renters' prefix, so what
// runs there is never billed, metered, counted as demand or shown to a
// renter.
const CheckNamespace = "spiceroute-checks"

// CheckTask is the name of a spot check's one task.
const CheckTask = "check"

// ErrCheckNotRun says that a spot check did not run to its end: it could
// not be placed on the node, the node went away, the task could not start,
// or it did not finish in time. None of that is the result the check asked
// for, so none of it is held against the contributor.
var ErrCheckNotRun = errors.New("the check did not run")

// CheckRun is a spot check that ran: what its task wrote to stdout and how
// it exited.
type CheckRun struct {
	AllocID  string
	ExitCode int
	Stdout   string
}

// EnsureCheckNamespace creates the spot checks' namespace if it does not
// exist.
func (s *Scheduler) EnsureCheckNamespace(ctx context.Context) error {
	if strings.HasPrefix(CheckNamespace, s.cfg.NamespacePrefix) {
		// Checks would then pass for a renter's jobs, and be billed.
		return fmt.Errorf("nomad: the renters' namespace prefix %q covers the spot checks' namespace %s", s.cfg.NamespacePrefix, CheckNamespace)
	}
	if _, ok := s.namespaces.Load("\x00checks"); ok {
		return nil
	}
	_, err := s.c.Namespaces().Register(&api.Namespace{Name: CheckNamespace, Description: "SpiceRoute spot checks of contributors' machines (the hub's own, never billed)",
		Meta: map[string]string{"spiceroute.role": "spot-checks"}}, s.write(ctx, ""))
	if err != nil {
		return fmt.Errorf("nomad: namespace %s: %w", CheckNamespace, err)
	}
	// Renters' names are valid names (auth.ValidName), which never hold a
	// NUL: the key cannot collide with a renter's.
	s.namespaces.Store("\x00checks", true)
	return nil
}

// CheckJob is the batch job that runs script with /bin/sh -c on one node
// of the hub's pool: the exec driver, tiny resources, no restart and no
// reschedule, so that what comes back is what that node computed once.
func (s *Scheduler) CheckJob(jobID, nodeID, script string) *api.Job {
	j := api.NewBatchJob(jobID, jobID, "", 50)
	j.Region = nil // Canonicalize's default, as for renters' jobs
	ns, pool := CheckNamespace, s.cfg.NodePool
	j.Namespace, j.NodePool = &ns, &pool
	j.Datacenters = []string{"*"}
	j.Constrain(api.NewConstraint("${node.unique.id}", "=", nodeID))
	j.Meta = map[string]string{"spiceroute.spot_check": "true"}
	t := api.NewTask(CheckTask, "exec")
	t.Config = map[string]any{"command": "/bin/sh", "args": []string{"-c", script}}
	t.Resources = &api.Resources{CPU: ptr(20), MemoryMB: ptr(32)}
	t.KillTimeout = ptr(time.Second)
	t.LogConfig = &api.LogConfig{MaxFiles: ptr(1), MaxFileSizeMB: ptr(1)}
	g := api.NewTaskGroup("check", 1)
	g.RestartPolicy = &api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
	g.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
	g.EphemeralDisk = &api.EphemeralDisk{SizeMB: ptr(10)}
	g.AddTask(t)
	j.AddTaskGroup(g)
	j.Canonicalize()
	return j
}

// RunCheck runs a spot check: it registers CheckJob in CheckNamespace,
// waits up to timeout for its allocation to end, reads the task's stdout
// and purges the job (also when it fails). It returns an error wrapping
// ErrCheckNotRun when the check did not run to its end, and a CheckRun
// when the task ran and exited, whatever its exit code.
func (s *Scheduler) RunCheck(ctx context.Context, jobID, nodeID, script string, timeout time.Duration) (CheckRun, error) {
	if err := s.EnsureCheckNamespace(ctx); err != nil {
		return CheckRun{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, _, err := s.c.Jobs().Register(s.CheckJob(jobID, nodeID, script), s.write(ctx, CheckNamespace))
	if err != nil {
		return CheckRun{}, fmt.Errorf("nomad: register check %s: %w", jobID, err)
	}
	defer func() {
		// Purged with a context of its own: the check's may be over. The
		// purge stops the task if it still runs.
		pctx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		s.c.Jobs().Deregister(jobID, true, s.write(pctx, CheckNamespace))
	}()
	alloc, err := s.awaitCheck(ctx, jobID, resp.EvalID)
	if err != nil {
		return CheckRun{}, err
	}
	code, ran := exitCode(alloc.TaskStates[CheckTask])
	if !ran {
		return CheckRun{}, fmt.Errorf("nomad: check %s on node %s: task did not start (%s): %w", jobID, nodeID, taskFailure(alloc.TaskStates[CheckTask]), ErrCheckNotRun)
	}
	out, err := s.checkStdout(ctx, alloc.ID)
	if err != nil {
		return CheckRun{}, fmt.Errorf("nomad: check %s on node %s: reading its output: %v: %w", jobID, nodeID, err, ErrCheckNotRun)
	}
	return CheckRun{AllocID: alloc.ID, ExitCode: code, Stdout: out}, nil
}

// checkPoll is how often RunCheck looks at a check's allocation.
const checkPoll = 200 * time.Millisecond

// awaitCheck waits for the check's allocation to end and returns it in
// full, or an ErrCheckNotRun error when it was not placed, was lost or
// ctx ended first.
func (s *Scheduler) awaitCheck(ctx context.Context, jobID, evalID string) (*api.Allocation, error) {
	q := s.query(ctx, CheckNamespace)
	for {
		as, _, err := s.c.Jobs().Allocations(jobID, true, q)
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("nomad: allocations of check %s: %w", jobID, err)
		}
		for _, a := range as {
			switch a.ClientStatus {
			case api.AllocClientStatusComplete, api.AllocClientStatusFailed:
				full, _, err := s.c.Allocations().Info(a.ID, q)
				if err != nil {
					return nil, fmt.Errorf("nomad: check %s: alloc %s: %w", jobID, a.ID, err)
				}
				return full, nil
			case api.AllocClientStatusLost, api.AllocClientStatusUnknown:
				return nil, fmt.Errorf("nomad: check %s: allocation %s on node %s is %s: %w", jobID, a.ID, a.NodeID, a.ClientStatus, ErrCheckNotRun)
			}
		}
		if len(as) == 0 && evalID != "" {
			// Nothing placed: once the scheduler has answered, a
			// placement failure is final for the check (it does not wait
			// for the node to come back).
			ev, _, err := s.c.Evaluations().Info(evalID, q)
			if err == nil && ev.Status == api.EvalStatusComplete && len(ev.FailedTGAllocs) > 0 {
				return nil, fmt.Errorf("nomad: check %s could not be placed: %s: %w", jobID, unplacedReason(ev.FailedTGAllocs), ErrCheckNotRun)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nomad: check %s did not finish in time: %w", jobID, ErrCheckNotRun)
		case <-time.After(checkPoll):
		}
	}
}

// unplacedReason says in a few words why Nomad placed nothing.
func unplacedReason(failed map[string]*api.AllocationMetric) string {
	var parts []string
	for _, m := range failed {
		if m == nil {
			continue
		}
		if m.NodesEvaluated == 0 {
			parts = append(parts, "no eligible node in the pool")
		}
		for c, n := range m.ConstraintFiltered {
			parts = append(parts, fmt.Sprintf("constraint %s filtered %d nodes", c, n))
		}
		for d, n := range m.DimensionExhausted {
			parts = append(parts, fmt.Sprintf("%s exhausted on %d nodes", d, n))
		}
	}
	if len(parts) == 0 {
		return "no node fit"
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// exitCode is how the task exited, if it ran: its Terminated event (a
// task killed by a signal exits 128+signal, as a shell reports it).
func exitCode(ts *api.TaskState) (code int, ran bool) {
	if ts == nil {
		return 0, false
	}
	for _, e := range ts.Events {
		if e == nil || e.Type != api.TaskTerminated {
			continue
		}
		code = e.ExitCode
		if v, ok := e.Details["exit_code"]; ok {
			if n, err := strconv.Atoi(v); err == nil {
				code = n
			}
		}
		if sig := e.Signal; code == 0 && sig != 0 {
			code = 128 + sig
		}
		return code, true
	}
	return 0, false
}

// taskFailure is the message of the event that failed a task that never ran.
func taskFailure(ts *api.TaskState) string {
	if ts == nil {
		return "no task state"
	}
	for i := len(ts.Events) - 1; i >= 0; i-- {
		if e := ts.Events[i]; e != nil && (e.FailsTask || e.DisplayMessage != "") {
			return e.Type + ": " + e.DisplayMessage
		}
	}
	return "state " + ts.State
}

// maxCheckOutput bounds what is read of a check's stdout.
const maxCheckOutput = 4096

// checkStdout reads the check task's stdout. The log of a task that just
// ended can lag its exit a little: it is read again, for up to a few
// seconds, until it ends with a newline.
func (s *Scheduler) checkStdout(ctx context.Context, allocID string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := s.logs(ctx, CheckNamespace, allocID, CheckTask, "stdout", maxCheckOutput)
		if err != nil {
			return out, err
		}
		if strings.HasSuffix(out, "\n") || len(out) >= maxCheckOutput || time.Now().After(deadline) {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, nil
		case <-time.After(checkPoll):
		}
	}
}

func ptr[T any](v T) *T { return &v }
