package jobs_test

import (
	"context"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// testPrices are high enough that a few seconds of a small job cost
// thousands of µSP, so rounding cannot hide a wrong charge.
var testPrices = market.Prices{CPU: 36_000_000, Memory: 18_000_000, Disk: 3_600_000}

func (e *env) setPrices() {
	e.t.Helper()
	if err := e.store.SetPrices(context.Background(), testPrices, "test"); err != nil {
		e.t.Fatal(err)
	}
}

// settling runs the hub's settlement loop until the test ends.
func (e *env) settling() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.RunSettlement(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("settlement loop: %v", err)
		}
	})
}

// waitAdmission polls until the renter's latest admission of job satisfies ok.
func (e *env) waitAdmission(renter, job string, ok func(*jobs.Record) bool) *jobs.Record {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rs, err := e.store.JobAdmissions(context.Background(), renter, job, 1)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(rs) == 1 && ok(rs[0]) {
			return rs[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("admission of %s/%s never got there: %+v\n%s", renter, job, rs, e.srv.LogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func settled(r *jobs.Record) bool { return r.State == jobs.Settled && r.Invoice > 0 }

// expectedCost prices what Nomad says the allocation's one task ran, by the
// formula in the README (not by the meter's code): each resource ×
// milliseconds × price, rounded down to the µSP.
func expectedCost(t *testing.T, a *api.Allocation) ledger.Amount {
	t.Helper()
	return expectedCostAt(t, a, testPrices)
}

// expectedCostAt is expectedCost at prices p.
func expectedCostAt(t *testing.T, a *api.Allocation, p market.Prices) ledger.Amount {
	t.Helper()
	if len(a.TaskStates) != 1 {
		t.Fatalf("allocation %s has %d tasks, want 1", a.ID, len(a.TaskStates))
	}
	var total int64
	for name, ts := range a.TaskStates {
		if ts.StartedAt.IsZero() || ts.FinishedAt.IsZero() {
			t.Fatalf("task %s did not run to an end: %+v", name, ts)
		}
		ms := ts.FinishedAt.Sub(ts.StartedAt).Milliseconds()
		tr := a.AllocatedResources.Tasks[name]
		cost := func(price, qty, per int64) int64 {
			n := new(big.Int).Mul(big.NewInt(price*qty), big.NewInt(ms))
			return n.Quo(n, big.NewInt(per*3_600_000)).Int64()
		}
		total += cost(int64(p.CPU), tr.Cpu.CpuShares, 1000) +
			cost(int64(p.Memory), tr.Memory.MemoryMB, 1024) +
			cost(int64(p.Disk), int64(a.AllocatedResources.Shared.DiskMB), 1024)
	}
	return ledger.Amount(total)
}

// balanced checks the books: every account's balance sums to zero (what
// the issuance account issued is what everyone else holds), nothing rests
// in escrow, and no hold is left on the renter.
func (e *env) balanced(renter ledger.ID) {
	e.t.Helper()
	var sum int64
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(credits_posted - debits_posted), 0) FROM accounts`).Scan(&sum); err != nil {
		e.t.Fatal(err)
	}
	if sum != 0 {
		e.t.Fatalf("the books do not balance: balances sum to %d µSP", sum)
	}
	if esc := e.account(e.acc.Escrow); esc.Balance() != 0 || esc.CreditsPending != 0 {
		e.t.Fatalf("escrow holds %s (%s pending) after settlement", esc.Balance(), esc.CreditsPending)
	}
	if r := e.account(renter); r.DebitsPending != 0 {
		e.t.Fatalf("the renter still has %s held", r.DebitsPending)
	}
}

func (e *env) onlyAlloc(renter, job string) *api.Allocation {
	e.t.Helper()
	stubs, err := e.sched.Allocations(context.Background(), renter, job)
	if err != nil || len(stubs) != 1 {
		e.t.Fatalf("allocations of %s: %d, %v", job, len(stubs), err)
	}
	a, err := e.sched.Allocation(context.Background(), renter, stubs[0].ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// checkSettled asserts a settled admission charged exactly want: the
// renter paid it, the contributor got it less the commission, the hub the
// commission, and the invoice says so line by line.
func (e *env) checkSettled(rec *jobs.Record, renter ledger.ID, funds, want ledger.Amount) {
	e.t.Helper()
	commission := want / 10 // 10 %, one allocation
	if rec.Charged != want || rec.Commission != commission {
		e.t.Fatalf("charged %s (commission %s), want %s (%s)", rec.Charged, rec.Commission, want, commission)
	}
	if r := e.account(renter); r.Balance() != funds-want {
		e.t.Fatalf("renter balance %s, want %s - %s", r.Balance(), funds, want)
	}
	if c := e.account(e.contrib); c.Balance() != want-commission {
		e.t.Fatalf("contributor earned %s, want %s", c.Balance(), want-commission)
	}
	if c := e.account(e.acc.Commission); c.Balance() != commission {
		e.t.Fatalf("hub commission %s, want %s", c.Balance(), commission)
	}
	e.balanced(renter)
	inv, err := e.store.Invoice(context.Background(), rec.Invoice)
	if err != nil {
		e.t.Fatal(err)
	}
	if inv.Kind != invoice.RenterInvoice || inv.Total != want || inv.Commission != commission || inv.Party != rec.Renter || inv.Job != rec.JobID || len(inv.Lines) != 3 {
		e.t.Fatalf("invoice %+v, want a total of %s with 3 lines", inv, want)
	}
	for _, l := range inv.Lines {
		if len(l.Transfers) < 2 || len(l.Transfers) != len(l.LogIndexes) {
			e.t.Fatalf("invoice line %+v does not point to its transfers", l)
		}
		for i, id := range l.Transfers {
			tr, err := e.store.Transfer(context.Background(), id)
			if err != nil || tr.LogIndex != l.LogIndexes[i] {
				e.t.Fatalf("invoice line transfer %s at log index %d: %+v, %v", id, l.LogIndexes[i], tr, err)
			}
		}
	}
}

func TestJobIsChargedExactlyWhatRan(t *testing.T) {
	e := newEnv(t)
	e.setPrices()
	e.settling()
	const funds = 100 * ledger.MicroPerSpice
	alice := e.renter("alice", funds)
	adm, err := e.svc.Submit(context.Background(), "alice", alice, e.helloJob())
	if err != nil {
		t.Fatal(err)
	}
	rec := e.waitAdmission("alice", "hello", settled)
	if rec.Key != adm.Key {
		t.Fatalf("settled admission %s, submitted %s", rec.Key, adm.Key)
	}
	want := expectedCost(t, e.onlyAlloc("alice", "hello"))
	if want < 1000 {
		t.Fatalf("the job cost only %s: too little to tell a wrong charge", want)
	}
	t.Logf("hello ran for %s µSP", want)
	e.checkSettled(rec, alice, funds, want)

	t.Run("ContributorStatement", func(t *testing.T) {
		ctx := context.Background()
		time.Sleep(1100 * time.Millisecond) // the period ends at a whole second, after the settlement
		from, to := rec.CreatedAt.Add(-time.Minute), time.Now()
		st, err := e.svc.Statement(ctx, "carol", from, to)
		if err != nil {
			t.Fatal(err)
		}
		carol := e.account(e.contrib)
		if st.Kind != invoice.ContributorStatement || st.Total != carol.Balance() || st.Commission != want/10 || len(st.Lines) != 1 || st.Lines[0].Cost.Amount != want {
			t.Fatalf("statement %+v: want one line of %s, commission %s, total %s (carol's balance)", st, want, want/10, carol.Balance())
		}
		for i, id := range st.Lines[0].Transfers {
			tr, err := e.store.Transfer(ctx, id)
			if err != nil || tr.CreditAccountID != e.contrib || tr.LogIndex != st.Lines[0].LogIndexes[i] {
				t.Fatalf("statement transfer %s: %+v, %v", id, tr, err)
			}
		}
		again, err := e.svc.Statement(ctx, "carol", from, to)
		if err != nil || again.Number != st.Number {
			t.Fatalf("the same period again: statement %d, %v; want %d", again.Number, err, st.Number)
		}
		if _, err := e.svc.Statement(ctx, "carol", to, from); err == nil {
			t.Fatal("a period ending before it starts was accepted")
		}
		if _, err := e.svc.Statement(ctx, "alice", from, to); err == nil {
			t.Fatal("a renter without a contributor account got a statement")
		}
	})

	t.Run("RunAgainHoldsAfresh", func(t *testing.T) {
		// The same spec run again after it ended is a new admission with a
		// new hold (and, since the hub's meta changes, a new job version).
		again, err := e.svc.Submit(context.Background(), "alice", alice, e.helloJob())
		if err != nil {
			t.Fatal(err)
		}
		if again.Key == adm.Key || again.Hold == adm.Hold {
			t.Fatalf("second run reused admission %s", adm.Key)
		}
		rec2 := e.waitAdmission("alice", "hello", func(r *jobs.Record) bool { return r.Key == again.Key && settled(r) })
		if rec2.Charged <= 0 || rec2.Invoice == rec.Invoice {
			t.Fatalf("second run: %+v", rec2)
		}
		e.balanced(alice)
	})
}

func (e *env) sleeper(id string, seconds int) *api.Job {
	j := e.helloJob()
	j.ID, j.Name = &id, &id
	j.TaskGroups[0].Tasks[0].Config["args"] = []string{"-c", "echo started; sleep " + itoa(seconds)}
	return j
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestStoppedJobIsChargedOnlyForWhatRan(t *testing.T) {
	e := newEnv(t)
	e.setPrices()
	e.settling()
	const funds = 100 * ledger.MicroPerSpice
	bob := e.renter("bob", funds)
	if _, err := e.svc.Submit(context.Background(), "bob", bob, e.sleeper("long", 600)); err != nil {
		t.Fatal(err)
	}
	// Running debit notes: the renter is charged while the job runs.
	running := e.waitAdmission("bob", "long", func(r *jobs.Record) bool { return r.Charged > 0 })
	if running.State != jobs.Running {
		t.Fatalf("charged admission is %s", running.State)
	}
	if err := e.sched.Stop(context.Background(), "bob", "long", false); err != nil {
		t.Fatal(err)
	}
	rec := e.waitAdmission("bob", "long", settled)
	want := expectedCost(t, e.onlyAlloc("bob", "long"))
	e.checkSettled(rec, bob, funds, want)
	sts, err := e.store.Settlements(context.Background(), rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	ticks := 0
	for _, st := range sts {
		if st.Kind == jobs.KindTick && st.State == "applied" {
			ticks++
		}
	}
	if ticks == 0 || sts[len(sts)-1].Kind != jobs.KindFinal {
		t.Fatalf("settlements %+v: want running debit notes, then a final one", sts)
	}
	if rec.Charged >= rec.Quote.Max {
		t.Fatalf("a job stopped early was charged %s of its %s maximum", rec.Charged, rec.Quote.Max)
	}
}

// flakyApply fails ApplySettlement after the ledger committed, as a hub
// crash between the two would: the settlement stays planned.
type flakyApply struct {
	jobs.Store
	fail atomic.Int32
}

func (f *flakyApply) ApplySettlement(ctx context.Context, s *jobs.Settlement) error {
	if f.fail.Add(-1) >= 0 {
		return errors.New("injected: hub crashed before booking the settlement")
	}
	return f.Store.ApplySettlement(ctx, s)
}

func TestHubRestartMidJobChargesOnce(t *testing.T) {
	e := newEnv(t)
	e.setPrices()
	const funds = 100 * ledger.MicroPerSpice
	dave := e.renter("dave", funds)
	if _, err := e.svc.Submit(context.Background(), "dave", dave, e.sleeper("restart", 6)); err != nil {
		t.Fatal(err)
	}
	// Hub 1 settles while the job runs and "crashes" right after its
	// ledger commits, twice, then stops for good.
	flaky := &flakyApply{Store: e.store}
	flaky.fail.Store(2)
	hub1 := *e.svc
	hub1.Store = flaky
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub1.RunSettlement(ctx) }()
	for flaky.fail.Load() > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Hub 2 (a new process: fresh caches) resumes from the database and
	// the event cursor while the job is still running or has just ended.
	hub2 := *e.svc
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go hub2.RunSettlement(ctx2)
	rec := e.waitAdmission("dave", "restart", settled)
	e.checkSettled(rec, dave, funds, expectedCost(t, e.onlyAlloc("dave", "restart")))
	sts, err := e.store.Settlements(context.Background(), rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.State != "applied" {
			t.Fatalf("settlement %d is %s: %s", st.ID, st.State, st.Error)
		}
	}
}

// TestLostAllocationIsNotCharged takes the contributor's machine away
// mid-job (the node is purged from the cluster, as when a machine dies and
// an operator removes it): its allocation is lost, everything it paid is
// refunded, Nomad reschedules the work on the machine when it comes back,
// and the renter pays only for the replacement.
func TestLostAllocationIsNotCharged(t *testing.T) {
	e := newEnv(t)
	e.setPrices()
	e.settling()
	ctx := context.Background()
	const funds = 100 * ledger.MicroPerSpice
	erin := e.renter("erin", funds)
	if _, err := e.svc.Submit(ctx, "erin", erin, e.sleeper("fragile", 600)); err != nil {
		t.Fatal(err)
	}
	first := e.waitAdmission("erin", "fragile", func(r *jobs.Record) bool { return r.Charged > 0 })
	lost := e.onlyAlloc("erin", "fragile")
	if _, _, err := e.srv.Client.Nodes().Purge(lost.NodeID, nil); err != nil {
		t.Fatal(err)
	}
	// Wait for the replacement to run, then end the job.
	deadline := time.Now().Add(3 * time.Minute)
	var replacement *api.Allocation
	for replacement == nil {
		stubs, err := e.sched.Allocations(ctx, "erin", "fragile")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stubs {
			if s.ID != lost.ID && s.ClientStatus == "running" {
				if replacement, err = e.sched.Allocation(ctx, "erin", s.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replacement allocation runs: %+v\n%s", stubs, e.srv.LogTail(60))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if err := e.sched.Stop(ctx, "erin", "fragile", false); err != nil {
		t.Fatal(err)
	}
	rec := e.waitAdmission("erin", "fragile", settled)
	allocs, err := e.store.Allocations(ctx, rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	var sawLost bool
	for _, a := range allocs {
		if a.ID == lost.ID {
			sawLost = true
			if a.Usage.Status != "lost" || a.Gross != 0 || a.Commission != 0 || !a.Refunded {
				t.Fatalf("lost allocation record %+v: want lost, refunded, nothing paid", a)
			}
		}
	}
	if !sawLost {
		t.Fatalf("the lost allocation %s was never recorded (charged %s before it was lost)", lost.ID, first.Charged)
	}
	replacement, err = e.sched.Allocation(ctx, "erin", replacement.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.checkSettled(rec, erin, funds, expectedCost(t, replacement))
	inv, err := e.store.Invoice(ctx, rec.Invoice)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Notes) == 0 || !strings.Contains(inv.Notes[0], lost.ID) || !strings.Contains(inv.Notes[0], "not charged") {
		t.Fatalf("invoice notes %q do not say the lost allocation was not charged", inv.Notes)
	}
}

// TestDockerJobRunsAndSettles runs the example container job: an image
// built locally FROM scratch, no registry.
func TestDockerJobRunsAndSettles(t *testing.T) {
	if out, err := exec.Command("bash", "../../deploy/scripts/build-hello-image.sh").CombinedOutput(); err != nil {
		t.Fatalf("building the example image (needs a running Docker engine): %v\n%s", err, out)
	}
	e := newEnv(t, nomadtest.WithDrivers("exec", "docker"))
	e.setPrices()
	e.settling()
	ctx := context.Background()
	const funds = 100 * ledger.MicroPerSpice
	frank := e.renter("frank", funds)
	src, err := os.ReadFile("../../nomad-jobs/hello-docker.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	j, err := e.sched.ParseHCL(ctx, string(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Submit(ctx, "frank", frank, j); err != nil {
		t.Fatal(err)
	}
	rec := e.waitAdmission("frank", "hello-docker", settled)
	a := e.onlyAlloc("frank", "hello-docker")
	if a.ClientStatus != "complete" {
		t.Fatalf("container allocation %s is %s: %+v", a.ID, a.ClientStatus, a.TaskStates)
	}
	out, err := e.sched.Logs(ctx, "frank", a.ID, "hello", "stdout", 1<<20)
	if err != nil || !strings.Contains(out, "hello from a SpiceRoute container") || !strings.Contains(out, "done") {
		t.Fatalf("container printed %q, %v", out, err)
	}
	e.checkSettled(rec, frank, funds, expectedCost(t, a))
}

// crashAfterHold commits the admission hold and then fails, as a hub that
// crashed right after placing it would: the job is never registered.
type crashAfterHold struct {
	jobs.Ledger
	crashed atomic.Bool
}

func (c *crashAfterHold) CreateTransfers(ctx context.Context, caller ledger.Caller, ts []ledger.Transfer) ([]ledger.TransferResult, error) {
	res, err := c.Ledger.CreateTransfers(ctx, caller, ts)
	if err == nil && len(ts) == 1 && ts[0].Flags&ledger.Pending != 0 && c.crashed.CompareAndSwap(false, true) {
		return nil, errors.New("injected: the hub crashed after the hold committed")
	}
	return res, err
}

func TestCrashBetweenHoldAndRegistration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const funds = 100 * ledger.MicroPerSpice
	crashy := func() *jobs.Service {
		s := *e.svc
		s.Ledger = &crashAfterHold{Ledger: e.l}
		return &s
	}
	t.Run("RetryCompletesWithTheSameHold", func(t *testing.T) {
		hana := e.renter("hana", funds)
		if _, err := crashy().Submit(ctx, "hana", hana, e.helloJob()); err == nil {
			t.Fatal("the injected crash did not happen")
		}
		e.noJob("hana", "hello")
		held := e.account(hana).DebitsPending
		if held == 0 {
			t.Fatal("no hold after the crash")
		}
		// The renter (or its nomad CLI) retries: the same admission, the
		// same hold, and now the job is registered.
		adm, err := e.svc.Submit(ctx, "hana", hana, e.helloJob())
		if err != nil {
			t.Fatal(err)
		}
		if a := e.account(hana); a.DebitsPending != held {
			t.Fatalf("after the retry %s is held, want the one hold of %s", a.DebitsPending, held)
		}
		if j, err := e.sched.Job(ctx, "hana", "hello"); err != nil || j.Meta[jobs.MetaHold] != adm.Hold.String() {
			t.Fatalf("registered job: %v, %v", j, err)
		}
	})
	t.Run("NoRetryReleasesTheHold", func(t *testing.T) {
		ivan := e.renter("ivan", funds)
		if _, err := crashy().Submit(ctx, "ivan", ivan, e.helloJob()); err == nil {
			t.Fatal("the injected crash did not happen")
		}
		// The hub restarts; nobody retries. Once the grace period is over
		// the settlement loop finds an admission whose job never reached
		// Nomad and releases its hold.
		restarted := *e.svc
		restarted.Billing.AdmitGrace = time.Millisecond
		if err := restarted.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		recs, err := e.store.JobAdmissions(ctx, "ivan", "hello", 1)
		if err != nil || len(recs) != 1 || recs[0].State != jobs.Released {
			t.Fatalf("admission after the release: %+v, %v", recs, err)
		}
		e.noJob("ivan", "hello")
		if a := e.account(ivan); a.DebitsPending != 0 || a.Balance() != funds {
			t.Fatalf("ivan's account after the release: %s held, balance %s", a.DebitsPending, a.Balance())
		}
	})
}

// TestCursorFromAnotherCluster points a hub whose event cursor came from
// another Nomad cluster (far beyond this one's indexes) at this one: it
// follows this cluster's events from the start instead of waiting for
// indexes it will not see for a long time.
func TestCursorFromAnotherCluster(t *testing.T) {
	e := newEnv(t)
	e.setPrices()
	ctx := context.Background()
	const far = 1 << 40
	if err := e.store.SaveCursor(ctx, far); err != nil {
		t.Fatal(err)
	}
	e.settling()
	lena := e.renter("lena", 100*ledger.MicroPerSpice)
	if _, err := e.svc.Submit(ctx, "lena", lena, e.helloJob()); err != nil {
		t.Fatal(err)
	}
	e.waitAdmission("lena", "hello", settled)
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := e.store.Cursor(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c > 0 && c < far {
			break // an event of this cluster was processed
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cursor is still %d: this cluster's events were not followed", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
