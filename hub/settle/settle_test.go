package settle_test

import (
	"context"
	"testing"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/hub/settle"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const sp = ledger.MicroPerSpice

type books struct {
	t      *testing.T
	store  *postgres.Store
	l      *ledger.Ledger
	acc    settle.Accounts
	renter ledger.ID
	c1, c2 ledger.ID
	issued ledger.Amount
}

func newBooks(t *testing.T) *books {
	t.Helper()
	b := &books{t: t, store: postgres.New(pgtest.MustOpenDB(t)), renter: ledger.NewID(), c1: ledger.NewID(), c2: ledger.NewID()}
	l, err := ledger.Open(context.Background(), b.store, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	b.l = l
	iss := ledger.NewID()
	b.acc = settle.Accounts{Escrow: ledger.NewID(), Commission: ledger.NewID()}
	b.submit([]ledger.Account{
		{ID: iss, Owner: "hub", Kind: ledger.KindIssuance, Flags: ledger.AccountAllowNegative},
		{ID: b.acc.Escrow, Owner: "hub", Kind: ledger.KindEscrow},
		{ID: b.acc.Commission, Owner: "hub", Kind: ledger.KindHubCommission},
		{ID: b.renter, Owner: "alice", Kind: ledger.KindRenter},
		{ID: b.c1, Owner: "carol", Kind: ledger.KindContributor},
		{ID: b.c2, Owner: "dave", Kind: ledger.KindContributor},
	}, nil)
	b.issued = 10 * sp
	b.submit(nil, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: iss, CreditAccountID: b.renter, Amount: b.issued}})
	return b
}

// submit applies accounts or transfers and fails on any rejection; it
// returns the transfer results.
func (b *books) submit(accts []ledger.Account, ts []ledger.Transfer) []ledger.TransferResult {
	b.t.Helper()
	ctx := context.Background()
	if accts != nil {
		res, err := b.l.CreateAccounts(ctx, ledger.System, accts)
		if err != nil {
			b.t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.t.Fatal(r.Err)
			}
		}
	}
	if ts == nil {
		return nil
	}
	res, err := b.l.CreateTransfers(ctx, ledger.System, ts)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			b.t.Fatalf("transfer %s: %v", r.Transfer.ID, r.Err)
		}
	}
	return res
}

func (b *books) account(id ledger.ID) ledger.Account {
	b.t.Helper()
	a, err := b.store.Account(context.Background(), id)
	if err != nil {
		b.t.Fatal(err)
	}
	return a
}

// check asserts balances and that the books balance: nothing is left in
// escrow, the renter paid exactly what contributors and the hub received.
func (b *books) check(paid, c1, c2, commission, held ledger.Amount) {
	b.t.Helper()
	r, c1a, c2a, ca := b.account(b.renter), b.account(b.c1), b.account(b.c2), b.account(b.acc.Commission)
	got := [5]ledger.Amount{b.issued - r.Balance(), c1a.Balance(), c2a.Balance(), ca.Balance(), r.DebitsPending}
	want := [5]ledger.Amount{paid, c1, c2, commission, held}
	if got != want {
		b.t.Fatalf("renter paid, carol, dave, commission, held = %v, want %v", got, want)
	}
	if e := b.account(b.acc.Escrow); e.Balance() != 0 {
		b.t.Fatalf("escrow holds %s between ticks", e.Balance())
	}
	if paid != c1+c2+commission {
		b.t.Fatalf("renter paid %s, contributors and hub got %s", paid, c1+c2+commission)
	}
}

func TestTicksChargeExactlyOnce(t *testing.T) {
	b := newBooks(t)
	const job = "hello-world"
	hold := settle.HoldTransfer(job, b.renter, 5*sp, b.acc, 0)
	b.submit(nil, []ledger.Transfer{hold})
	h := settle.Hold{ID: hold.ID, Renter: b.renter, Amount: 5 * sp}
	b.check(0, 0, 0, 0, 5*sp)

	// Tick 1: carol's allocation ran 1 SP, dave's 0.5 SP; commission 10 %.
	p, err := settle.Tick(job, h, []settle.Charge{{Allocation: "a1", Contributor: b.c1, Amount: 1 * sp}, {Allocation: "a2", Contributor: b.c2, Amount: sp / 2}}, 1000, false, b.acc)
	if err != nil {
		t.Fatal(err)
	}
	b.submit(nil, p.Transfers)
	b.check(1_500_000, 900_000, 450_000, 150_000, 3_500_000)

	// The hub crashed after committing and retries the same tick: the
	// ledger recognises every transfer; nothing moves twice.
	for _, r := range b.submit(nil, p.Transfers) {
		if !r.Existed {
			t.Fatalf("retried tick transfer %s was applied again", r.Transfer.ID)
		}
	}
	b.check(1_500_000, 900_000, 450_000, 150_000, 3_500_000)

	// A tick with nothing due changes nothing.
	idle, err := settle.Tick(job, *p.Next, nil, 1000, false, b.acc)
	if err != nil || len(idle.Transfers) != 0 || idle.Next.ID != p.Next.ID {
		t.Fatalf("idle tick: %+v, %v", idle, err)
	}

	// Final tick: 0.25 SP more from carol; the rest of the hold is released.
	f, err := settle.Tick(job, *p.Next, []settle.Charge{{Allocation: "a1", Contributor: b.c1, Amount: sp / 4}}, 1000, true, b.acc)
	if err != nil || f.Next != nil {
		t.Fatalf("final tick: %+v, %v", f, err)
	}
	b.submit(nil, f.Transfers)
	b.check(1_750_000, 1_125_000, 450_000, 175_000, 0)
}

func TestFinalTickWithNothingDueVoids(t *testing.T) {
	b := newBooks(t)
	hold := settle.HoldTransfer("never-ran", b.renter, 3*sp, b.acc, 0)
	b.submit(nil, []ledger.Transfer{hold})
	p, err := settle.Tick("never-ran", settle.Hold{ID: hold.ID, Renter: b.renter, Amount: 3 * sp}, nil, 1000, true, b.acc)
	if err != nil {
		t.Fatal(err)
	}
	b.submit(nil, p.Transfers)
	b.check(0, 0, 0, 0, 0)
}

func TestUsageBeyondHoldIsCapped(t *testing.T) {
	b := newBooks(t)
	hold := settle.HoldTransfer("overrun", b.renter, 2*sp, b.acc, 0)
	b.submit(nil, []ledger.Transfer{hold})
	p, err := settle.Tick("overrun", settle.Hold{ID: hold.ID, Renter: b.renter, Amount: 2 * sp}, []settle.Charge{{Allocation: "a1", Contributor: b.c1, Amount: 3 * sp}, {Allocation: "a2", Contributor: b.c2, Amount: 1 * sp}}, 0, false, b.acc)
	if err != nil || !p.Capped || p.Charged != 2*sp || p.Next != nil {
		t.Fatalf("capped tick: %+v, %v", p, err)
	}
	b.submit(nil, p.Transfers)
	b.check(2*sp, 1_500_000, 500_000, 0, 0)
}

func TestTickRejects(t *testing.T) {
	acc := settle.Accounts{Escrow: ledger.NewID(), Commission: ledger.NewID()}
	h := settle.Hold{ID: ledger.NewID(), Renter: ledger.NewID(), Amount: sp}
	if _, err := settle.Tick("j", h, nil, 10_001, false, acc); err == nil {
		t.Fatal("a commission over 100 % was accepted")
	}
	if _, err := settle.Tick("j", h, []settle.Charge{{Allocation: "a", Contributor: ledger.NewID(), Amount: -1}}, 0, false, acc); err == nil {
		t.Fatal("a negative charge was accepted")
	}
	if _, err := settle.Tick("j", settle.Hold{}, nil, 0, false, acc); err == nil {
		t.Fatal("an empty hold was accepted")
	}
}

func TestCommission(t *testing.T) {
	for _, tt := range []struct {
		a    ledger.Amount
		bp   int
		want ledger.Amount
	}{{1_000_000, 1000, 100_000}, {999, 1000, 99}, {1, 9999, 0}, {ledger.MaxAmount, 10_000, ledger.MaxAmount}, {ledger.MaxAmount, 1, ledger.MaxAmount / 10_000}} {
		if got := settle.Commission(tt.a, tt.bp); got != tt.want {
			t.Errorf("Commission(%d, %d) = %d, want %d", tt.a, tt.bp, got, tt.want)
		}
	}
}

func TestCommissionRoundsOnTheRunningTotal(t *testing.T) {
	acc := settle.Accounts{Escrow: ledger.NewID(), Commission: ledger.NewID()}
	h := settle.Hold{ID: ledger.NewID(), Renter: ledger.NewID(), Amount: sp}
	c := ledger.NewID()
	// Ten ticks of 9 µSP at 10 %: rounding each would take 0 commission;
	// rounding the running total takes 9 of the 90.
	var paid, commission ledger.Amount
	for i := 0; i < 10; i++ {
		p, err := settle.Tick("j", h, []settle.Charge{{Allocation: "a", Contributor: c, Amount: 9, Paid: paid, PaidCommission: commission}}, 1000, false, acc)
		if err != nil {
			t.Fatal(err)
		}
		paid += p.Charged
		commission += p.Commission
		h = *p.Next
	}
	if paid != 90 || commission != 9 {
		t.Fatalf("paid %d with commission %d, want 90 and 9", paid, commission)
	}
}

func TestRefundReturnsALostAllocationsCharges(t *testing.T) {
	b := newBooks(t)
	hold := settle.HoldTransfer("lost", b.renter, 5*sp, b.acc, 0)
	b.submit(nil, []ledger.Transfer{hold})
	p, err := settle.Tick("lost", settle.Hold{ID: hold.ID, Renter: b.renter, Amount: 5 * sp}, []settle.Charge{{Allocation: "a1", Contributor: b.c1, Amount: 2 * sp}}, 1000, false, b.acc)
	if err != nil {
		t.Fatal(err)
	}
	b.submit(nil, p.Transfers)
	b.check(2*sp, 1_800_000, 0, 200_000, 3*sp)
	// a1 turns out lost: everything it paid goes back to the renter.
	ts := settle.Refund("lost", p.Shares[0], b.renter, b.acc)
	b.submit(nil, ts)
	b.check(0, 0, 0, 0, 3*sp)
	for _, r := range b.submit(nil, ts) {
		if !r.Existed {
			t.Fatalf("a retried refund moved money again: %+v", r)
		}
	}
	b.check(0, 0, 0, 0, 3*sp)
}
