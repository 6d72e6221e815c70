package ledger

import (
	"container/heap"
	"crypto/sha256"
	"fmt"
	"unicode/utf8"

	"github.com/spiceroute/spiceroute/hub/coded"
)

// Caller is who asks for a ledger change. Operators may do anything; other
// principals may only create their own renter or contributor accounts, debit
// accounts they own, and post or void holds whose credit account they own.
type Caller struct {
	Principal string
	Operator  bool
}

// System is the ledger itself (expiring holds) and replay.
var System = Caller{Principal: "system", Operator: true}

type holdStatus uint8

const (
	holdOpen holdStatus = iota + 1
	holdPosted
	holdVoided
	holdExpired
)

// state is the ledger's in-memory state: every account with its balances,
// every transfer (for idempotency) and the status of every hold. It is owned
// by one goroutine. Changes are recorded in an undo log so that a failed
// linked chain can be rolled back.
type state struct {
	accounts  map[ID]*Account
	transfers map[ID]*Transfer
	holds     map[ID]holdStatus
	expiries  expiryHeap
	lastTS    int64

	undo  []undoRecord
	dirty map[ID]*Account // accounts whose balances changed since the last takeDirty
}

type undoRecord struct {
	account    *Account // non-nil: restore balances to prev
	prev       [4]Amount
	newAccount ID // non-zero: delete this account
	newXfer    ID // non-zero: delete this transfer
	hold       ID // non-zero: restore hold status to prevHold (0 = delete)
	prevHold   holdStatus
}

func newState() *state {
	return &state{
		accounts:  make(map[ID]*Account),
		transfers: make(map[ID]*Transfer),
		holds:     make(map[ID]holdStatus),
		dirty:     make(map[ID]*Account),
	}
}

// nextTimestamp returns a ledger timestamp: now, or one more than the last
// one, whichever is larger, so timestamps are unique and increasing.
func (s *state) nextTimestamp(now int64) int64 {
	if now <= s.lastTS {
		now = s.lastTS + 1
	}
	s.lastTS = now
	return now
}

func (s *state) mark() int { return len(s.undo) }

// rollback undoes every change since mark m.
func (s *state) rollback(m int) {
	for i := len(s.undo) - 1; i >= m; i-- {
		u := s.undo[i]
		switch {
		case u.account != nil:
			u.account.DebitsPending, u.account.DebitsPosted = u.prev[0], u.prev[1]
			u.account.CreditsPending, u.account.CreditsPosted = u.prev[2], u.prev[3]
		case !u.newAccount.IsZero():
			delete(s.accounts, u.newAccount)
			delete(s.dirty, u.newAccount)
		case !u.newXfer.IsZero():
			delete(s.transfers, u.newXfer)
		case !u.hold.IsZero():
			if u.prevHold == 0 {
				delete(s.holds, u.hold)
			} else {
				s.holds[u.hold] = u.prevHold
			}
		}
	}
	s.undo = s.undo[:m]
}

// commitUndo forgets the undo log: the changes are final.
func (s *state) commitUndo() { s.undo = s.undo[:0] }

func (s *state) touch(a *Account) {
	s.undo = append(s.undo, undoRecord{account: a, prev: [4]Amount{a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted}})
	s.dirty[a.ID] = a
}

func (s *state) setHold(id ID, st holdStatus) {
	s.undo = append(s.undo, undoRecord{hold: id, prevHold: s.holds[id]})
	s.holds[id] = st
}

// takeDirty returns copies of the accounts changed since the last call.
func (s *state) takeDirty() []Account {
	out := make([]Account, 0, len(s.dirty))
	for id, a := range s.dirty {
		out = append(out, *a)
		delete(s.dirty, id)
	}
	return out
}

// createAccount validates and applies one account. existed reports that an
// identical account was already there (its stored form is returned).
func (s *state) createAccount(c Caller, a Account, ts int64) (Account, bool, *coded.Error) {
	if a.ID.IsZero() {
		return a, false, errf(CodeIDZero, "account id is zero")
	}
	if err := validAccountFields(&a); err != nil {
		return a, false, errf(CodeInvalid, "account %s: %v", a.ID, err)
	}
	if old, ok := s.accounts[a.ID]; ok {
		if old.Owner == a.Owner && old.Kind == a.Kind && old.Flags == a.Flags && old.Code == a.Code && old.UserData == a.UserData {
			return *old, true, nil
		}
		return a, false, errf(CodeIDConflict, "account %s exists with a different body", a.ID)
	}
	if !c.Operator {
		if a.Owner != c.Principal {
			return a, false, errf(CodeForbidden, "account %s: you may only create accounts you own (owner %q)", a.ID, c.Principal)
		}
		if a.Kind != KindRenter && a.Kind != KindContributor {
			return a, false, errf(CodeForbidden, "account %s: only an operator may create %s accounts", a.ID, a.Kind)
		}
	}
	a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted = 0, 0, 0, 0
	a.Timestamp = ts
	p := &a
	s.accounts[a.ID] = p
	s.undo = append(s.undo, undoRecord{newAccount: a.ID})
	s.dirty[a.ID] = p
	return a, false, nil
}

// sameTransfer reports whether retry asks for what committed did.
func sameTransfer(retry, committed *Transfer) bool {
	if retry.Flags != committed.Flags || retry.Code != committed.Code || retry.UserData != committed.UserData ||
		retry.PendingID != committed.PendingID || retry.Timeout != committed.Timeout {
		return false
	}
	if committed.Flags&(PostPending|VoidPending) != 0 {
		// Post and void may leave accounts and amount to the ledger.
		return (retry.DebitAccountID.IsZero() || retry.DebitAccountID == committed.DebitAccountID) &&
			(retry.CreditAccountID.IsZero() || retry.CreditAccountID == committed.CreditAccountID) &&
			(retry.Amount == 0 || retry.Amount == committed.Amount)
	}
	return retry.DebitAccountID == committed.DebitAccountID && retry.CreditAccountID == committed.CreditAccountID &&
		retry.Amount == committed.Amount
}

// createTransfer validates and applies one transfer at ledger time ts.
// replay is set when rebuilding from the log: there a duplicate ID is an
// error rather than a retry.
func (s *state) createTransfer(c Caller, t Transfer, ts int64, replay bool) (Transfer, bool, *coded.Error) {
	if t.ID.IsZero() {
		return t, false, errf(CodeIDZero, "transfer id is zero")
	}
	allowed := transferFlagsClient
	if c == System {
		allowed |= Expiry
	}
	if t.Flags&^allowed != 0 {
		return t, false, errf(CodeInvalid, "transfer %s: unknown or reserved flags %#x", t.ID, uint16(t.Flags&^allowed))
	}
	if old, ok := s.transfers[t.ID]; ok {
		if !replay && sameTransfer(&t, old) {
			return *old, true, nil
		}
		return t, false, errf(CodeIDConflict, "transfer %s exists with a different body", t.ID)
	}
	if len(t.UserData) > MaxUserData || !utf8.ValidString(t.UserData) {
		return t, false, errf(CodeInvalid, "transfer %s: user_data must be at most %d bytes of UTF-8", t.ID, MaxUserData)
	}
	kind := t.Flags & (Pending | PostPending | VoidPending)
	if kind != 0 && kind&(kind-1) != 0 {
		return t, false, errf(CodeInvalid, "transfer %s: at most one of pending, post_pending, void_pending", t.ID)
	}
	if t.Flags&Expiry != 0 && kind != VoidPending {
		return t, false, errf(CodeInvalid, "transfer %s: expiry must be a void", t.ID)
	}
	if t.Timeout != 0 && kind != Pending {
		return t, false, errf(CodeInvalid, "transfer %s: timeout is only for pending transfers", t.ID)
	}
	if t.Timeout > MaxTimeout {
		return t, false, errf(CodeInvalid, "transfer %s: timeout %ds is longer than the maximum %ds", t.ID, t.Timeout, MaxTimeout)
	}
	if kind == PostPending || kind == VoidPending {
		return s.resolveHold(c, t, ts)
	}
	if !t.PendingID.IsZero() {
		return t, false, errf(CodeInvalid, "transfer %s: pending_id is only for post and void", t.ID)
	}
	if t.Amount <= 0 || t.Amount > MaxAmount {
		return t, false, errf(CodeAmountInvalid, "transfer %s: amount %d µSP must be between 1 and %d", t.ID, int64(t.Amount), int64(MaxAmount))
	}
	if t.DebitAccountID.IsZero() || t.CreditAccountID.IsZero() {
		return t, false, errf(CodeIDZero, "transfer %s: debit and credit accounts are required", t.ID)
	}
	if t.DebitAccountID == t.CreditAccountID {
		return t, false, errf(CodeSameAccount, "transfer %s: debit and credit are the same account", t.ID)
	}
	dr, cr, err := s.accountsOf(&t)
	if err != nil {
		return t, false, err
	}
	if !c.Operator && dr.Owner != c.Principal {
		return t, false, errf(CodeForbidden, "transfer %s: you may only debit accounts you own", t.ID)
	}
	if dr.Flags&AccountAllowNegative == 0 {
		spent, ok1 := addChecked(dr.DebitsPosted, dr.DebitsPending)
		spent, ok2 := addChecked(spent, t.Amount)
		if !ok1 || !ok2 {
			return t, false, errf(CodeOverflow, "transfer %s: debits of account %s would overflow", t.ID, dr.ID)
		}
		if spent > dr.CreditsPosted {
			return t, false, errf(CodeInsufficientFunds, "transfer %s: account %s has %s available, %s short of %s",
				t.ID, dr.ID, dr.Available(), spent-dr.CreditsPosted, t.Amount)
		}
	}
	drField, crField := &dr.DebitsPosted, &cr.CreditsPosted
	if kind == Pending {
		drField, crField = &dr.DebitsPending, &cr.CreditsPending
	}
	nd, ok1 := addChecked(*drField, t.Amount)
	nc, ok2 := addChecked(*crField, t.Amount)
	if !ok1 || !ok2 {
		return t, false, errf(CodeOverflow, "transfer %s: a balance would overflow", t.ID)
	}
	s.touch(dr)
	s.touch(cr)
	*drField, *crField = nd, nc
	t.Timestamp = ts
	s.addTransfer(&t)
	if kind == Pending {
		s.setHold(t.ID, holdOpen)
		if t.Timeout > 0 {
			heap.Push(&s.expiries, expiry{at: t.ExpiresAt().UnixNano(), id: t.ID})
		}
	}
	return t, false, nil
}

func (s *state) addTransfer(t *Transfer) {
	p := new(Transfer)
	*p = *t
	s.transfers[t.ID] = p
	s.undo = append(s.undo, undoRecord{newXfer: t.ID})
}

func (s *state) accountsOf(t *Transfer) (dr, cr *Account, err *coded.Error) {
	dr, cr = s.accounts[t.DebitAccountID], s.accounts[t.CreditAccountID]
	switch {
	case dr == nil:
		return nil, nil, errf(CodeAccountNotFound, "transfer %s: debit account %s not found", t.ID, t.DebitAccountID)
	case cr == nil:
		return nil, nil, errf(CodeAccountNotFound, "transfer %s: credit account %s not found", t.ID, t.CreditAccountID)
	case dr.Flags&AccountClosed != 0:
		return nil, nil, errf(CodeAccountClosed, "transfer %s: debit account %s is closed", t.ID, dr.ID)
	case cr.Flags&AccountClosed != 0:
		return nil, nil, errf(CodeAccountClosed, "transfer %s: credit account %s is closed", t.ID, cr.ID)
	}
	return dr, cr, nil
}

// resolveHold posts or voids the hold t.PendingID.
func (s *state) resolveHold(c Caller, t Transfer, ts int64) (Transfer, bool, *coded.Error) {
	if t.PendingID.IsZero() {
		return t, false, errf(CodeInvalid, "transfer %s: pending_id is required to post or void", t.ID)
	}
	p, ok := s.transfers[t.PendingID]
	if !ok {
		return t, false, errf(CodePendingNotFound, "transfer %s: pending transfer %s not found", t.ID, t.PendingID)
	}
	if p.Flags&Pending == 0 {
		return t, false, errf(CodePendingNotPending, "transfer %s: transfer %s is not a hold", t.ID, t.PendingID)
	}
	switch s.holds[p.ID] {
	case holdPosted:
		return t, false, errf(CodeHoldAlreadyPosted, "transfer %s: hold %s was already posted", t.ID, p.ID)
	case holdVoided:
		return t, false, errf(CodeHoldAlreadyVoided, "transfer %s: hold %s was already voided", t.ID, p.ID)
	case holdExpired:
		return t, false, errf(CodeHoldExpired, "transfer %s: hold %s expired", t.ID, p.ID)
	}
	expired := p.Timeout > 0 && ts >= p.ExpiresAt().UnixNano()
	if t.Flags&Expiry != 0 {
		if !expired {
			return t, false, errf(CodeInvalid, "transfer %s: hold %s has not expired yet", t.ID, p.ID)
		}
	} else if expired {
		return t, false, errf(CodeHoldExpired, "transfer %s: hold %s expired", t.ID, p.ID)
	}
	if !t.DebitAccountID.IsZero() && t.DebitAccountID != p.DebitAccountID ||
		!t.CreditAccountID.IsZero() && t.CreditAccountID != p.CreditAccountID {
		return t, false, errf(CodePendingMismatch, "transfer %s: accounts differ from those of hold %s", t.ID, p.ID)
	}
	dr, cr, err := s.accountsOf(p)
	if err != nil && t.Flags&VoidPending == 0 {
		return t, false, err // a hold on a closed account can still be voided
	}
	dr, cr = s.accounts[p.DebitAccountID], s.accounts[p.CreditAccountID]
	if !c.Operator && cr.Owner != c.Principal {
		return t, false, errf(CodeForbidden, "transfer %s: only the owner of the credit account may post or void hold %s", t.ID, p.ID)
	}
	amount := t.Amount
	if t.Flags&VoidPending != 0 {
		if amount != 0 && amount != p.Amount {
			return t, false, errf(CodeAmountInvalid, "transfer %s: a void releases the whole hold of %s, not %s", t.ID, p.Amount, amount)
		}
		amount = p.Amount
	} else {
		if amount < 0 {
			return t, false, errf(CodeAmountInvalid, "transfer %s: amount %d µSP is negative", t.ID, int64(amount))
		}
		if amount == 0 {
			amount = p.Amount
		}
		if amount > p.Amount {
			return t, false, errf(CodeExceedsPending, "transfer %s: posts %s, more than the %s held by %s", t.ID, amount, p.Amount, p.ID)
		}
	}
	s.touch(dr)
	s.touch(cr)
	dr.DebitsPending -= p.Amount
	cr.CreditsPending -= p.Amount
	status := holdVoided
	if t.Flags&PostPending != 0 {
		dr.DebitsPosted += amount // cannot overflow: reserved by the hold
		cr.CreditsPosted += amount
		status = holdPosted
	} else if t.Flags&Expiry != 0 {
		status = holdExpired
	}
	t.DebitAccountID, t.CreditAccountID, t.Amount, t.Timestamp = p.DebitAccountID, p.CreditAccountID, amount, ts
	s.addTransfer(&t)
	s.setHold(p.ID, status)
	return t, false, nil
}

// expiryID is the ID of the void the ledger writes when hold expires:
// SHA-256("spiceroute/expiry/v1" || hold ID), first 16 bytes.
func expiryID(hold ID) ID {
	h := sha256.Sum256(append([]byte("spiceroute/expiry/v1"), hold[:]...))
	var id ID
	copy(id[:], h[:16])
	return id
}

// dueExpiries returns voids for every open hold that has expired at now.
func (s *state) dueExpiries(now int64, max int) []Transfer {
	var out []Transfer
	for len(s.expiries) > 0 && len(out) < max && s.expiries[0].at <= now {
		e := heap.Pop(&s.expiries).(expiry)
		if s.holds[e.id] != holdOpen {
			continue // posted, voided, or rolled back
		}
		out = append(out, Transfer{ID: expiryID(e.id), PendingID: e.id, Flags: VoidPending | Expiry})
	}
	return out
}

// nextExpiry is when the earliest open hold expires, or 0.
func (s *state) nextExpiry() int64 {
	for len(s.expiries) > 0 {
		if s.holds[s.expiries[0].id] == holdOpen {
			return s.expiries[0].at
		}
		heap.Pop(&s.expiries)
	}
	return 0
}

type expiry struct {
	at int64
	id ID
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Replay applies committed log entries in order, checking every rule the
// ledger enforces. The auditor uses it to recompute balances from the public
// log; Open uses it to rebuild state from the store.
type Replay struct {
	s    *state
	next int64
}

// NewReplay starts a replay of a log from index 0.
func NewReplay() *Replay { return &Replay{s: newState()} }

// Apply applies the next entry. An error means the log holds something the
// ledger would never have committed.
func (r *Replay) Apply(e Entry) error {
	defer r.s.commitUndo()
	defer func() { r.next++ }()
	switch {
	case e.Account != nil:
		a := *e.Account
		if a.Timestamp <= r.s.lastTS {
			return fmt.Errorf("ledger: replay entry %d: timestamp %d not after %d", r.next, a.Timestamp, r.s.lastTS)
		}
		if _, ok := r.s.accounts[a.ID]; ok {
			return fmt.Errorf("ledger: replay entry %d: account %s created twice", r.next, a.ID)
		}
		r.s.lastTS = a.Timestamp
		if _, _, err := r.s.createAccount(System, a, a.Timestamp); err != nil {
			return fmt.Errorf("ledger: replay entry %d: %w", r.next, err)
		}
		r.s.accounts[a.ID].LogIndex = r.next
	case e.Transfer != nil:
		t := *e.Transfer
		if t.Timestamp <= r.s.lastTS {
			return fmt.Errorf("ledger: replay entry %d: timestamp %d not after %d", r.next, t.Timestamp, r.s.lastTS)
		}
		r.s.lastTS = t.Timestamp
		got, _, err := r.s.createTransfer(System, t, t.Timestamp, true)
		if err != nil {
			return fmt.Errorf("ledger: replay entry %d: %w", r.next, err)
		}
		if got != t {
			return fmt.Errorf("ledger: replay entry %d: transfer %s resolves differently than logged", r.next, t.ID)
		}
		r.s.transfers[t.ID].LogIndex = r.next
	default:
		return fmt.Errorf("ledger: replay entry %d: empty entry", r.next)
	}
	return nil
}

// Accounts returns every account with its replayed balances.
func (r *Replay) Accounts() map[ID]Account {
	out := make(map[ID]Account, len(r.s.accounts))
	for id, a := range r.s.accounts {
		out[id] = *a
	}
	return out
}

// Transfer returns a replayed transfer by ID.
func (r *Replay) Transfer(id ID) (Transfer, bool) {
	t, ok := r.s.transfers[id]
	if !ok {
		return Transfer{}, false
	}
	return *t, true
}

// Size is the number of entries applied.
func (r *Replay) Size() int64 { return r.next }
