package jobs

import (
	"context"
	"fmt"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Estimate is what a job would cost if it were submitted now: the quote
// admission would hold, and whether the renter's account covers it
// (POST /api/jobs/quote, `spice job quote`). Prices move with supply and
// demand: the hold placed at submission is at the prices in force then.
type Estimate struct {
	JobID string       `json:"job_id"`
	Quote market.Quote `json:"quote"`
	// Account is the renter account the job would be paid from (nil:
	// the renter has none yet) and Available what it can still spend.
	Account   *ledger.ID    `json:"account,omitempty"`
	Available ledger.Amount `json:"available"`
	// Covered is whether Available covers the quote's maximum.
	Covered bool `json:"covered"`
	// Note says why the account does not cover the quote, if it does not.
	Note string `json:"note,omitempty"`
}

// Quote checks renter's job and quotes it exactly as Submit would (the
// admission policy, the renter's maximum price, the prices of the region
// it pins), without recording an admission, holding anything or
// registering the job with Nomad.
func (s *Service) Quote(ctx context.Context, renter string, j *api.Job) (*Estimate, error) {
	c, err := s.check(ctx, renter, j)
	if err != nil {
		return nil, err
	}
	e := &Estimate{JobID: *j.ID, Quote: c.quote}
	id, err := s.payingAccount(ctx, renter, j.Meta[MetaPayFrom])
	if coded.CodeOf(err) == CodeNoAccount {
		e.Note = err.Error()
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	accts, err := s.Accounts.Owned(ctx, renter)
	if err != nil {
		return nil, fmt.Errorf("jobs: accounts of %s: %w", renter, err)
	}
	for _, a := range accts {
		if a.ID == id {
			e.Account, e.Available = &id, a.Available()
		}
	}
	e.Covered = e.Account != nil && e.Available >= e.Quote.Max
	if !e.Covered {
		e.Note = fmt.Sprintf("your account has %s available, less than the %s the job would hold", e.Available, e.Quote.Max)
	}
	return e, nil
}

// QuoteHCL parses an HCL2 jobspec (as `nomad job run` does) and quotes it.
func (s *Service) QuoteHCL(ctx context.Context, renter, hcl string) (*Estimate, error) {
	j, err := s.Sched.ParseHCL(ctx, hcl)
	if err != nil {
		return nil, coded.Errorf(CodeInvalidJob, "jobspec: %v", err)
	}
	return s.Quote(ctx, renter, j)
}
