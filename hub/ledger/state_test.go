package ledger

import (
	"bytes"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
)

var (
	alice = Caller{Principal: "alice"}
	bob   = Caller{Principal: "bob"}
)

// fixture is a state with an issuance account, alice's and bob's renter
// accounts, and 100 SP issued to alice.
type fixture struct {
	t                 *testing.T
	s                 *state
	now               int64
	issuance, ali, bo ID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, s: newState(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	f.issuance, f.ali, f.bo = NewID(), NewID(), NewID()
	for _, a := range []Account{
		{ID: f.issuance, Owner: "hub", Kind: KindIssuance, Flags: AccountAllowNegative},
		{ID: f.ali, Owner: "alice", Kind: KindRenter},
		{ID: f.bo, Owner: "bob", Kind: KindRenter},
	} {
		if _, _, err := f.s.createAccount(System, a, f.ts()); err != nil {
			t.Fatal(err)
		}
	}
	f.ok(System, Transfer{ID: NewID(), DebitAccountID: f.issuance, CreditAccountID: f.ali, Amount: 100 * MicroPerSpice})
	return f
}

func (f *fixture) ts() int64 { return f.s.nextTimestamp(f.now) }

func (f *fixture) apply(c Caller, t Transfer) (Transfer, bool, *coded.Error) {
	got, existed, err := f.s.createTransfer(c, t, f.ts(), false)
	f.s.commitUndo()
	return got, existed, err
}

func (f *fixture) ok(c Caller, t Transfer) Transfer {
	f.t.Helper()
	got, _, err := f.apply(c, t)
	if err != nil {
		f.t.Fatalf("transfer: %v", err)
	}
	return got
}

func (f *fixture) fails(c Caller, t Transfer, code coded.Code) {
	f.t.Helper()
	_, _, err := f.apply(c, t)
	if err == nil || err.Code != code {
		f.t.Fatalf("got %v, want code %s", err, code)
	}
}

func (f *fixture) balance(id ID) Amount { return f.s.accounts[id].Balance() }

// checkBooks asserts double entry: all balances (posted and pending) sum to zero.
func (f *fixture) checkBooks() {
	f.t.Helper()
	var posted, pending Amount
	for _, a := range f.s.accounts {
		posted += a.CreditsPosted - a.DebitsPosted
		pending += a.CreditsPending - a.DebitsPending
		if a.Flags&AccountAllowNegative == 0 && a.Available() < 0 {
			f.t.Fatalf("account %s (%s) is negative: %s", a.ID, a.Owner, a.Available())
		}
	}
	if posted != 0 || pending != 0 {
		f.t.Fatalf("books do not balance: posted sum %s, pending sum %s", posted, pending)
	}
}

func TestTransferRejections(t *testing.T) {
	f := newFixture(t)
	missing := NewID()
	tests := []struct {
		name   string
		caller Caller
		t      Transfer
		code   coded.Code
	}{
		{"ZeroID", alice, Transfer{DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1}, CodeIDZero},
		{"ZeroAmount", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo}, CodeAmountInvalid},
		{"NegativeAmount", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: -5}, CodeAmountInvalid},
		{"OverMaxAmount", System, Transfer{ID: NewID(), DebitAccountID: f.issuance, CreditAccountID: f.bo, Amount: MaxAmount + 1}, CodeAmountInvalid},
		{"AccountNotFound", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: missing, Amount: 1}, CodeAccountNotFound},
		{"SameAccount", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.ali, Amount: 1}, CodeSameAccount},
		{"InsufficientFunds", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 100*MicroPerSpice + 1}, CodeInsufficientFunds},
		{"Forbidden", bob, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1}, CodeForbidden},
		{"RenterCannotIssue", alice, Transfer{ID: NewID(), DebitAccountID: f.issuance, CreditAccountID: f.ali, Amount: 1}, CodeForbidden},
		{"ReservedExpiryFlag", alice, Transfer{ID: NewID(), PendingID: NewID(), Flags: VoidPending | Expiry}, CodeInvalid},
		{"UnknownFlag", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, Flags: 1 << 9}, CodeInvalid},
		{"TwoKinds", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, Flags: Pending | PostPending}, CodeInvalid},
		{"TimeoutWithoutPending", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, Timeout: 5}, CodeInvalid},
		{"TimeoutTooLong", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, Flags: Pending, Timeout: MaxTimeout + 1}, CodeInvalid},
		{"UserDataTooLong", alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, UserData: string(bytes.Repeat([]byte("x"), MaxUserData+1))}, CodeInvalid},
		{"PendingNotFound", alice, Transfer{ID: NewID(), PendingID: missing, Flags: PostPending}, CodePendingNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.balance(f.ali)
			f.fails(tt.caller, tt.t, tt.code)
			if f.balance(f.ali) != before {
				t.Fatalf("a rejected transfer changed a balance: %s -> %s", before, f.balance(f.ali))
			}
			f.checkBooks()
		})
	}
}

func TestIssuanceMayGoNegative(t *testing.T) {
	f := newFixture(t)
	if got := f.balance(f.issuance); got != -100*MicroPerSpice {
		t.Fatalf("issuance balance %s, want -100 SP", got)
	}
	f.checkBooks()
}

func TestIdempotentRetry(t *testing.T) {
	f := newFixture(t)
	tr := Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 3 * MicroPerSpice, Code: 7, UserData: "invoice 1"}
	first := f.ok(alice, tr)
	again, existed, err := f.apply(alice, tr)
	if err != nil || !existed || again != first {
		t.Fatalf("retry: got %+v existed=%v err=%v, want the original %+v", again, existed, err, first)
	}
	if f.balance(f.bo) != 3*MicroPerSpice {
		t.Fatalf("bob has %s after a retried transfer, want 3 SP exactly once", f.balance(f.bo))
	}
	t.Run("IDConflict", func(t *testing.T) {
		changed := tr
		changed.Amount++
		f.fails(alice, changed, CodeIDConflict)
	})
	f.checkBooks()
}

func TestHolds(t *testing.T) {
	t.Run("ReservedAmountCannotBeSpentTwice", func(t *testing.T) {
		f := newFixture(t)
		f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 60 * MicroPerSpice, Flags: Pending})
		f.fails(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 41 * MicroPerSpice}, CodeInsufficientFunds)
		f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 40 * MicroPerSpice})
		f.checkBooks()
	})
	t.Run("PartialPostReleasesRest", func(t *testing.T) {
		f := newFixture(t)
		h := f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 10 * MicroPerSpice, Flags: Pending})
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending, Amount: 11 * MicroPerSpice}, CodeExceedsPending)
		f.fails(alice, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending, Amount: 4 * MicroPerSpice}, CodeForbidden) // only the payee posts
		p := f.ok(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending, Amount: 4 * MicroPerSpice})
		if p.DebitAccountID != f.ali || p.CreditAccountID != f.bo || p.Amount != 4*MicroPerSpice {
			t.Fatalf("post resolved to %+v", p)
		}
		a := f.s.accounts[f.ali]
		if a.Balance() != 96*MicroPerSpice || a.DebitsPending != 0 || f.balance(f.bo) != 4*MicroPerSpice {
			t.Fatalf("after partial post: alice %s (pending %s), bob %s", a.Balance(), a.DebitsPending, f.balance(f.bo))
		}
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending}, CodeHoldAlreadyPosted)
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: VoidPending}, CodeHoldAlreadyPosted)
		f.checkBooks()
	})
	t.Run("VoidReleasesAll", func(t *testing.T) {
		f := newFixture(t)
		h := f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 100 * MicroPerSpice, Flags: Pending})
		v := f.ok(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: VoidPending})
		if v.Amount != 100*MicroPerSpice {
			t.Fatalf("void released %s, want 100 SP", v.Amount)
		}
		if a := f.s.accounts[f.ali]; a.Available() != 100*MicroPerSpice {
			t.Fatalf("alice available %s after void, want 100 SP", a.Available())
		}
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending}, CodeHoldAlreadyVoided)
		f.checkBooks()
	})
	t.Run("PostOfPlainTransfer", func(t *testing.T) {
		f := newFixture(t)
		p := f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1})
		f.fails(bob, Transfer{ID: NewID(), PendingID: p.ID, Flags: PostPending}, CodePendingNotPending)
	})
	t.Run("PendingMismatch", func(t *testing.T) {
		f := newFixture(t)
		h := f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 1, Flags: Pending})
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending, CreditAccountID: f.ali}, CodePendingMismatch)
	})
	t.Run("Expiry", func(t *testing.T) {
		f := newFixture(t)
		h := f.ok(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 30 * MicroPerSpice, Flags: Pending, Timeout: 60})
		if due := f.s.dueExpiries(f.now+59*int64(time.Second), 10); len(due) != 0 {
			t.Fatalf("%d holds expired before their timeout", len(due))
		}
		f.now += 61 * int64(time.Second)
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending}, CodeHoldExpired)
		due := f.s.dueExpiries(f.now, 10)
		if len(due) != 1 || due[0].PendingID != h.ID || due[0].ID != expiryID(h.ID) {
			t.Fatalf("due expiries %+v, want one void of %s", due, h.ID)
		}
		e := f.ok(System, due[0])
		if e.Amount != 30*MicroPerSpice || f.s.accounts[f.ali].Available() != 100*MicroPerSpice {
			t.Fatalf("expiry released %s; alice available %s", e.Amount, f.s.accounts[f.ali].Available())
		}
		f.fails(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: VoidPending}, CodeHoldExpired)
		f.checkBooks()
	})
}

func TestRollbackRestoresState(t *testing.T) {
	f := newFixture(t)
	m := f.s.mark()
	h, _, err := f.s.createTransfer(alice, Transfer{ID: NewID(), DebitAccountID: f.ali, CreditAccountID: f.bo, Amount: 5, Flags: Pending, Timeout: 10}, f.ts(), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.createTransfer(bob, Transfer{ID: NewID(), PendingID: h.ID, Flags: PostPending}, f.ts(), false); err != nil {
		t.Fatal(err)
	}
	f.s.rollback(m)
	if _, ok := f.s.transfers[h.ID]; ok {
		t.Fatal("rolled-back transfer still known")
	}
	if _, ok := f.s.holds[h.ID]; ok {
		t.Fatal("rolled-back hold still known")
	}
	if a := f.s.accounts[f.ali]; a.Balance() != 100*MicroPerSpice || a.DebitsPending != 0 {
		t.Fatalf("alice after rollback: balance %s pending %s", a.Balance(), a.DebitsPending)
	}
	if f.s.nextExpiry() != 0 {
		t.Fatal("rolled-back hold still scheduled to expire")
	}
	f.checkBooks()
}

func TestAccountRules(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		caller Caller
		a      Account
		code   coded.Code
	}{
		{"ZeroID", System, Account{Owner: "x", Kind: KindRenter}, CodeIDZero},
		{"NoOwner", System, Account{ID: NewID(), Kind: KindRenter}, CodeInvalid},
		{"UnknownKind", System, Account{ID: NewID(), Owner: "x", Kind: 99}, CodeInvalid},
		{"NegativeRenter", System, Account{ID: NewID(), Owner: "x", Kind: KindRenter, Flags: AccountAllowNegative}, CodeInvalid},
		{"OthersAccount", alice, Account{ID: NewID(), Owner: "bob", Kind: KindRenter}, CodeForbidden},
		{"RenterCreatesIssuance", alice, Account{ID: NewID(), Owner: "alice", Kind: KindIssuance, Flags: AccountAllowNegative}, CodeForbidden},
		{"Conflict", System, Account{ID: f.ali, Owner: "alice", Kind: KindContributor}, CodeIDConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.s.createAccount(tt.caller, tt.a, f.ts())
			if err == nil || err.Code != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
		})
	}
	got, existed, err := f.s.createAccount(alice, Account{ID: f.ali, Owner: "alice", Kind: KindRenter}, f.ts())
	if err != nil || !existed || got.Balance() != 100*MicroPerSpice {
		t.Fatalf("identical retry: %+v existed=%v err=%v", got, existed, err)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	tr := Transfer{ID: NewID(), DebitAccountID: NewID(), CreditAccountID: NewID(), Amount: 42, Code: 3, UserData: "héllo", Flags: Pending | Linked, Timeout: 9, Timestamp: 1234}
	b := AppendTransferEntry(nil, &tr)
	e, err := DecodeEntry(b)
	if err != nil || e.Transfer == nil || *e.Transfer != tr {
		t.Fatalf("transfer round trip: %+v, %v", e.Transfer, err)
	}
	a := Account{ID: NewID(), Owner: "alice", Kind: KindIssuance, Flags: AccountAllowNegative, Code: 1, UserData: "x", Timestamp: 99}
	e, err = DecodeEntry(AppendAccountEntry(nil, &a))
	if err != nil || e.Account == nil || *e.Account != a {
		t.Fatalf("account round trip: %+v, %v", e.Account, err)
	}
	for name, bad := range map[string][]byte{
		"Empty":         nil,
		"Version2":      append([]byte{2}, b[1:]...),
		"UnknownType":   append([]byte{1, 9}, b[2:]...),
		"Trailing":      append(append([]byte{}, b...), 0),
		"Truncated":     b[:len(b)-1],
		"InvalidUTF8":   AppendTransferEntry(nil, &Transfer{ID: tr.ID, DebitAccountID: tr.DebitAccountID, CreditAccountID: tr.CreditAccountID, Amount: 1, UserData: "\xff", Timestamp: 1}),
		"ZeroAmount":    AppendTransferEntry(nil, &Transfer{ID: tr.ID, DebitAccountID: tr.DebitAccountID, CreditAccountID: tr.CreditAccountID, Timestamp: 1}),
		"ReservedFlags": AppendTransferEntry(nil, &Transfer{ID: tr.ID, DebitAccountID: tr.DebitAccountID, CreditAccountID: tr.CreditAccountID, Amount: 1, Flags: 1 << 12, Timestamp: 1}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeEntry(bad); err == nil {
				t.Fatal("decoded an invalid entry")
			}
		})
	}
}

func TestReplayRejectsOverdraft(t *testing.T) {
	iss, ali, bo := NewID(), NewID(), NewID()
	leaves := [][]byte{
		AppendAccountEntry(nil, &Account{ID: iss, Owner: "hub", Kind: KindIssuance, Flags: AccountAllowNegative, Timestamp: 1}),
		AppendAccountEntry(nil, &Account{ID: ali, Owner: "alice", Kind: KindRenter, Timestamp: 2}),
		AppendAccountEntry(nil, &Account{ID: bo, Owner: "bob", Kind: KindRenter, Timestamp: 3}),
		AppendTransferEntry(nil, &Transfer{ID: NewID(), DebitAccountID: iss, CreditAccountID: ali, Amount: 10, Timestamp: 4}),
		// An operator who rewrote history to pay bob more than alice had:
		AppendTransferEntry(nil, &Transfer{ID: NewID(), DebitAccountID: ali, CreditAccountID: bo, Amount: 11, Timestamp: 5}),
	}
	r := NewReplay()
	var err error
	for _, l := range leaves {
		e, derr := DecodeEntry(l)
		if derr != nil {
			t.Fatal(derr)
		}
		if err = r.Apply(e); err != nil {
			break
		}
	}
	if coded.CodeOf(err) != CodeInsufficientFunds {
		t.Fatalf("replay of an overdraft: got %v, want insufficient_funds", err)
	}
}
