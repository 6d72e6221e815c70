package nomadtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// TestNewTestServer runs a real exec-driver job on a real dev agent and reads
// its output back through the API, with ACLs enforced.
func TestNewTestServer(t *testing.T) {
	s := nomadtest.NewTestServer(t)

	t.Run("AnonymousDenied", func(t *testing.T) {
		anon := s.NewClient("")
		defer anon.Close()
		_, _, err := anon.Jobs().List((&api.QueryOptions{}).WithContext(t.Context()))
		var ure api.UnexpectedResponseError
		if !errors.As(err, &ure) || ure.StatusCode() != 403 {
			t.Fatalf("anonymous job list: got error %v, want 403 Permission denied", err)
		}

		// The management token is accepted.
		if _, _, err := s.Client.Jobs().List((&api.QueryOptions{}).WithContext(t.Context())); err != nil {
			t.Fatalf("job list with the management token: %v", err)
		}
	})

	t.Run("ExecJobOutput", func(t *testing.T) {
		ctx := t.Context()
		const want = "hello-spiceroute"

		job := api.NewBatchJob("hello", "hello", "global", 50)
		task := api.NewTask("hello", "exec").
			SetConfig("command", "/bin/sh").
			SetConfig("args", []string{"-c", "echo " + want})
		task.Resources = &api.Resources{CPU: ptr(100), MemoryMB: ptr(64)}
		tg := api.NewTaskGroup("hello", 1).AddTask(task)
		// One attempt: a failure should show here, not be retried away.
		tg.RestartPolicy = &api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
		tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
		job.AddTaskGroup(tg)

		if _, _, err := s.Client.Jobs().Register(job, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatalf("register job: %v", err)
		}

		alloc := waitAllocComplete(t, s.Client, *job.ID, 2*time.Minute)

		cancel := make(chan struct{})
		frames, errCh := s.Client.AllocFS().Logs(alloc, false, "hello", "stdout", api.OriginStart, 0, cancel,
			(&api.QueryOptions{}).WithContext(ctx))
		r := api.NewFrameReader(frames, errCh, cancel)
		defer r.Close()
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read stdout of alloc %s: %v", alloc.ID, err)
		}
		if !strings.Contains(string(out), want) {
			t.Fatalf("stdout of alloc %s = %q, want it to contain %q", alloc.ID, out, want)
		}
	})
}

// TestNewTestServer_StopLeavesNothing stops an agent mid-job, gracefully and
// by SIGKILL (a StopTimeout too short for the agent to stop its task), and
// checks that no process, mount, cgroup or file of it remains.
func TestNewTestServer_StopLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stopTimeout time.Duration
	}{
		{name: "SIGINT", stopTimeout: 30 * time.Second},
		{name: "SIGKILL", stopTimeout: time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := nomadtest.NewTestServer(t, func(c *nomadtest.Config) { c.StopTimeout = tc.stopTimeout })

			// A command line no other process has, to find the task by.
			arg := fmt.Sprintf("%d", 100000+time.Now().UnixNano()%900000)
			job := api.NewBatchJob("sleeper", "sleeper", "global", 50)
			task := api.NewTask("sleep", "exec").
				SetConfig("command", "/bin/sleep").
				SetConfig("args", []string{arg})
			task.Resources = &api.Resources{CPU: ptr(100), MemoryMB: ptr(32)}
			job.AddTaskGroup(api.NewTaskGroup("sleep", 1).AddTask(task))
			if _, _, err := s.Client.Jobs().Register(job, (&api.WriteOptions{}).WithContext(t.Context())); err != nil {
				t.Fatalf("register job: %v", err)
			}
			alloc := waitAlloc(t, s.Client, *job.ID, time.Minute, func(a *api.Allocation) (bool, error) {
				return a.ClientStatus == api.AllocClientStatusRunning, nil
			})
			if pids := pidsWithCmdline("/bin/sleep\x00" + arg); len(pids) != 1 {
				t.Fatalf("running task: %d processes run /bin/sleep %s, want 1", len(pids), arg)
			}

			s.Stop()
			s.Stop() // safe twice

			if pids := pidsWithCmdline("/bin/sleep\x00" + arg); len(pids) != 0 {
				t.Errorf("task process %v still runs after Stop", pids)
			}
			if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("agent dir %s still exists after Stop (stat: %v)", s.Dir, err)
			}
			if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), s.Dir) {
				t.Errorf("mounts under %s remain after Stop", s.Dir)
			}
			if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/nomad/" + alloc.ID + "*"); len(cgs) != 0 {
				t.Errorf("task cgroups remain after Stop: %v", cgs)
			}
		})
	}
}

// pidsWithCmdline returns the processes whose NUL-separated command line
// begins with prefix.
func pidsWithCmdline(prefix string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), prefix) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
				continue // a zombie has exited
			}
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// waitAllocComplete waits for the job's first allocation to complete and
// fails the test at once if it fails instead.
func waitAllocComplete(t *testing.T, c *api.Client, jobID string, timeout time.Duration) *api.Allocation {
	t.Helper()
	return waitAlloc(t, c, jobID, timeout, func(a *api.Allocation) (bool, error) {
		switch a.ClientStatus {
		case api.AllocClientStatusComplete:
			return true, nil
		case api.AllocClientStatusFailed, api.AllocClientStatusLost:
			return false, fmt.Errorf("allocation %s is %s: %s", a.ID, a.ClientStatus, taskEvents(a))
		}
		return false, nil
	})
}

// waitAlloc polls the job's allocations until done reports true for one of
// them, done returns an error, or timeout passes.
func waitAlloc(t *testing.T, c *api.Client, jobID string, timeout time.Duration, done func(*api.Allocation) (bool, error)) *api.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	var last string
	for {
		stubs, _, err := c.Jobs().Allocations(jobID, false, q)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("list allocations of %s: %v", jobID, err)
		}
		for _, stub := range stubs {
			a, _, err := c.Allocations().Info(stub.ID, q)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				t.Fatalf("allocation %s: %v", stub.ID, err)
			}
			last = fmt.Sprintf("%s: %s (%s)", a.ID, a.ClientStatus, taskEvents(a))
			ok, err := done(a)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return a
			}
		}
		select {
		case <-ctx.Done():
			if last == "" {
				last = "no allocation placed; " + evalReasons(c, jobID)
			}
			t.Fatalf("job %s: no allocation reached the wanted state within %s; last: %s", jobID, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// taskEvents renders each task's state and events, for failure messages.
func taskEvents(a *api.Allocation) string {
	var b strings.Builder
	for name, ts := range a.TaskStates {
		fmt.Fprintf(&b, "task %s %s failed=%t:", name, ts.State, ts.Failed)
		for _, e := range ts.Events {
			fmt.Fprintf(&b, " [%s: %s]", e.Type, e.DisplayMessage)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// evalReasons summarises why the job's evaluations placed nothing.
func evalReasons(c *api.Client, jobID string) string {
	evals, _, err := c.Jobs().Evaluations(jobID, nil)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range evals {
		fmt.Fprintf(&b, "eval %s %s %s; ", e.ID, e.Status, e.StatusDescription)
		for tg, m := range e.FailedTGAllocs {
			fmt.Fprintf(&b, "group %s: %d nodes evaluated, filtered %v, exhausted %v; ", tg, m.NodesEvaluated, m.ConstraintFiltered, m.DimensionExhausted)
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
