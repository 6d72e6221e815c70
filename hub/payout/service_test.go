package payout_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const sp = ledger.MicroPerSpice

// clock is a settable clock for the payout service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time     { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)    { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func at(s string) time.Time         { t, _ := time.Parse(time.RFC3339, s); return t }
func period(s string) payout.Period { p, _ := payout.ParsePeriod(s); return p }

var debtor = payout.Party{Name: "Spice Co-op e.V.", IBAN: "DE89 3704 0044 0532 0130 00", BIC: "COBADEFFXXX"}

// newHub starts a hub API with payouts at 100 cents (1 EUR) per SP.
func newHub(t *testing.T, now time.Time) (*apitest.Hub, *clock) {
	t.Helper()
	c := &clock{t: now}
	h := apitest.New(t, api.Config{}, apitest.WithPayouts(payout.Config{RateCents: 100, Debtor: debtor, Dir: t.TempDir()}, c.Now))
	return h, c
}

// contributor creates a contributor account of owner holding funds.
func contributor(t *testing.T, h *apitest.Hub, owner string, funds ledger.Amount) ledger.ID {
	t.Helper()
	id := ledger.NewID()
	res, err := h.Ledger.CreateAccounts(context.Background(), ledger.System, []ledger.Account{{ID: id, Owner: owner, Kind: ledger.KindContributor}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("create account of %s: %v %v", owner, err, res[0].Err)
	}
	if funds > 0 {
		h.Issue(t, id, funds)
	}
	return id
}

func profile(t *testing.T, h *apitest.Hub, owner, name, iban string, threshold ledger.Amount) {
	t.Helper()
	if _, err := h.Payouts.SetProfile(context.Background(), owner, payout.ProfileRequest{LegalName: name, IBAN: iban, Threshold: threshold}); err != nil {
		t.Fatalf("profile of %s: %v", owner, err)
	}
}

func balance(t *testing.T, h *apitest.Hub, id ledger.ID) ledger.Amount {
	t.Helper()
	a, err := h.Store.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Balance()
}

func payoutOf(t *testing.T, r *payout.Run, owner string) *payout.Payout {
	t.Helper()
	for i := range r.Payouts {
		if r.Payouts[i].Owner == owner {
			return &r.Payouts[i]
		}
	}
	return nil
}

// checkTransfers checks that a paid payout's transfers are committed as
// planned: from its accounts to the payout account, with the
// deterministic IDs.
func checkTransfers(t *testing.T, h *apitest.Hub, po *payout.Payout) {
	t.Helper()
	var sum ledger.Amount
	for _, pt := range po.Transfers {
		if want := payout.TransferID(apitest.PayoutHub, po.Owner, po.Period, pt.Account); pt.ID != want {
			t.Errorf("%s: transfer ID %s, want %s", po.Owner, pt.ID, want)
		}
		tr, err := h.Store.Transfer(context.Background(), pt.ID)
		if err != nil {
			t.Fatalf("%s: transfer %s: %v", po.Owner, pt.ID, err)
		}
		if tr.DebitAccountID != pt.Account || tr.CreditAccountID != h.PayoutAccount || tr.Amount != pt.Amount ||
			tr.UserData != "payout "+po.Period.String() || tr.Code != payout.TransferCode {
			t.Errorf("%s: committed %+v, planned %+v", po.Owner, tr, pt)
		}
		sum += tr.Amount
	}
	if sum != po.Amount || po.EndToEndID != payout.EndToEndID(po.Transfers[0].ID) {
		t.Errorf("%s: transfers sum to %d, payout is %d; end-to-end %s", po.Owner, sum, po.Amount, po.EndToEndID)
	}
}

// checkFiles parses the run's batch files and checks them against the
// expected payees and amounts (in order of owner).
func checkFiles(t *testing.T, h *apitest.Hub, r *payout.Run, want []line) {
	t.Helper()
	b, err := h.Payouts.Batch(context.Background(), r.Period)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Payouts) != len(want) {
		t.Fatalf("batch has %d payouts, want %d", len(b.Payouts), len(want))
	}
	for i, p := range b.Payouts {
		if p.LegalName != want[i].name || string(p.IBAN) != want[i].iban || p.Cents != want[i].cents {
			t.Errorf("batch payout %d: %s %s %d cents, want %+v", i, p.LegalName, p.IBAN, p.Cents, want[i])
		}
	}
	if len(r.Files) != 2 || !strings.HasSuffix(r.Files[0], b.Name()+".csv") || !strings.HasSuffix(r.Files[1], b.Name()+".xml") {
		t.Fatalf("run files %v", r.Files)
	}
	csvData, err := os.ReadFile(r.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	checkCSV(t, csvData, b)
	xmlData, err := os.ReadFile(r.Files[1])
	if err != nil {
		t.Fatal(err)
	}
	checkPain001(t, parsePain001(t, xmlData), b)
}

func TestPayoutRun(t *testing.T) {
	ctx := context.Background()
	h, _ := newHub(t, at("2026-12-10T12:00:00Z"))
	nov := period("2026-11")

	alice := contributor(t, h, "alice", 25_123_456) // above the threshold: paid, the sub-cent rest carried
	profile(t, h, "alice", "Alice Müller", "FR14 2004 1010 0505 0001 3M02 606", 10*sp)
	bob := contributor(t, h, "bob", 5*sp-1) // one µSP below the threshold: not paid
	profile(t, h, "bob", "Bob", "NL91ABNA0417164300", 5*sp)
	carol := contributor(t, h, "carol", 5*sp) // exactly the threshold: paid
	profile(t, h, "carol", "Carol", "BE68539007547034", 5*sp)
	dave := contributor(t, h, "dave", 100*sp) // no profile: not paid
	erin := contributor(t, h, "erin", 50*sp)  // withheld
	profile(t, h, "erin", "Erin", "CH9300762011623852957", payout.MinThreshold)
	f1, f2 := contributor(t, h, "frank", 3*sp), contributor(t, h, "frank", 4*sp+500_000) // two accounts, paid together
	profile(t, h, "frank", "Frank", "GB82WEST12345698765432", 7*sp)
	gina := contributor(t, h, "gina", 20*sp) // withheld only in another period, and released: paid
	profile(t, h, "gina", "Gina", "NO9386011117947", payout.MinThreshold)
	hank := contributor(t, h, "hank", 12*sp) // 3 SP held: 9 SP available, below 10
	profile(t, h, "hank", "Hank", "DE89370400440532013000", 10*sp)
	renter := ledger.NewID()
	if res, err := h.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{{ID: renter, Owner: "rita", Kind: ledger.KindRenter}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if res, err := h.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: hank, CreditAccountID: renter, Amount: 3 * sp, Flags: ledger.Pending}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}

	if _, err := h.Payouts.AddWithhold(ctx, "erin", nov, "spot check failed on node n-17", "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Payouts.AddWithhold(ctx, "gina", period("2026-10"), "an old dispute", "op"); err != nil {
		t.Fatal(err)
	}
	w, err := h.Payouts.AddWithhold(ctx, "gina", payout.Period{}, "identity check", "op")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Payouts.ReleaseWithhold(ctx, w.ID, "op"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Payouts.ReleaseWithhold(ctx, w.ID, "op"); coded.CodeOf(err) != payout.CodeWithholdNotFound {
		t.Errorf("releasing twice: %v", err)
	}

	r, err := h.Payouts.Run(ctx, nov, "op")
	if err != nil {
		t.Fatal(err)
	}
	h.CheckBooks(t)
	if r.State != payout.Complete || r.Paid != 4 || r.TotalCents != 2512+500+750+2000 || r.StartedBy != "op" || r.RateCents != 100 {
		t.Fatalf("run: %+v", r)
	}
	for _, owner := range []string{"bob", "dave", "hank"} {
		if po := payoutOf(t, r, owner); po != nil {
			t.Errorf("%s is paid: %+v", owner, po)
		}
	}
	wantPaid := map[string]struct {
		amount  ledger.Amount
		cents   int64
		carried ledger.Amount
	}{
		"alice": {25_120_000, 2512, 3456},
		"carol": {5 * sp, 500, 0},
		"frank": {7*sp + 500_000, 750, 0},
		"gina":  {20 * sp, 2000, 0},
	}
	var total ledger.Amount
	for owner, want := range wantPaid {
		po := payoutOf(t, r, owner)
		if po == nil || po.State != payout.Paid || po.Amount != want.amount || po.Cents != want.cents || po.Carried != want.carried {
			t.Fatalf("%s: %+v, want %+v", owner, po, want)
		}
		checkTransfers(t, h, po)
		total += po.Amount
	}
	if d := payoutOf(t, r, "alice").Detail; !strings.Contains(d, "rounded down") || !strings.Contains(d, "3456 µSP") {
		t.Errorf("alice's payout does not say it was rounded: %q", d)
	}
	if fr := payoutOf(t, r, "frank"); len(fr.Transfers) != 2 || fr.Transfers[0].Account != f1 || fr.Transfers[1].Account != f2 {
		t.Errorf("frank's transfers %+v", fr.Transfers)
	}
	if e := payoutOf(t, r, "erin"); e == nil || e.State != payout.Withheld || e.Detail != "spot check failed on node n-17" || len(e.Transfers) != 0 {
		t.Errorf("erin: %+v", e)
	}
	for id, want := range map[ledger.ID]ledger.Amount{alice: 3456, bob: 5*sp - 1, carol: 0, dave: 100 * sp, erin: 50 * sp, f1: 0, f2: 0, gina: 0, hank: 12 * sp, h.PayoutAccount: total} {
		if got := balance(t, h, id); got != want {
			t.Errorf("balance of %s: %s, want %s", id, got, want)
		}
	}
	checkFiles(t, h, r, []line{
		{name: "Alice Müller", iban: "FR1420041010050500013M02606", cents: 2512},
		{name: "Carol", iban: "BE68539007547034", cents: 500},
		{name: "Frank", iban: "GB82WEST12345698765432", cents: 750},
		{name: "Gina", iban: "NO9386011117947", cents: 2000},
	})
	mine, err := h.Payouts.Payouts(ctx, "erin", 10)
	if err != nil || len(mine) != 1 || mine[0].State != payout.Withheld || mine[0].Period != nov {
		t.Errorf("erin's payouts: %+v, %v", mine, err)
	}

	t.Run("SecondRunPaysNothing", func(t *testing.T) {
		h.Issue(t, alice, 30*sp) // earned since: paid next period, not again in this one
		logSize := h.LogSize(t)
		again, err := h.Payouts.Run(ctx, nov, "op2")
		if err != nil {
			t.Fatal(err)
		}
		if again.Batch != r.Batch || again.State != payout.Complete || again.StartedBy != "op" || again.TotalCents != r.TotalCents {
			t.Fatalf("second run: %+v", again)
		}
		for owner := range wantPaid {
			if a, b := payoutOf(t, again, owner), payoutOf(t, r, owner); a.Transfers[0].ID != b.Transfers[0].ID || a.Amount != b.Amount {
				t.Errorf("%s: second run %+v, first %+v", owner, a, b)
			}
		}
		if n := h.LogSize(t); n != logSize {
			t.Errorf("the second run wrote %d ledger entries", n-logSize)
		}
		if got := balance(t, h, alice); got != 30*sp+3456 {
			t.Errorf("alice %s after the second run", got)
		}
		if got := balance(t, h, h.PayoutAccount); got != total {
			t.Errorf("payout account %s after the second run, want %s", got, total)
		}
		h.CheckBooks(t)
	})
	t.Run("FuturePeriodRefused", func(t *testing.T) {
		if _, err := h.Payouts.Run(ctx, period("2027-01"), "op"); coded.CodeOf(err) != payout.CodeInvalidPeriod {
			t.Fatalf("got %v, want invalid_period", err)
		}
	})
	t.Run("NextPeriod", func(t *testing.T) {
		// The current period may be paid on demand; alice's new earnings are.
		dec, err := h.Payouts.Run(ctx, period("2026-12"), "op")
		if err != nil {
			t.Fatal(err)
		}
		a := payoutOf(t, dec, "alice")
		if a == nil || a.State != payout.Paid || a.Amount != 30*sp || a.Cents != 3000 || a.Carried != 3456 {
			t.Fatalf("alice in 2026-12: %+v", a)
		}
		if e := payoutOf(t, dec, "erin"); e == nil || e.State != payout.Paid {
			t.Errorf("erin, withheld only in 2026-11: %+v", e)
		}
		h.CheckBooks(t)
	})
}

// crashingLedger commits the first n transfers of a batch, then fails as
// if the hub died before it heard the answer.
type crashingLedger struct {
	payout.Ledger
	n int
}

func (c crashingLedger) CreateTransfers(ctx context.Context, caller ledger.Caller, ts []ledger.Transfer) ([]ledger.TransferResult, error) {
	if _, err := c.Ledger.CreateTransfers(ctx, caller, ts[:c.n]); err != nil {
		return nil, err
	}
	return nil, errors.New("crash")
}

func TestPayoutRunInterrupted(t *testing.T) {
	ctx := context.Background()
	h, clk := newHub(t, at("2027-01-05T00:00:00Z"))
	dec := period("2026-12")
	alice := contributor(t, h, "alice", 20*sp)
	profile(t, h, "alice", "Alice", "DE89370400440532013000", payout.MinThreshold)
	b1, b2 := contributor(t, h, "bob", 10*sp), contributor(t, h, "bob", 20*sp)
	profile(t, h, "bob", "Bob", "NL91ABNA0417164300", payout.MinThreshold)
	carol := contributor(t, h, "carol", 15*sp)
	profile(t, h, "carol", "Carol", "BE68539007547034", payout.MinThreshold)

	// A first hub process plans the run and dies after alice's transfer.
	crashing, err := payout.New(payout.Config{RateCents: 100, Debtor: debtor, Dir: t.TempDir()},
		payout.Deps{Hub: apitest.PayoutHub, Ledger: crashingLedger{h.Ledger, 1}, Store: h.Store, Account: h.PayoutAccount, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crashing.Run(ctx, dec, "schedule"); err == nil {
		t.Fatal("the crashing run succeeded")
	}
	planned, err := h.Payouts.RunOf(ctx, dec)
	if err != nil || planned.State != payout.Planned || len(planned.Payouts) != 3 {
		t.Fatalf("after the crash: %+v, %v", planned, err)
	}
	if got := balance(t, h, alice); got != 0 {
		t.Fatalf("alice has %s: her transfer should have committed before the crash", got)
	}
	h.CheckBooks(t)

	// Meanwhile carol spends what was planned for her.
	rita := ledger.NewID()
	if res, err := h.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{{ID: rita, Owner: "carol", Kind: ledger.KindRenter}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if res, err := h.Ledger.CreateTransfers(ctx, ledger.Caller{Principal: "carol"}, []ledger.Transfer{{ID: ledger.NewID(), DebitAccountID: carol, CreditAccountID: rita, Amount: 10 * sp}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}

	// The restarted hub completes the run with the same transfers.
	r, err := h.Payouts.Run(ctx, dec, "op")
	if err != nil {
		t.Fatal(err)
	}
	h.CheckBooks(t)
	if r.State != payout.Complete || r.Batch != planned.Batch || r.Paid != 2 || r.TotalUSP != 50*sp || r.TotalCents != 5000 {
		t.Fatalf("completed run: %+v", r)
	}
	for _, owner := range []string{"alice", "bob"} {
		po, was := payoutOf(t, r, owner), payoutOf(t, planned, owner)
		if po.State != payout.Paid || po.Transfers[0].ID != was.Transfers[0].ID {
			t.Errorf("%s: %+v, planned %+v", owner, po, was)
		}
		checkTransfers(t, h, po)
	}
	if c := payoutOf(t, r, "carol"); c.State != payout.Failed || !strings.Contains(c.Detail, "insufficient") {
		t.Errorf("carol: %+v", c)
	} else if _, err := h.Store.Transfer(ctx, c.Transfers[0].ID); coded.CodeOf(err) != api.CodeTransferNotFound {
		t.Errorf("carol's refused transfer: %v", err)
	}
	for id, want := range map[ledger.ID]ledger.Amount{alice: 0, b1: 0, b2: 0, carol: 5 * sp, h.PayoutAccount: 50 * sp} {
		if got := balance(t, h, id); got != want {
			t.Errorf("balance of %s: %s, want %s (paid once, not twice)", id, got, want)
		}
	}
	checkFiles(t, h, r, []line{
		{name: "Alice", iban: "DE89370400440532013000", cents: 2000},
		{name: "Bob", iban: "NL91ABNA0417164300", cents: 3000},
	})
}

func TestPayoutSchedule(t *testing.T) {
	c := &clock{t: at("2027-02-01T01:30:00Z")} // January ended 90 minutes ago
	h := apitest.New(t, api.Config{}, apitest.WithPayouts(payout.Config{RateCents: 100, Debtor: debtor, Dir: t.TempDir(),
		Schedule: true, Delay: time.Hour, CheckInterval: 10 * time.Millisecond}, c.Now))
	alice := contributor(t, h, "alice", 2*sp)
	profile(t, h, "alice", "Alice", "DE89370400440532013000", payout.MinThreshold)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Payouts.RunSchedule(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunSchedule: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := h.Payouts.RunOf(context.Background(), period("2027-01"))
		if err == nil && r.State == payout.Complete {
			if r.StartedBy != "schedule" || r.Paid != 1 || balance(t, h, alice) != 0 {
				t.Errorf("scheduled run: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled run of 2027-01 after 10s (%v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.Payouts.RunOf(context.Background(), period("2027-02")); coded.CodeOf(err) != payout.CodeRunNotFound {
		t.Errorf("the current period was run by the schedule: %v", err)
	}
	h.CheckBooks(t)
}

func TestPayoutAccountKind(t *testing.T) {
	// The new system account kind goes through the log's canonical encoding.
	a := ledger.Account{ID: ledger.ID{7}, Owner: "hub", Kind: ledger.KindPayout, Timestamp: 1}
	e, err := ledger.DecodeEntry(ledger.AppendAccountEntry(nil, &a))
	if err != nil || e.Account == nil || e.Account.Kind != ledger.KindPayout {
		t.Fatalf("decode payout account: %+v, %v", e, err)
	}
	if k, err := ledger.ParseAccountKind("payout"); err != nil || k != ledger.KindPayout || k.String() != "payout" {
		t.Fatalf("ParseAccountKind(payout) = %v, %v", k, err)
	}
}
