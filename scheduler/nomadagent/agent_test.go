package nomadagent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// nomadBinary is $SPICE_NOMAD_BIN, else the repository's bin/nomad. A
// missing binary fails the test in Start.
func nomadBinary() string {
	if p := os.Getenv(nomadagent.BinEnv); p != "" {
		return p
	}
	return "../../bin/nomad"
}

// TestStart starts an agent the way `spice dev` does (a node pool and
// metadata for its client), runs a real exec job on it through the Nomad
// API and reads its output back, then stops it and checks that neither the
// agent process nor its directory remains.
func TestStart(t *testing.T) {
	ctx := context.Background()
	cfg := nomadagent.DefaultConfig()
	cfg.Binary = nomadBinary()
	cfg.Name = "carol-test"
	cfg.NodePool = "spiceroute"
	cfg.Meta = map[string]string{"spiceroute_contributor_account": "0123456789abcdef0123456789abcdef"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := nomadagent.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			if t.Failed() {
				t.Logf("agent log (tail):\n%s", a.LogTail(60))
			}
			_ = a.Stop()
		}
	})
	pid, startTime := a.PID(), procStart(t, a.PID())

	t.Run("Client", func(t *testing.T) {
		nodes, _, err := a.Client.Nodes().List((&api.QueryOptions{}).WithContext(ctx))
		if err != nil || len(nodes) != 1 {
			t.Fatalf("nodes: %v, %v", nodes, err)
		}
		n, _, err := a.Client.Nodes().Info(nodes[0].ID, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if n.Name != "carol-test" || n.NodePool != "spiceroute" || n.Meta["spiceroute_contributor_account"] != cfg.Meta["spiceroute_contributor_account"] {
			t.Errorf("node %s in pool %s with meta %v, want carol-test in spiceroute with the contributor account", n.Name, n.NodePool, n.Meta)
		}
		if d := n.Drivers["exec"]; d == nil || !d.Healthy {
			t.Errorf("exec driver: %+v, want healthy", d)
		}
		// -dev enables raw_exec; Start must not.
		if d := n.Drivers["raw_exec"]; d != nil && (d.Detected || d.Healthy) {
			t.Errorf("raw_exec driver detected=%t healthy=%t (%s), want disabled", d.Detected, d.Healthy, d.HealthDescription)
		}
	})

	t.Run("AnonymousDenied", func(t *testing.T) {
		anon, err := a.NewClient("")
		if err != nil {
			t.Fatal(err)
		}
		defer anon.Close()
		_, _, err = anon.Jobs().List((&api.QueryOptions{}).WithContext(ctx))
		var ure api.UnexpectedResponseError
		if !errors.As(err, &ure) || ure.StatusCode() != 403 {
			t.Fatalf("anonymous job list: got error %v, want 403 Permission denied", err)
		}
	})

	t.Run("ExecJobOutput", func(t *testing.T) {
		const want = "hello-from-nomadagent"
		job := api.NewBatchJob("hello", "hello", "global", 50)
		job.NodePool = ptr("spiceroute")
		task := api.NewTask("hello", "exec").
			SetConfig("command", "/bin/sh").
			SetConfig("args", []string{"-c", "echo " + want + "; uname -s; if [ -e /etc/shadow ]; then echo the machine secrets are visible; fi"})
		task.Resources = &api.Resources{CPU: ptr(100), MemoryMB: ptr(64)}
		tg := api.NewTaskGroup("hello", 1).AddTask(task)
		// One attempt: a failure should show here, not be retried away.
		tg.RestartPolicy = &api.RestartPolicy{Attempts: ptr(0), Mode: ptr("fail")}
		tg.ReschedulePolicy = &api.ReschedulePolicy{Attempts: ptr(0), Unlimited: ptr(false)}
		job.AddTaskGroup(tg)
		if _, _, err := a.Client.Jobs().Register(job, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatalf("register job: %v", err)
		}
		alloc := waitComplete(t, a.Client, *job.ID, 2*time.Minute)

		cancel := make(chan struct{})
		frames, errCh := a.Client.AllocFS().Logs(alloc, false, "hello", "stdout", api.OriginStart, 0, cancel,
			(&api.QueryOptions{}).WithContext(ctx))
		r := api.NewFrameReader(frames, errCh, cancel)
		defer r.Close()
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read stdout of alloc %s: %v", alloc.ID, err)
		}
		if got := string(out); got != want+"\nLinux\n" {
			t.Fatalf("stdout of alloc %s = %q, want %q", alloc.ID, got, want+"\nLinux\n")
		}
	})

	t.Run("StopLeavesNothing", func(t *testing.T) {
		stopped = true
		select {
		case <-a.Done():
			t.Fatal("Done closed while the agent runs")
		default:
		}
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := a.Stop(); err != nil { // safe twice
			t.Fatalf("second Stop: %v", err)
		}
		select {
		case <-a.Done():
		default:
			t.Fatal("Done still open after Stop")
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && procStartOf(string(st)) == startTime {
			t.Errorf("agent process %d still exists after Stop: %s", pid, st)
		}
		if _, err := os.Stat(a.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("agent dir %s still exists after Stop (stat: %v)", a.Dir, err)
		}
		if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), a.Dir) {
			t.Errorf("mounts under %s remain after Stop", a.Dir)
		}
		if left := nomadagent.ProcessesUnder(a.Dir); len(left) != 0 {
			t.Errorf("processes started from %s remain after Stop: %v", a.Dir, left)
		}
	})
}

// TestStartErrors: what Start refuses, before leaving anything behind.
func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		binary string
		want   string
	}{
		{name: "NoBinary", binary: "", want: "no nomad binary configured"},
		{name: "MissingBinary", binary: filepath.Join(t.TempDir(), "nomad"), want: "make tools"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nomadagent.DefaultConfig()
			cfg.Binary = tc.binary
			a, err := nomadagent.Start(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v, %v; want an error containing %q", a, err, tc.want)
			}
		})
	}
}

// procStart is the start time of process pid (proc(5) stat field 22).
func procStart(t *testing.T, pid int) string {
	t.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("agent process %d: %v", pid, err)
	}
	return procStartOf(string(st))
}

func procStartOf(stat string) string {
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// waitComplete waits for the job's first allocation to complete and fails
// the test at once if it fails instead.
func waitComplete(t *testing.T, c *api.Client, jobID string, timeout time.Duration) *api.Allocation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	last := "no allocation yet"
	for {
		stubs, _, err := c.Jobs().Allocations(jobID, false, q)
		if err != nil && ctx.Err() == nil {
			t.Fatalf("allocations of %s: %v", jobID, err)
		}
		for _, stub := range stubs {
			switch stub.ClientStatus {
			case api.AllocClientStatusComplete:
				a, _, err := c.Allocations().Info(stub.ID, q)
				if err != nil {
					t.Fatal(err)
				}
				return a
			case api.AllocClientStatusFailed, api.AllocClientStatusLost:
				t.Fatalf("allocation %s is %s: %v", stub.ID, stub.ClientStatus, stub.TaskStates)
			}
			last = fmt.Sprintf("%s: %s", stub.ID, stub.ClientStatus)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s: no allocation completed within %s; last: %s", jobID, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestServerOnly starts the hub's kind of cluster: a server with no client
// of its own that admits clients only with an introduction token. It
// issues one scoped to a node name and pool, and checks that no client
// node registered.
func TestServerOnly(t *testing.T) {
	ctx := context.Background()
	cfg := nomadagent.DefaultConfig()
	cfg.Binary = nomadBinary()
	cfg.ServerOnly = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := nomadagent.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	if _, err := a.Client.NodePools().Register(&api.NodePool{Name: "spiceroute"}, nil); err != nil {
		t.Fatal(err)
	}
	resp, _, err := a.Client.ACLIdentity().CreateClientIntroductionToken(&api.ACLIdentityClientIntroductionTokenRequest{
		NodeName: "carol-box-1", NodePool: "spiceroute", TTL: 10 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(resp.JWT, "."); len(parts) != 3 {
		t.Fatalf("introduction token %q is not a JWT", resp.JWT)
	}
	nodes, _, err := a.Client.Nodes().List(nil)
	if err != nil || len(nodes) != 0 {
		t.Fatalf("a server-only agent has client nodes: %v, %v", nodes, err)
	}
	if !strings.Contains(readFile(t, filepath.Join(a.Dir, "agent.hcl")), `enforcement = "strict"`) {
		t.Error("the server does not require introduction tokens")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
