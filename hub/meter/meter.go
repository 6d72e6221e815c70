// Package meter turns what an allocation ran into what its renter owes.
//
// An allocation is billed per task: the task's allocated CPU and memory for
// the time it ran (from its start to its finish, or to now while it runs),
// plus the group's ephemeral disk for as long as any task ran. Prices are
// the ones quoted when the job was admitted. An allocation lost to the
// contributor's fault (its node went down) is not billed at all: the renter
// pays nothing for work the provider lost, and Nomad reschedules it.
//
// Billing is cumulative: each settlement tick charges the cost of the whole
// run so far minus what was already charged, so rounding never accumulates
// and the charges over a run sum exactly to the cost of the run.
package meter

import (
	"fmt"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Status is an allocation's client status, as Nomad reports it.
type Status string

const (
	Pending  Status = "pending"
	Running  Status = "running"
	Complete Status = "complete"
	Failed   Status = "failed"
	Lost     Status = "lost"
)

// Task is one task of an allocation.
type Task struct {
	Name       string
	CPUMHz     int64
	MemoryMB   int64
	StartedAt  time.Time // zero: never started
	FinishedAt time.Time // zero: still running (or never started)
}

// Allocation is what the meter needs to know about one allocation.
type Allocation struct {
	ID     string
	Node   string
	Status Status
	DiskMB int64
	Tasks  []Task
}

// Usage is an allocation's billable usage up to a moment.
type Usage struct {
	Lines []market.LineCost // per task resource, and the disk
	Total ledger.Amount
	// Lost is set when the allocation was lost: nothing is billed.
	Lost bool
}

// Measure prices what a ran up to now at prices.
func Measure(a Allocation, prices market.Prices, now time.Time) (Usage, error) {
	if a.Status == Lost {
		return Usage{Lost: true}, nil
	}
	var u Usage
	var first, last time.Time
	for _, t := range a.Tasks {
		d := runTime(t, now)
		if d <= 0 {
			continue
		}
		if first.IsZero() || t.StartedAt.Before(first) {
			first = t.StartedAt
		}
		end := t.FinishedAt
		if end.IsZero() || end.After(now) {
			end = now
		}
		if end.After(last) {
			last = end
		}
		lines, err := prices.Breakdown(market.Resources{CPUMHz: t.CPUMHz, MemoryMB: t.MemoryMB}, d)
		if err != nil {
			return Usage{}, fmt.Errorf("meter: allocation %s task %s: %w", a.ID, t.Name, err)
		}
		u.Lines = append(u.Lines, lines...)
	}
	if a.DiskMB > 0 && last.After(first) {
		lines, err := prices.Breakdown(market.Resources{DiskMB: a.DiskMB}, last.Sub(first))
		if err != nil {
			return Usage{}, fmt.Errorf("meter: allocation %s disk: %w", a.ID, err)
		}
		u.Lines = append(u.Lines, lines...)
	}
	for _, l := range u.Lines {
		u.Total += l.Amount
	}
	return u, nil
}

// runTime is how long t ran up to now.
func runTime(t Task, now time.Time) time.Duration {
	if t.StartedAt.IsZero() || t.StartedAt.After(now) {
		return 0
	}
	end := t.FinishedAt
	if end.IsZero() || end.After(now) {
		end = now
	}
	if end.Before(t.StartedAt) {
		return 0
	}
	return end.Sub(t.StartedAt)
}

// Due is what to charge now for an allocation already charged charged:
// the cumulative total less what was charged, never negative (a lost
// allocation's earlier charges, and a charge past a task's end, are
// returned by the settlement loop: hub/jobs refundIfDue).
func Due(u Usage, charged ledger.Amount) ledger.Amount {
	if u.Total <= charged {
		return 0
	}
	return u.Total - charged
}
