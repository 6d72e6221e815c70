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
)

// Accounts are the hub's accounts settlement moves money through.
type Accounts struct {
	Escrow     ledger.ID
	Commission ledger.ID
}

// Hold is a job's current hold.
type Hold struct {
	ID     ledger.ID
	Renter ledger.ID // the renter's account
	Amount ledger.Amount
	Seq    int // 0 for the admission hold, k after the k-th tick
}

// Charge is what one allocation owes since the previous tick.
type Charge struct {
	Allocation  string
	Contributor ledger.ID // the contributor's account
	Amount      ledger.Amount
}

// Plan is one tick: the linked chain to submit and the hold that follows it.
type Plan struct {
	Transfers  []ledger.Transfer
	Next       *Hold         // nil after the final tick
	Charged    ledger.Amount // taken from the renter
	Commission ledger.Amount // of which the hub keeps
	Capped     bool          // usage exceeded the hold; only the hold was charged
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
func Tick(job string, hold Hold, charges []Charge, rateBP int, final bool, acc Accounts) (Plan, error) {
	if rateBP < 0 || rateBP > 10_000 {
		return Plan{}, fmt.Errorf("settle: commission rate %d basis points is outside 0..10000", rateBP)
	}
	if hold.Amount <= 0 {
		return Plan{}, errors.New("settle: the hold is empty")
	}
	byContributor := map[ledger.ID]ledger.Amount{}
	var due ledger.Amount
	for _, c := range charges {
		if c.Amount < 0 {
			return Plan{}, fmt.Errorf("settle: allocation %s: negative charge", c.Allocation)
		}
		byContributor[c.Contributor] += c.Amount
		due += c.Amount
	}
	p := Plan{}
	if due > hold.Amount {
		// Cannot happen when the job is stopped at its quoted runtime; if
		// it does, the renter pays no more than it agreed to.
		// Each share is scaled down exactly (a·hold/due, rounded down).
		p.Capped = true
		total := big.NewInt(int64(due))
		scale := func(a ledger.Amount) ledger.Amount {
			n := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(hold.Amount)))
			return ledger.Amount(n.Quo(n, total).Int64())
		}
		due = 0
		for k, a := range byContributor {
			byContributor[k] = scale(a)
			due += byContributor[k]
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
	contributors := make([]ledger.ID, 0, len(byContributor))
	for k := range byContributor {
		contributors = append(contributors, k)
	}
	sort.Slice(contributors, func(i, j int) bool { return contributors[i].String() < contributors[j].String() })
	for _, k := range contributors {
		a := byContributor[k]
		c := Commission(a, rateBP)
		p.Commission += c
		if a-c > 0 {
			p.Transfers = append(p.Transfers, ledger.Transfer{ID: ID(job, seq, "pay "+k.String()), DebitAccountID: acc.Escrow, CreditAccountID: k, Amount: a - c, Code: CodePay, UserData: ud})
		}
	}
	if p.Commission > 0 {
		p.Transfers = append(p.Transfers, ledger.Transfer{ID: ID(job, seq, "commission"), DebitAccountID: acc.Escrow, CreditAccountID: acc.Commission, Amount: p.Commission, Code: CodeCommission, UserData: ud})
	}
	for i := range p.Transfers[:len(p.Transfers)-1] {
		p.Transfers[i].Flags |= ledger.Linked
	}
	return p, nil
}
