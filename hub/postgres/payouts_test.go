package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// Concurrent runs of one period record it once; every caller gets that run.
func TestPayoutRunOncePerPeriod(t *testing.T) {
	st := postgres.New(pgtest.MustOpenDB(t))
	ctx := context.Background()
	p, _ := payout.ParsePeriod("2026-11")
	created := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	const n = 6
	runs := make([]*payout.Run, n)
	existed := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := &payout.Run{Period: p, State: payout.Planned, RateCents: 100, Debtor: payout.Party{Name: "Hub", IBAN: "DE89370400440532013000"},
				StartedBy: "op", CreatedAt: created, Payouts: []payout.Payout{{Owner: "alice", LegalName: "Alice", IBAN: "NO9386011117947",
					Available: ledger.Amount(1_000_000 * (i + 1)), Amount: 1_000_000, Cents: 100, State: payout.Planned,
					Transfers: []payout.Transfer{{Account: ledger.ID{1}, ID: ledger.ID{byte(i + 1)}, Amount: 1_000_000}}}}}
			existed[i], errs[i] = st.CreatePayoutRun(ctx, r)
			runs[i] = r
		})
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("CreatePayoutRun #%d: %v", i, errs[i])
		}
		if !existed[i] {
			fresh++
		}
		if runs[i].Batch != runs[0].Batch || len(runs[i].Payouts) != 1 || runs[i].Payouts[0].Transfers[0].ID != runs[0].Payouts[0].Transfers[0].ID {
			t.Errorf("caller %d got run %+v, caller 0 %+v", i, runs[i], runs[0])
		}
	}
	if fresh != 1 {
		t.Fatalf("%d callers created the run, want 1", fresh)
	}
	got, err := st.PayoutRun(ctx, p)
	if err != nil || got.Batch != runs[0].Batch || !got.CreatedAt.Equal(created) || got.Debtor.IBAN != "DE89370400440532013000" || got.Payouts[0].Period != p {
		t.Fatalf("PayoutRun = %+v, %v", got, err)
	}
	if _, err := st.PayoutRun(ctx, p.Prev()); coded.CodeOf(err) != payout.CodeRunNotFound {
		t.Errorf("run of another period: %v", err)
	}
}

func TestPayoutWithholds(t *testing.T) {
	st := postgres.New(pgtest.MustOpenDB(t))
	ctx := context.Background()
	nov, _ := payout.ParsePeriod("2026-11")
	dec, _ := payout.ParsePeriod("2026-12")
	add := func(owner string, p payout.Period, reason string) payout.Withhold {
		w, err := st.AddWithhold(ctx, payout.Withhold{Owner: owner, Period: p, Reason: reason, CreatedBy: "op", CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	add("alice", nov, "spot check failed")
	always := add("alice", payout.Period{}, "identity check")
	add("bob", dec, "dispute")
	for _, tc := range []struct {
		owner  string
		p      payout.Period
		reason string
	}{
		{"alice", nov, "identity check; spot check failed"},
		{"alice", dec, "identity check"},
		{"bob", nov, ""},
		{"bob", dec, "dispute"},
		{"carol", nov, ""},
	} {
		reason, withheld, err := st.Withheld(ctx, tc.owner, tc.p)
		if err != nil || withheld != (tc.reason != "") || reason != tc.reason {
			t.Errorf("Withheld(%s, %s) = %q, %v, %v; want %q", tc.owner, tc.p, reason, withheld, err, tc.reason)
		}
	}
	if _, err := st.ReleaseWithhold(ctx, always.ID, "op2"); err != nil {
		t.Fatal(err)
	}
	if _, withheld, _ := st.Withheld(ctx, "alice", dec); withheld {
		t.Error("a released withhold still withholds")
	}
	active, _ := st.ListWithholds(ctx, false)
	all, _ := st.ListWithholds(ctx, true)
	if len(active) != 2 || len(all) != 3 || all[1].ReleasedBy != "op2" || all[1].ReleasedAt == nil {
		t.Errorf("active %+v, all %+v", active, all)
	}
}

func TestPayoutProfileStore(t *testing.T) {
	st := postgres.New(pgtest.MustOpenDB(t))
	ctx := context.Background()
	if _, err := st.PayoutProfile(ctx, "alice"); coded.CodeOf(err) != payout.CodeProfileNotFound {
		t.Fatalf("missing profile: %v", err)
	}
	p := payout.Profile{Owner: "alice", LegalName: "Alice", IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX", Threshold: 5_000_000, UpdatedAt: time.Now().UTC().Truncate(time.Second)}
	for range 2 { // set, then replace
		if _, err := st.SetPayoutProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Threshold *= 2
	}
	p.Threshold /= 2
	got, err := st.PayoutProfile(ctx, "alice")
	if err != nil || got != p {
		t.Fatalf("PayoutProfile = %+v, %v; want %+v", got, err, p)
	}
}
