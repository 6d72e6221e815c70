package jobs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Statement issues the contributor's statement for the period [from, to):
// one line per allocation that earned (or, refunded for lost work, gave
// back) in the period, each pointing at its ledger transfers and their log
// indexes; the hub's commission; and the total credited. A statement is
// issued once per contributor and period: asking again returns it.
func (s *Service) Statement(ctx context.Context, contributor string, from, to time.Time) (*invoice.Invoice, error) {
	from, to = from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second)
	if !from.Before(to) {
		return nil, coded.Errorf("invalid", "the period's start %s is not before its end %s", from, to)
	}
	if to.After(s.now()) {
		return nil, coded.Errorf("invalid", "the period ends %s, in the future: a statement covers a period that is over", to.Format(time.RFC3339))
	}
	accts, err := s.Accounts.Owned(ctx, contributor)
	if err != nil {
		return nil, err
	}
	mine := map[ledger.ID]bool{}
	for _, a := range accts {
		if a.Kind == ledger.KindContributor {
			mine[a.ID] = true
		}
	}
	if len(mine) == 0 {
		return nil, coded.Errorf(CodeNoAccount, "%s has no contributor account", contributor)
	}
	sts, err := s.Store.SettlementsBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	type earned struct {
		job       string
		amount    ledger.Amount
		transfers []ledger.ID
	}
	byAlloc := map[string]*earned{}
	inv := &invoice.Invoice{Kind: invoice.ContributorStatement, Hub: s.Billing.Hub, Party: contributor, From: from, To: to, IssuedAt: s.now().UTC()}
	for _, st := range sts {
		for _, sh := range st.Plan.Shares {
			if !mine[sh.Contributor] {
				continue
			}
			e := byAlloc[sh.Allocation]
			if e == nil {
				e = &earned{job: st.Renter + "/" + st.JobID}
				byAlloc[sh.Allocation] = e
			}
			if st.Kind == KindRefund {
				e.amount -= sh.Gross
				inv.Commission -= sh.Commission
				for _, t := range st.Plan.Transfers {
					if t.DebitAccountID == sh.Contributor {
						e.transfers = append(e.transfers, t.ID)
					}
				}
				continue
			}
			e.amount += sh.Gross
			inv.Commission += sh.Commission
			if sh.Pay != (ledger.ID{}) {
				e.transfers = append(e.transfers, sh.Pay)
			}
		}
	}
	allocs := make([]string, 0, len(byAlloc))
	for a := range byAlloc {
		allocs = append(allocs, a)
	}
	sort.Strings(allocs)
	for _, a := range allocs {
		e := byAlloc[a]
		idx, err := s.logIndexes(ctx, e.transfers)
		if err != nil {
			return nil, err
		}
		inv.Lines = append(inv.Lines, invoice.Line{Allocation: a, Job: e.job, Cost: lineCost(e.amount), Transfers: e.transfers, LogIndexes: idx})
	}
	if err := s.Store.IssueStatement(ctx, inv); err != nil {
		return nil, fmt.Errorf("jobs: statement: %w", err)
	}
	return inv, nil
}

func lineCost(amount ledger.Amount) market.LineCost {
	return market.LineCost{Resource: invoice.Earnings, Amount: amount}
}
