package jobs_test

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	t     *testing.T
	svc   *jobs.Service
	store *postgres.Store
	l     *ledger.Ledger
	iss   ledger.ID
	sched *nomad.Scheduler
	srv   *nomadtest.Server
	acc   settle.Accounts
	// revenue is paid for work on nodes without a contributor account.
	revenue ledger.ID
	// contrib is the contributor account the agent's client node names.
	contrib ledger.ID
}

func newEnv(t *testing.T, opts ...nomadtest.Option) *env {
	t.Helper()
	ctx := context.Background()
	contrib := ledger.NewID()
	srv := nomadtest.NewTestServer(t, append([]nomadtest.Option{nomadtest.WithContributor(contrib.String())}, opts...)...)
	sched, err := nomad.New(nomad.Config{Address: srv.Addr, Token: srv.ManagementToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.EnsureNodePool(ctx); err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pgtest.MustOpenDB(t))
	l, err := ledger.Open(ctx, store, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	policy, err := admission.LoadPolicy("../../policies/admission.hcl")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, l: l, iss: ledger.NewID(), sched: sched, srv: srv, contrib: contrib}
	acc := settle.Accounts{Escrow: ledger.NewID(), Commission: ledger.NewID()}
	e.accounts(ledger.Account{ID: e.iss, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative},
		ledger.Account{ID: acc.Escrow, Owner: "hub", Kind: ledger.KindEscrow},
		ledger.Account{ID: acc.Commission, Owner: "hub", Kind: ledger.KindHubCommission},
		ledger.Account{ID: contrib, Owner: "carol", Kind: ledger.KindContributor})
	e.acc = acc
	e.revenue = ledger.NewID()
	e.accounts(ledger.Account{ID: e.revenue, Owner: "hub", Kind: ledger.KindHubRevenue})
	e.svc = &jobs.Service{Sched: sched, Ledger: l, Prices: store, Policy: policy, Store: store,
		Accounts: jobs.Accounts{Accounts: acc, Owned: store.AccountsByOwner},
		Billing:  jobs.Billing{Hub: "test.hub", CommissionBP: 1000, Interval: time.Second, Lag: time.Second, Revenue: e.revenue, Reader: store},
		Metrics:  jobs.NewMetrics(prometheus.NewRegistry())}
	return e
}

// phases returns how many submissions admission's metrics timed, per
// phase, and their total time.
func (e *env) phases() (map[string]uint64, time.Duration) {
	e.t.Helper()
	counts, sums, err := e.svc.Metrics.Observed()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum time.Duration
	for _, d := range sums {
		sum += d
	}
	return counts, sum
}

func (e *env) accounts(as ...ledger.Account) {
	e.t.Helper()
	res, err := e.l.CreateAccounts(context.Background(), ledger.System, as)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			e.t.Fatal(r.Err)
		}
	}
}

// renter creates a funded renter account.
func (e *env) renter(name string, funds ledger.Amount) ledger.ID {
	e.t.Helper()
	id := ledger.NewID()
	e.accounts(ledger.Account{ID: id, Owner: name, Kind: ledger.KindRenter})
	res, err := e.l.CreateTransfers(context.Background(), ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: e.iss, CreditAccountID: id, Amount: funds}})
	if err != nil || res[0].Err != nil {
		e.t.Fatal(err, res[0].Err)
	}
	return id
}

func (e *env) helloJob() *api.Job {
	e.t.Helper()
	src, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
	if err != nil {
		e.t.Fatal(err)
	}
	j, err := e.sched.ParseHCL(context.Background(), string(src))
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

func (e *env) account(id ledger.ID) ledger.Account {
	e.t.Helper()
	a, err := e.store.Account(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) noJob(renter, id string) {
	e.t.Helper()
	if _, err := e.sched.Job(context.Background(), renter, id); err == nil {
		e.t.Fatalf("job %s reached Nomad", id)
	}
}

func TestSubmitHoldsQuoteThenRegisters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.renter("alice", 10*ledger.MicroPerSpice)
	start := time.Now()
	adm, err := e.svc.Submit(ctx, "alice", alice, e.helloJob())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	counts, timed := e.phases()
	for phase, n := range counts {
		if n != 1 {
			t.Errorf("admission metrics timed %d submissions in phase %s, want 1", n, phase)
		}
	}
	if timed <= 0 || timed > took {
		t.Errorf("admission's phases took %s in all, the submission %s", timed, took)
	}
	// 100 MHz, 64 MB, 150 MB disk for the job's 10 minutes at the default prices.
	want, _ := market.DefaultPrices.Cost(market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)
	if adm.Quote.Max != want || adm.Namespace != "renter-alice" {
		t.Fatalf("admission %+v, want a quote of %s", adm, want)
	}
	a := e.account(alice)
	if a.DebitsPending != want || a.Available() != 10*ledger.MicroPerSpice-want {
		t.Fatalf("alice holds %s (available %s), want %s held", a.DebitsPending, a.Available(), want)
	}
	j, err := e.sched.Job(ctx, "alice", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if j.Meta[jobs.MetaHold] != adm.Hold.String() || *j.NodePool != nomad.DefaultNodePool {
		t.Fatalf("registered job meta %v, pool %s", j.Meta, *j.NodePool)
	}
	t.Run("RetryHoldsOnce", func(t *testing.T) {
		again, err := e.svc.Submit(ctx, "alice", alice, e.helloJob())
		if err != nil || again.Hold != adm.Hold {
			t.Fatalf("retried submission: %+v, %v", again, err)
		}
		if a := e.account(alice); a.DebitsPending != want {
			t.Fatalf("alice holds %s after a retry, want %s once", a.DebitsPending, want)
		}
	})
}

func TestRejectedJobsNeverReachNomad(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t.Run("InsufficientFunds", func(t *testing.T) {
		poor := e.renter("poor", 1)
		_, err := e.svc.Submit(ctx, "poor", poor, e.helloJob())
		if coded.CodeOf(err) != ledger.CodeInsufficientFunds || !strings.Contains(err.Error(), "costs up to") || !strings.Contains(err.Error(), "short") {
			t.Fatalf("got %v", err)
		}
		e.noJob("poor", "hello")
		if counts, _ := e.phases(); counts[jobs.PhaseHold] != 0 {
			t.Errorf("a refused submission was timed as admitted: %v", counts)
		}
		if a := e.account(poor); a.DebitsPending != 0 || a.Balance() != 1 {
			t.Fatalf("poor's account after rejection: %+v", a)
		}
	})
	t.Run("PolicyViolation", func(t *testing.T) {
		bob := e.renter("bob", 10*ledger.MicroPerSpice)
		j := e.helloJob()
		j.TaskGroups[0].Tasks[0].Driver = "raw_exec"
		_, err := e.svc.Submit(ctx, "bob", bob, j)
		if coded.CodeOf(err) != admission.CodeViolation || !strings.Contains(err.Error(), `task "hello"`) {
			t.Fatalf("got %v", err)
		}
		e.noJob("bob", "hello")
		if a := e.account(bob); a.DebitsPending != 0 {
			t.Fatalf("a rejected job left a hold of %s", a.DebitsPending)
		}
	})
	t.Run("OverMaxPrice", func(t *testing.T) {
		carol := e.renter("carol", 10*ledger.MicroPerSpice)
		j := e.helloJob()
		j.Meta[admission.MetaMaxPrice] = "0.000001"
		_, err := e.svc.Submit(ctx, "carol", carol, j)
		if coded.CodeOf(err) != market.CodeOverMaxPrice {
			t.Fatalf("got %v", err)
		}
		e.noJob("carol", "hello")
	})
	t.Run("RenterCap", func(t *testing.T) {
		// The policy caps what one renter runs at once at 32000 MHz: two
		// jobs of 16000 MHz fit, a third of 100 MHz does not.
		gina := e.renter("gina", 100*ledger.MicroPerSpice)
		for _, id := range []string{"big1", "big2"} {
			j := e.helloJob()
			j.ID, j.Name = &id, &id
			cpu := 16000
			j.TaskGroups[0].Tasks[0].Resources.CPU = &cpu
			if _, err := e.svc.Submit(ctx, "gina", gina, j); err != nil {
				t.Fatalf("job %s: %v", id, err)
			}
		}
		_, err := e.svc.Submit(ctx, "gina", gina, e.helloJob())
		if coded.CodeOf(err) != admission.CodeViolation || !strings.Contains(err.Error(), "renter") {
			t.Fatalf("a job over the renter's cap: %v", err)
		}
		e.noJob("gina", "hello")
	})
	t.Run("NomadRefuses", func(t *testing.T) {
		// Two groups of one name pass admission but not Nomad's own
		// validation: the renter learns why, and the hold is released.
		jack := e.renter("jack", 10*ledger.MicroPerSpice)
		j := e.helloJob()
		j.TaskGroups = append(j.TaskGroups, j.TaskGroups[0])
		_, err := e.svc.Submit(ctx, "jack", jack, j)
		if coded.CodeOf(err) != jobs.CodeInvalidJob || !strings.Contains(err.Error(), "Nomad refused the job") {
			t.Fatalf("got %v", err)
		}
		e.noJob("jack", "hello")
		if a := e.account(jack); a.DebitsPending != 0 || a.Balance() != 10*ledger.MicroPerSpice {
			t.Fatalf("jack's account after Nomad refused the job: %+v", a)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		// A JSON job with a null task group: Nomad's client library would
		// panic canonicalizing it; the hub refuses it instead.
		kim := e.renter("kim", 10*ledger.MicroPerSpice)
		j := e.helloJob()
		j.TaskGroups = append(j.TaskGroups, nil)
		_, err := e.svc.Submit(ctx, "kim", kim, j)
		if coded.CodeOf(err) != nomad.CodeMalformed || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("got %v", err)
		}
		e.noJob("kim", "hello")
	})
	t.Run("CannotPayFromAnothersAccount", func(t *testing.T) {
		dave := e.renter("dave", 10*ledger.MicroPerSpice)
		_, err := e.svc.Submit(ctx, "mallory", dave, e.helloJob())
		if coded.CodeOf(err) != ledger.CodeForbidden {
			t.Fatalf("got %v", err)
		}
		e.noJob("mallory", "hello")
	})
}
