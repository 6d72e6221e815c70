// Package invoice is what a hub issues for rented work: an invoice to the
// renter per job and a statement to each contributor per period. Every line
// points at the ledger transfers that moved its Spice and their indexes in
// the hub's transparency log, so either party can check it against the log.
// Invoices render as JSON, HTML and PDF.
package invoice

import (
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Kind is what a document is.
type Kind string

const (
	RenterInvoice        Kind = "invoice"   // to a renter, per job
	ContributorStatement Kind = "statement" // to a contributor, per period
)

// Invoice is an invoice or a statement. Its Number is gapless and sequential
// per hub across both kinds.
type Invoice struct {
	Number   int64     `json:"number"`
	Kind     Kind      `json:"kind"`
	Hub      string    `json:"hub"`
	Party    string    `json:"party"`         // the renter or contributor principal
	Job      string    `json:"job,omitempty"` // renter invoices: the job
	From     time.Time `json:"from,omitzero"` // statements: the period
	To       time.Time `json:"to,omitzero"`   // statements: the period
	IssuedAt time.Time `json:"issued_at"`
	Currency string    `json:"currency"` // always "SP"; amounts are µSP
	Lines    []Line    `json:"lines"`
	Notes    []string  `json:"notes,omitempty"` // e.g. "allocation x lost on node y: not charged"

	// Subtotal is the sum of the lines. Commission is the hub's share of it:
	// included in what the renter pays, deducted from what the contributor
	// earns. Total is what the party paid (invoice) or was credited
	// (statement: Subtotal − Commission).
	Subtotal   ledger.Amount `json:"subtotal"`
	Commission ledger.Amount `json:"commission"`
	Total      ledger.Amount `json:"total"`
	// Credit is usage beyond the renter's quoted maximum, not charged
	// (invoices only): Total = Subtotal − Credit.
	Credit ledger.Amount `json:"credit,omitempty"`
}

// Earnings is the resource of a statement's lines: what one allocation
// earned the contributor in the period (before the hub's commission; a
// negative amount is a refund for work that was lost).
const Earnings market.Resource = "earnings"

// Line is one resource of one allocation (invoices), or what one
// allocation earned (statements: Cost.Resource is Earnings).
type Line struct {
	Allocation string          `json:"allocation"`
	Job        string          `json:"job,omitempty"` // statements: the renter's job
	Node       string          `json:"node,omitempty"`
	Cost       market.LineCost `json:"cost"`
	Transfers  []ledger.ID     `json:"transfers"`   // the settlement transfers for this allocation
	LogIndexes []int64         `json:"log_indexes"` // their indexes in the transparency log
}

// Description says what a line is in words, e.g. "CPU 500 MHz × 1h02m03s".
func (l Line) Description() string {
	if l.Cost.Resource == Earnings {
		if l.Cost.Amount < 0 {
			return "refund for lost work, job " + l.Job
		}
		return "earnings, job " + l.Job
	}
	unit := "MB"
	if l.Cost.Resource == market.CPU {
		unit = "MHz"
	}
	return fmt.Sprintf("%s %d %s × %s", l.Cost.Resource, l.Cost.Quantity, unit, (time.Duration(l.Cost.Millis) * time.Millisecond).String())
}

// Finish computes Subtotal and Total from the lines and commission, and
// checks the document is consistent.
func (inv *Invoice) Finish() error {
	var sub ledger.Amount
	for _, l := range inv.Lines {
		if l.Cost.Amount < 0 && inv.Kind != ContributorStatement {
			return fmt.Errorf("invoice: negative line amount")
		}
		sub += l.Cost.Amount
	}
	inv.Subtotal = sub
	inv.Currency = "SP"
	switch inv.Kind {
	case RenterInvoice:
		if inv.Credit < 0 || inv.Credit > sub {
			return fmt.Errorf("invoice: credit %s is not within the subtotal %s", inv.Credit, sub)
		}
		if inv.Commission < 0 || inv.Commission > sub-inv.Credit {
			return fmt.Errorf("invoice: commission %s is not within the subtotal %s", inv.Commission, sub-inv.Credit)
		}
		inv.Total = sub - inv.Credit
	case ContributorStatement:
		// Refunds of lost work can make a period's lines, and the
		// commission returned with them, negative.
		if inv.Credit != 0 {
			return fmt.Errorf("invoice: a statement has no credit")
		}
		inv.Total = sub - inv.Commission
	default:
		return fmt.Errorf("invoice: unknown kind %q", inv.Kind)
	}
	return nil
}

// Title is the document's heading, e.g. "Invoice 42".
func (inv *Invoice) Title() string {
	if inv.Kind == ContributorStatement {
		return fmt.Sprintf("Statement %d", inv.Number)
	}
	return fmt.Sprintf("Invoice %d", inv.Number)
}
