// Package settle turns metered usage into ledger transfers.
//
// When a job is admitted the hub holds its quoted maximum on the renter's
// account: a pending transfer renter → escrow. A ledger hold can be posted
// only once (posting part of it releases the rest), so each settlement tick
// is one linked chain that, all or nothing:
//
//  1. posts the current hold for the amount now due (renter → escrow),
//  2. holds the remainder again under a new ID (unless this is the final tick),
//  3. pays each contributor its share less the hub's commission (escrow → contributor),
//  4. pays the commission (escrow → hub commission).
//
// Every ID is derived from the job and the tick's sequence number, so a tick
// retried after a crash is recognised by the ledger as already done and
// nothing is charged twice. Money never rests in escrow between ticks.
package settle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Transfer codes used by settlement (ledger.Transfer.Code).
const (
	CodeHold       uint16 = 100 // the hold placed at admission or re-placed by a tick
	CodePostHold   uint16 = 101 // posting the hold for what is due
	CodePay        uint16 = 102 // escrow → contributor
	CodeCommission uint16 = 103 // escrow → hub commission
	CodeRefund     uint16 = 104 // a lost allocation's charge returned to the renter
)

// Accounts are the hub's accounts settlement moves money through.
type Accounts struct {
	Escrow     ledger.ID
	Commission ledger.ID
}

// Hold is a job's current hold.
type Hold struct {
	ID     ledger.ID     `json:"id"`
	Renter ledger.ID     `json:"renter"` // the renter's account
	Amount ledger.Amount `json:"amount"`
	Seq    int           `json:"seq"` // 0 for the admission hold, k after the k-th tick
}

// Charge is what one allocation owes since the previous tick.
type Charge struct {
	Allocation  string
	Contributor ledger.ID // the contributor's account
	Amount      ledger.Amount
	// Paid and PaidCommission are what the allocation paid in earlier
	// ticks and the commission taken from it: the commission is rounded on
	// the running total, so over a job it is exactly Commission(total).
	Paid, PaidCommission ledger.Amount
}

// Share is what one allocation paid in a tick: Gross from the renter, of
// which Commission went to the hub and the rest to the contributor by the
// transfer Pay.
type Share struct {
	Allocation  string        `json:"allocation"`
	Contributor ledger.ID     `json:"contributor"`
	Gross       ledger.Amount `json:"gross"`
	Commission  ledger.Amount `json:"commission"`
	Pay         ledger.ID     `json:"pay,omitzero"` // zero when the whole share was commission
}

// Plan is one tick: the linked chain to submit and the hold that follows it.
type Plan struct {
	Transfers  []ledger.Transfer `json:"transfers"`
	Shares     []Share           `json:"shares,omitempty"` // per allocation, in Transfers' order
	Next       *Hold             `json:"next,omitempty"`   // nil after the final tick
	Charged    ledger.Amount     `json:"charged"`          // taken from the renter
	Commission ledger.Amount     `json:"commission"`       // of which the hub keeps
	Capped     bool              `json:"capped,omitempty"` // usage exceeded the hold; only the hold was charged
}

// ID derives a settlement transfer ID: the first 16 bytes of
// SHA-256("spiceroute/settle/v1" 0 job 0 seq 0 role).
func ID(job string, seq int, role string) ledger.ID {
	h := sha256.Sum256([]byte(fmt.Sprintf("spiceroute/settle/v1\x00%s\x00%d\x00%s", job, seq, role)))
	var id ledger.ID
	copy(id[:], h[:16])
	return id
}

// HoldTransfer is the admission hold for a job: renter → escrow, pending.
func HoldTransfer(job string, renter ledger.ID, amount ledger.Amount, acc Accounts, timeout uint32) ledger.Transfer {
	return ledger.Transfer{ID: ID(job, 0, "hold"), DebitAccountID: renter, CreditAccountID: acc.Escrow, Amount: amount,
		Flags: ledger.Pending, Timeout: timeout, Code: CodeHold, UserData: userData(job)}
}

func userData(job string) string {
	if len(job) > ledger.MaxUserData-4 {
		job = job[:ledger.MaxUserData-4]
	}
	return "job " + job
}

// Commission is the hub's share of amount at rateBP basis points (1/100 %),
// rounded down.
func Commission(amount ledger.Amount, rateBP int) ledger.Amount {
	// floor(a·r/10000) = (a/10000)·r + floor((a%10000)·r/10000), exact and
	// without overflow for any a <= ledger.MaxAmount.
	a, r := int64(amount), int64(rateBP)
	return ledger.Amount(a/10_000*r + a%10_000*r/10_000)
}

// Tick plans a settlement of charges against hold. final ends the job: the
// remainder of the hold is released instead of held again. A non-final tick
// with nothing due returns an empty plan (nothing to submit).
//
// Each allocation is paid by its own transfer (escrow → contributor, user
// data "alloc <id>"), so every allocation's settlement is in the log; the
// commission, rounded down on each allocation's running total, is one
// transfer.
func Tick(job string, hold Hold, charges []Charge, rateBP int, final bool, acc Accounts) (Plan, error) {
	if rateBP < 0 || rateBP > 10_000 {
		return Plan{}, fmt.Errorf("settle: commission rate %d basis points is outside 0..10000", rateBP)
	}
	if hold.Amount <= 0 {
		return Plan{}, errors.New("settle: the hold is empty")
	}
	var due ledger.Amount
	seen := map[string]bool{}
	for _, c := range charges {
		if c.Amount < 0 {
			return Plan{}, fmt.Errorf("settle: allocation %s: negative charge", c.Allocation)
		}
		if seen[c.Allocation] {
			return Plan{}, fmt.Errorf("settle: allocation %s charged twice in one tick", c.Allocation)
		}
		seen[c.Allocation] = true
		due += c.Amount
	}
	p := Plan{}
	charges = append([]Charge(nil), charges...)
	sort.Slice(charges, func(i, j int) bool { return charges[i].Allocation < charges[j].Allocation })
	if due > hold.Amount {
		// Usage ran past what the renter agreed to (a job stopped late at
		// its maximum runtime): the renter pays no more than the hold.
		// Each share is scaled down exactly (a·hold/due, rounded down).
		p.Capped = true
		total := big.NewInt(int64(due))
		due = 0
		for i := range charges {
			n := new(big.Int).Mul(big.NewInt(int64(charges[i].Amount)), big.NewInt(int64(hold.Amount)))
			charges[i].Amount = ledger.Amount(n.Quo(n, total).Int64())
			due += charges[i].Amount
		}
	}
	seq := hold.Seq + 1
	ud := userData(job)
	if due == 0 {
		if !final {
			return Plan{Next: &hold}, nil
		}
		p.Transfers = []ledger.Transfer{{ID: ID(job, seq, "void"), PendingID: hold.ID, Flags: ledger.VoidPending, Code: CodePostHold, UserData: ud}}
		return p, nil
	}
	p.Charged = due
	p.Transfers = append(p.Transfers, ledger.Transfer{ID: ID(job, seq, "post"), PendingID: hold.ID, Amount: due, Flags: ledger.PostPending, Code: CodePostHold, UserData: ud})
	if rest := hold.Amount - due; !final && rest > 0 {
		next := Hold{ID: ID(job, seq, "hold"), Renter: hold.Renter, Amount: rest, Seq: seq}
		p.Transfers = append(p.Transfers, ledger.Transfer{ID: next.ID, DebitAccountID: hold.Renter, CreditAccountID: acc.Escrow, Amount: rest, Flags: ledger.Pending, Code: CodeHold, UserData: ud})
		p.Next = &next
	}
	for _, c := range charges {
		if c.Amount == 0 {
			continue
		}
		sh := Share{Allocation: c.Allocation, Contributor: c.Contributor, Gross: c.Amount,
			Commission: max(0, Commission(c.Paid+c.Amount, rateBP)-c.PaidCommission)}
		p.Commission += sh.Commission
		if net := sh.Gross - sh.Commission; net > 0 {
			sh.Pay = ID(job, seq, "pay "+c.Allocation)
			p.Transfers = append(p.Transfers, ledger.Transfer{ID: sh.Pay, DebitAccountID: acc.Escrow, CreditAccountID: c.Contributor, Amount: net, Code: CodePay, UserData: allocData(c.Allocation)})
		}
		p.Shares = append(p.Shares, sh)
	}
	if p.Commission > 0 {
		p.Transfers = append(p.Transfers, ledger.Transfer{ID: ID(job, seq, "commission"), DebitAccountID: acc.Escrow, CreditAccountID: acc.Commission, Amount: p.Commission, Code: CodeCommission, UserData: ud})
	}
	link(p.Transfers)
	return p, nil
}

// Refund returns to the renter what an allocation paid (a lost allocation:
// the contributor's fault): the contributor's net share and the hub's
// commission, as one linked chain. The contributor's account must cover
// it; if it does not yet, the chain fails as a whole and is retried later.
func Refund(job string, share Share, renter ledger.ID, acc Accounts) []ledger.Transfer {
	var ts []ledger.Transfer
	ud := allocData(share.Allocation)
	if net := share.Gross - share.Commission; net > 0 {
		ts = append(ts, ledger.Transfer{ID: ID(job, 0, "refund "+share.Allocation), DebitAccountID: share.Contributor, CreditAccountID: renter, Amount: net, Code: CodeRefund, UserData: ud})
	}
	if share.Commission > 0 {
		ts = append(ts, ledger.Transfer{ID: ID(job, 0, "refund commission "+share.Allocation), DebitAccountID: acc.Commission, CreditAccountID: renter, Amount: share.Commission, Code: CodeRefund, UserData: ud})
	}
	link(ts)
	return ts
}

// link marks all but the last transfer linked: the chain commits all or nothing.
func link(ts []ledger.Transfer) {
	for i := 0; i+1 < len(ts); i++ {
		ts[i].Flags |= ledger.Linked
	}
}

func allocData(alloc string) string {
	ud := "alloc " + alloc
	if len(ud) > ledger.MaxUserData {
		ud = ud[:ledger.MaxUserData]
	}
	return ud
}
