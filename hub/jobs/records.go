package jobs

import (
	"context"
	"time"

	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/meter"
	"github.com/spiceroute/spiceroute/hub/settle"
)

// State is where an admission is in its life.
type State string

const (
	Admitted State = "admitted" // held, being registered
	Running  State = "running"  // registered with Nomad; settled every tick
	Settled  State = "settled"  // ended; the final settlement is applied
	Released State = "released" // never registered; the hold was voided
	Failed   State = "failed"   // settlement failed for good (the detail says why)
)

// Record is an admission as the hub keeps it.
type Record struct {
	Key        string        `json:"admission_key"`
	Base       string        `json:"-"`
	Renter     string        `json:"renter"`
	JobID      string        `json:"job_id"`
	Account    ledger.ID     `json:"account"`
	Quote      market.Quote  `json:"quote"`
	Hold       settle.Hold   `json:"hold"`
	Charged    ledger.Amount `json:"charged"`
	Commission ledger.Amount `json:"commission"`
	State      State         `json:"state"`
	Detail     string        `json:"detail,omitempty"`
	Invoice    int64         `json:"invoice,omitempty"`
	CreatedAt  time.Time     `json:"created_at"`
	EndedAt    time.Time     `json:"ended_at,omitzero"`
}

// Open reports whether the admission is still billed.
func (r *Record) Open() bool { return r.State.Open() }

// Open reports whether an admission in state s may still run and charge.
func (s State) Open() bool { return s == Admitted || s == Running }

// AllocRecord is an allocation of an admitted job: what Nomad last said
// about it and what it paid.
type AllocRecord struct {
	ID          string           `json:"id"`
	Admission   string           `json:"admission_key"`
	Node        string           `json:"node"`
	Contributor ledger.ID        `json:"contributor"`
	Usage       meter.Allocation `json:"usage"`
	ModifyIndex uint64           `json:"modify_index"`
	Gross       ledger.Amount    `json:"gross"`
	Commission  ledger.Amount    `json:"commission"`
	Refunded    bool             `json:"refunded,omitempty"`
	// CPUPrice is what the allocation pays per core-hour: the quote's
	// price, or its machine's floor where higher (market.Quote.CPUPrice);
	// 0 for the quote's.
	CPUPrice ledger.Amount `json:"cpu_price,omitempty"`
}

// Prices are the unit prices the allocation is charged at under quote q.
func (a *AllocRecord) Prices(q market.Quote) market.Prices {
	p := q.Prices
	if a.CPUPrice > 0 {
		p.CPU = a.CPUPrice
	}
	return p
}

// Terminal reports whether Nomad will not run the allocation any more.
func (a *AllocRecord) Terminal() bool {
	switch a.Usage.Status {
	case meter.Complete, meter.Failed, meter.Lost:
		return true
	}
	return false
}

// SettlementKind is what a settlement does.
type SettlementKind string

const (
	KindTick    SettlementKind = "tick"    // a running debit note
	KindFinal   SettlementKind = "final"   // the job ended: charge the rest, release the hold
	KindRefund  SettlementKind = "refund"  // a lost allocation's charges returned
	KindRelease SettlementKind = "release" // a hold whose job never registered, voided
)

// Settlement is a planned or applied settlement.
type Settlement struct {
	ID        int64          `json:"id"`
	Admission string         `json:"admission_key"`
	Kind      SettlementKind `json:"kind"`
	State     string         `json:"state"` // planned, applied or failed
	Plan      settle.Plan    `json:"plan"`
	Error     string         `json:"error,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// JobSettlement is a settlement with the job it settled.
type JobSettlement struct {
	Settlement
	Renter string `json:"renter"`
	JobID  string `json:"job_id"`
}

// Store keeps admissions, allocations and settlements (*postgres.Store).
// Safe for concurrent use.
type Store interface {
	// InsertAdmission stores r unless its key exists, and returns the
	// stored admission (r, or the one stored first).
	InsertAdmission(ctx context.Context, r *Record) (*Record, error)
	// BaseAdmissions lists the admissions ever made with base, oldest first.
	BaseAdmissions(ctx context.Context, base string) ([]*Record, error)
	Admission(ctx context.Context, key string) (*Record, error)
	// RenterUsage sums what a renter's open admissions hold (jobs, CPU,
	// memory), those of job exclude excepted.
	RenterUsage(ctx context.Context, renter, exclude string) (admission.Usage, error)
	// OpenAdmissions lists every open admission, oldest first.
	OpenAdmissions(ctx context.Context) ([]*Record, error)
	// RenterAdmissions lists a renter's admissions, newest first.
	RenterAdmissions(ctx context.Context, renter string, limit int) ([]*Record, error)
	// JobAdmissions lists a renter's admissions of a job, newest first.
	JobAdmissions(ctx context.Context, renter, jobID string, limit int) ([]*Record, error)
	SetAdmissionState(ctx context.Context, key string, s State, detail string) error
	// MarkRunning moves the admissions keys that are still admitted to
	// running.
	MarkRunning(ctx context.Context, keys []string) error
	// Uninvoiced lists settled admissions that have no invoice yet.
	Uninvoiced(ctx context.Context) ([]*Record, error)
	// IssueJobInvoice numbers and stores inv and records it on the
	// admission key, in one transaction; if the admission has an invoice
	// already, it sets inv.Number to it and issues nothing.
	IssueJobInvoice(ctx context.Context, key string, inv *invoice.Invoice) error

	Allocations(ctx context.Context, admission string) ([]AllocRecord, error)
	// AllocationAdmission is the admission an allocation was first seen
	// under, or "" for an allocation not seen before.
	AllocationAdmission(ctx context.Context, allocID string) (string, error)
	// SaveAllocation stores a's usage snapshot (inserting a as a whole the
	// first time) unless a newer snapshot is stored; it never changes what
	// the allocation paid.
	SaveAllocation(ctx context.Context, a AllocRecord) error

	// Cursor is the last Nomad event index the meter processed.
	Cursor(ctx context.Context) (uint64, error)
	SaveCursor(ctx context.Context, index uint64) error
	// ResetCursor sets the cursor, even back (a new Nomad cluster).
	ResetCursor(ctx context.Context, index uint64) error

	// PlanSettlement stores s as planned and sets its ID.
	PlanSettlement(ctx context.Context, s *Settlement) error
	// ApplySettlement marks s applied and updates its admission and
	// allocations, in one transaction.
	ApplySettlement(ctx context.Context, s *Settlement) error
	FailSettlement(ctx context.Context, id int64, msg string) error
	// Settlements lists an admission's settlements, oldest first.
	Settlements(ctx context.Context, admission string) ([]Settlement, error)
	// PlannedSettlements lists every settlement planned and not yet
	// applied or failed, by admission, oldest first.
	PlannedSettlements(ctx context.Context) (map[string][]Settlement, error)
	// SettlementsBetween lists the settlements applied in [from, to),
	// oldest first, with their jobs.
	SettlementsBetween(ctx context.Context, from, to time.Time) ([]JobSettlement, error)
	// IssueStatement numbers and stores a contributor statement, once per
	// contributor and period (an existing one replaces inv).
	IssueStatement(ctx context.Context, inv *invoice.Invoice) error
}
