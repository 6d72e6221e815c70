// Package ledger is SpiceRoute's double-entry Spice ledger.
//
// Every movement of Spice is a Transfer that debits one Account and credits
// another by the same Amount, so the sum of all balances is always zero: the
// issuance account (where Spice bought with money enters) goes negative by
// exactly the total issued. The semantics follow TigerBeetle's: client-chosen
// 128-bit IDs make every write idempotent; pending transfers (holds) reserve
// funds and are later posted (in full or in part), voided, or expire; linked
// transfers commit all or nothing.
//
// One Ledger per hub validates transfers in order in memory and commits them
// to its Store in batches, one database transaction per batch (group commit).
// A caller's result is returned only once its batch is durable. The Store is
// the only truth: on Open the in-memory state is rebuilt from it.
//
// Each committed account and transfer is also a leaf of the hub's
// transparency log, in the binary encoding of entry.go.
package ledger

import (
	"encoding/json"
	"fmt"
	"time"
)

// AccountKind says what an account is for.
type AccountKind uint8

const (
	KindRenter        AccountKind = 1 // a renter's spendable Spice
	KindContributor   AccountKind = 2 // a contributor's earnings
	KindHubRevenue    AccountKind = 3 // the hub's own revenue
	KindHubCommission AccountKind = 4 // the hub's commission on rented work
	KindEscrow        AccountKind = 5 // holds and escrow
	KindPeerHub       AccountKind = 6 // what a peer hub owes or is owed
	KindIssuance      AccountKind = 7 // where Spice enters the system; may go negative
	KindPayout        AccountKind = 8 // where Spice leaves the system: paid out to contributors in money
)

var kindNames = map[AccountKind]string{
	KindRenter:        "renter",
	KindContributor:   "contributor",
	KindHubRevenue:    "hub_revenue",
	KindHubCommission: "hub_commission",
	KindEscrow:        "escrow",
	KindPeerHub:       "peer_hub",
	KindIssuance:      "issuance",
	KindPayout:        "payout",
}

func (k AccountKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a known kind.
func (k AccountKind) Valid() bool { _, ok := kindNames[k]; return ok }

// ParseAccountKind parses the name of a kind ("renter", "issuance", ...).
func ParseAccountKind(s string) (AccountKind, error) {
	for k, name := range kindNames {
		if name == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown account kind %q", s)
}

func (k AccountKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *AccountKind) UnmarshalText(b []byte) error {
	v, err := ParseAccountKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// AccountFlags are per-account options. The zero value is the safe default:
// the balance may not go negative.
type AccountFlags uint16

const (
	// AccountAllowNegative lets debits exceed credits. Only the issuance
	// account (and peer-hub accounts, which net cross-hub balances) use it.
	AccountAllowNegative AccountFlags = 1 << 0
	// AccountClosed refuses any new transfer touching the account.
	AccountClosed AccountFlags = 1 << 1

	accountFlagsKnown = AccountAllowNegative | AccountClosed
)

// Account is a ledger account and its balances. Balances are maintained by
// the ledger; a client sets only ID, Owner, Kind, Flags, Code and UserData.
type Account struct {
	ID       ID           `json:"id"`
	Owner    string       `json:"owner"` // principal that may spend from it, e.g. "renter:alice"
	Kind     AccountKind  `json:"kind"`
	Flags    AccountFlags `json:"flags"`
	Code     uint16       `json:"code,omitempty"`
	UserData string       `json:"user_data,omitempty"`

	DebitsPending  Amount `json:"debits_pending"`
	DebitsPosted   Amount `json:"debits_posted"`
	CreditsPending Amount `json:"credits_pending"`
	CreditsPosted  Amount `json:"credits_posted"`

	Timestamp int64 `json:"timestamp"` // ledger time of creation, ns since the Unix epoch
	LogIndex  int64 `json:"log_index"` // index of its leaf in the transparency log
}

// Balance is credits posted minus debits posted.
func (a *Account) Balance() Amount { return a.CreditsPosted - a.DebitsPosted }

// Available is what may still be debited: the balance less pending debits.
func (a *Account) Available() Amount { return a.Balance() - a.DebitsPending }

// MarshalJSON adds the derived balance and available fields.
func (a Account) MarshalJSON() ([]byte, error) {
	type plain Account
	return json.Marshal(struct {
		plain
		Balance   Amount `json:"balance"`
		Available Amount `json:"available"`
	}{plain(a), a.Balance(), a.Available()})
}

// TransferFlags select what a transfer does.
type TransferFlags uint16

const (
	// Linked chains this transfer with the next one in the same batch: the
	// chain commits all or nothing. The last transfer of a chain has no Linked.
	Linked TransferFlags = 1 << 0
	// Pending reserves Amount (a hold) until it is posted, voided or expires.
	Pending TransferFlags = 1 << 1
	// PostPending posts the pending transfer PendingID, in full (Amount 0 or
	// the full amount) or in part (a smaller Amount; the rest is released).
	PostPending TransferFlags = 1 << 2
	// VoidPending releases the pending transfer PendingID.
	VoidPending TransferFlags = 1 << 3
	// Expiry marks the void the ledger itself writes when a hold times out.
	// Clients cannot set it.
	Expiry TransferFlags = 1 << 4

	transferFlagsClient = Linked | Pending | PostPending | VoidPending
)

// MaxUserData is the most bytes a UserData field may hold.
const MaxUserData = 64

// MaxTimeout is the longest hold, in seconds (30 days).
const MaxTimeout = 30 * 24 * 3600

// Transfer moves Amount from DebitAccountID to CreditAccountID.
//
// A client sets ID, the accounts, Amount, Code, UserData, Flags and, for
// holds, Timeout (seconds) or, for post/void, PendingID. The ledger sets
// Timestamp and LogIndex, and on post/void fills in the accounts and the
// amount actually posted or released.
type Transfer struct {
	ID              ID            `json:"id"`
	DebitAccountID  ID            `json:"debit_account_id"`
	CreditAccountID ID            `json:"credit_account_id"`
	Amount          Amount        `json:"amount"`
	PendingID       ID            `json:"pending_id,omitzero"`
	Timeout         uint32        `json:"timeout,omitempty"` // seconds; 0 = a hold never expires
	Code            uint16        `json:"code"`
	UserData        string        `json:"user_data,omitempty"`
	Flags           TransferFlags `json:"flags"`

	Timestamp int64 `json:"timestamp,omitempty"` // ledger time, ns since the Unix epoch, unique and increasing
	LogIndex  int64 `json:"log_index,omitempty"`
}

// ExpiresAt is when a pending transfer with a timeout expires (zero if never).
func (t *Transfer) ExpiresAt() time.Time {
	if t.Flags&Pending == 0 || t.Timeout == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.Timestamp).Add(time.Duration(t.Timeout) * time.Second)
}
