package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/devstack"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// TestDevStack is `spice dev -no-nomad -data DIR` in process: an ephemeral
// PostgreSQL, a ledger-only hub and the demo principals; the printed tokens
// work, alice has her 1000 SP, a transfer goes through, Close leaves nothing
// running, and a second start on the same directory is idempotent.
func TestDevStack(t *testing.T) {
	// PostgreSQL runs as an unprivileged user, which must reach the data
	// directory: t.TempDir's parents are private to root.
	dir, err := os.MkdirTemp("", "devstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", DataDir: dir, NoNomad: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if st.Nomad != nil || st.Hub.Jobs != nil {
		t.Fatal("-no-nomad started a Nomad agent or a job service")
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(runCtx) }()
	url := st.Hub.URL()

	alice := client.New(url, st.RenterToken)
	who, err := alice.Whoami(ctx)
	if err != nil || who.Name != "alice" {
		t.Fatalf("whoami with the printed renter token: %+v, %v", who, err)
	}
	acct, err := alice.Account(ctx, st.RenterAccount)
	if err != nil || acct.Balance() != devstack.DemoBalance {
		t.Fatalf("alice's account: %+v, %v; want %s", acct, err, devstack.DemoBalance)
	}
	r, err := alice.CreateTransfer(ctx, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: st.RenterAccount, CreditAccountID: st.ContribAccount, Amount: 2_500_000})
	if err != nil || r.Transfer.LogIndex == 0 {
		t.Fatalf("demo transfer: %+v, %v", r, err)
	}
	carol := client.New(url, st.ContributorTok)
	if c, err := carol.Account(ctx, st.ContribAccount); err != nil || c.Balance() != 2_500_000 {
		t.Fatalf("carol's account: %+v, %v", c, err)
	}
	if _, err := client.New(url, st.OperatorToken).Whoami(ctx); err != nil {
		t.Fatalf("operator token: %v", err)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything stopped: the hub no longer answers and PostgreSQL is down
	// (its postmaster.pid is gone from the kept data directory).
	hc := client.New(url, st.RenterToken, client.WithTimeout(2*time.Second))
	if err := hc.Health(ctx); err == nil {
		t.Fatal("the hub still answers after Close")
	}
	if _, err := os.Stat(dir + "/postgres/postmaster.pid"); !os.IsNotExist(err) {
		t.Fatalf("PostgreSQL still running after Close (postmaster.pid: %v)", err)
	}

	// spice dev -data DIR again: the same database, ledger and log, and
	// seeding is idempotent (alice is not credited twice).
	again, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", DataDir: dir, NoNomad: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("second start on the same data directory: %v", err)
	}
	defer again.Close()
	a, err := again.Hub.Store.Account(ctx, again.RenterAccount)
	if err != nil || a.Balance() != devstack.DemoBalance-2_500_000 {
		t.Fatalf("alice after restart: %+v, %v; want %s", a, err, devstack.DemoBalance-2_500_000)
	}
}

// TestDevStack_Nomad is `make dev` in process with its Nomad agent: the
// welcome tells alice how to run the example job, the job runs on carol's
// machine, is settled and invoiced, alice pays exactly what the admission
// charged and carol earns that less the hub's commission. Close leaves no
// agent, PostgreSQL or temporary directory behind.
func TestDevStack_Nomad(t *testing.T) {
	ctx := context.Background()
	bin := os.Getenv(nomadagent.BinEnv)
	if bin == "" {
		bin = "../../bin/nomad"
	}
	st, err := devstack.Start(ctx, devstack.Config{
		Listen:         "127.0.0.1:0",
		NomadBinary:    bin,
		PolicyFile:     "../../policies/admission.hcl",
		SettleInterval: time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if t.Failed() && st.Nomad != nil {
				t.Logf("Nomad agent log (tail):\n%s", st.Nomad.LogTail(60))
			}
			st.Close()
		}
	})
	if st.Nomad == nil || st.Postgres == nil || st.Hub.Jobs == nil {
		t.Fatalf("stack without an agent (%v), PostgreSQL (%v) or job service (%v)", st.Nomad, st.Postgres, st.Hub.Jobs)
	}
	agentPID, agentStart := st.Nomad.PID(), procStart(t, st.Nomad.PID())
	pgPID := postmasterPID(t, st.Postgres.DataDir())
	pgStart := procStart(t, pgPID)
	dirs := []string{st.Nomad.Dir, st.Postgres.DataDir(), st.DataDir()}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- st.Run(runCtx) }()
	url := st.Hub.URL()

	t.Run("Welcome", func(t *testing.T) {
		var b bytes.Buffer
		st.PrintWelcome(&b)
		out := b.String()
		for _, want := range []string{
			st.Nomad.Addr + "/ui/",
			fmt.Sprintf("NOMAD_ADDR=%s NOMAD_TOKEN=%s %s job run nomad-jobs/hello.nomad.hcl\n", url, st.RenterToken, bin),
			fmt.Sprintf("SPICE_ADDR=%s SPICE_TOKEN=%s bin/spice job run nomad-jobs/hello.nomad.hcl\n", url, st.RenterToken),
			fmt.Sprintf("bin/spice account get %s\n", st.RenterAccount),
			fmt.Sprintf("SPICE_TOKEN=%s bin/spice account get %s\n", st.ContributorTok, st.ContribAccount),
			"bin/spice invoice get 1 -o invoice.pdf\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("welcome lacks %q:\n%s", want, out)
			}
		}
		// The hub's Nomad token is shown to the operator for the UI, and
		// never as a token to run jobs with.
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "_TOKEN="+st.Nomad.ManagementToken) || strings.Contains(line, "export") && strings.Contains(line, st.Nomad.ManagementToken) {
				t.Errorf("the hub's Nomad token is offered as a token to use: %q", line)
			}
		}
	})

	t.Run("HelloJobSettled", func(t *testing.T) {
		src, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Hub.Jobs.SubmitHCL(ctx, "alice", string(src)); err != nil {
			t.Fatalf("alice submits hello: %v", err)
		}
		rec := waitSettled(t, st, 3*time.Minute)
		// Three seconds of 100 MHz and 64 MB cost a few µSP: the 10 %
		// commission may round to nothing.
		if rec.Charged <= 0 || rec.Commission < 0 || rec.Commission > rec.Charged/10 || rec.Account != st.RenterAccount {
			t.Fatalf("settled admission %+v: want a positive charge to alice's account, at most 10 %% of it commission", rec)
		}
		allocs, err := st.Hub.Store.Allocations(ctx, rec.Key)
		if err != nil || len(allocs) != 1 || allocs[0].Contributor != st.ContribAccount {
			t.Fatalf("allocations of %s: %+v, %v; want one on carol's machine", rec.Key, allocs, err)
		}
		alice, err := st.Hub.Store.Account(ctx, st.RenterAccount)
		if err != nil {
			t.Fatal(err)
		}
		if alice.Balance() != devstack.DemoBalance-rec.Charged || alice.DebitsPending != 0 {
			t.Errorf("alice: balance %s, pending %s; want %s - %s charged and nothing held", alice.Balance(), alice.DebitsPending, devstack.DemoBalance, rec.Charged)
		}
		carol, err := st.Hub.Store.Account(ctx, st.ContribAccount)
		if err != nil {
			t.Fatal(err)
		}
		if carol.Balance() != rec.Charged-rec.Commission {
			t.Errorf("carol: balance %s; want %s charged - %s commission", carol.Balance(), rec.Charged, rec.Commission)
		}
	})

	// The second demo machine: dave's, in us-east, asking more than the
	// hub's price. The example that accepts more and prefers us-east lands
	// there and pays dave's floor for CPU.
	t.Run("HelloUSEastOnDavesMachine", func(t *testing.T) {
		if len(st.Machines) != 2 || st.Machines[1].Owner != "dave" {
			t.Fatalf("demo machines: %+v", st.Machines)
		}
		dave := st.Machines[1].Agent.State().Join
		src, err := os.ReadFile("../../nomad-jobs/hello-us-east.nomad.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Hub.Jobs.SubmitHCL(ctx, "alice", string(src)); err != nil {
			t.Fatalf("alice submits hello-us-east: %v", err)
		}
		rec := waitSettledJob(t, st, "hello-us-east", 3*time.Minute)
		allocs, err := st.Hub.Store.Allocations(ctx, rec.Key)
		if err != nil || len(allocs) != 1 || allocs[0].Contributor.String() != dave.AccountID || allocs[0].CPUPrice != st.Machines[1].Floor {
			t.Fatalf("allocations of %s: %+v, %v; want one on dave's machine (account %s) at his floor %s", rec.Key, allocs, err, dave.AccountID, st.Machines[1].Floor)
		}
	})

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if procRuns(agentPID, agentStart) {
		t.Errorf("Nomad agent %d still runs after Close", agentPID)
	}
	if procRuns(pgPID, pgStart) {
		t.Errorf("PostgreSQL %d still runs after Close", pgPID)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close (stat: %v)", d, err)
		}
	}
	if err := client.New(url, st.RenterToken, client.WithTimeout(2*time.Second)).Health(ctx); err == nil {
		t.Error("the hub still answers after Close")
	}
}

// TestDevStack_NomadAgentExits: when the agent dies under it, Run ends with
// an error that says so instead of serving a hub whose jobs cannot run, and
// Close still removes what the agent left.
func TestDevStack_NomadAgentExits(t *testing.T) {
	ctx := context.Background()
	bin := os.Getenv(nomadagent.BinEnv)
	if bin == "" {
		bin = "../../bin/nomad"
	}
	st, err := devstack.Start(ctx, devstack.Config{
		Listen:      "127.0.0.1:0",
		NomadBinary: bin,
		PolicyFile:  "../../policies/admission.hcl",
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	agentDir := st.Nomad.Dir
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()

	// The test started this agent (through Start): ending it is ours.
	if err := syscall.Kill(st.Nomad.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the Nomad agent exited unexpectedly") {
			t.Fatalf("Run after the agent died: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run still serving 30s after the agent died")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(agentDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("agent dir %s still exists after Close (stat: %v)", agentDir, err)
	}
}

// waitSettled polls alice's hello admission until it is settled and
// invoiced, and fails at once if it ends otherwise.
func waitSettled(t *testing.T, st *devstack.Stack, timeout time.Duration) *jobs.Record {
	t.Helper()
	return waitSettledJob(t, st, "hello", timeout)
}

// waitSettledJob is waitSettled for alice's job id.
func waitSettledJob(t *testing.T, st *devstack.Stack, id string, timeout time.Duration) *jobs.Record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no admission"
	for time.Now().Before(deadline) {
		recs, err := st.Hub.Store.JobAdmissions(context.Background(), "alice", id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			r := recs[0]
			switch {
			case r.State == jobs.Settled && r.Invoice > 0:
				return r
			case r.State == jobs.Released || r.State == jobs.Failed:
				t.Fatalf("hello admission ended %s: %s", r.State, r.Detail)
			}
			last = fmt.Sprintf("%s (invoice %d): %s", r.State, r.Invoice, r.Detail)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("hello not settled and invoiced within %s; last: %s", timeout, last)
	return nil
}

// postmasterPID is the PID in the first line of the cluster's postmaster.pid.
func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// procStart is the start time of a running process (proc(5) stat field 22),
// which tells it from a later process with the same PID.
func procStart(t *testing.T, pid int) string {
	t.Helper()
	start, ok := statStart(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	return start
}

// procRuns reports whether the process pid that started at start still
// runs (a zombie does not).
func procRuns(pid int, start string) bool {
	s, ok := statStart(pid)
	return ok && s == start
}

func statStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	return f[19], true
}
