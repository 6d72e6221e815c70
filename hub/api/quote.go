package api

import (
	"context"
	"net/http"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/jobs"
)

// JobQuoter quotes renters' jobs without running them (*jobs.Service).
// Safe for concurrent use. Errors are *coded.Error for what the renter can
// fix, as for JobService.Admit.
type JobQuoter interface {
	// QuoteHCL parses an HCL2 jobspec and quotes it: policy and quote,
	// no hold, nothing registered with Nomad.
	QuoteHCL(ctx context.Context, renter, hcl string) (*jobs.Estimate, error)
	// Quote quotes a job given as Nomad's JSON job.
	Quote(ctx context.Context, renter string, j *nomadapi.Job) (*jobs.Estimate, error)
}

// registerQuotes adds
//
//	POST /api/jobs/quote   {"hcl": "..."} or {"job": {...}}, as POST /api/jobs: 200 with the jobs.Estimate
//
// Renters only. The job is checked against the admission policy and
// quoted at the prices in force (its region's, if it pins one) as if it
// were submitted, and the reply says whether the renter's account covers
// the quote; nothing is held and Nomad never sees the job.
func (s *Server) registerQuotes(g *echo.Group, small echo.MiddlewareFunc) {
	g.POST("/jobs/quote", s.quoteJob, small)
}

func (s *Server) quoteJob(c echo.Context) error {
	renter, hcl, j, err := jobRequest(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var e *jobs.Estimate
	if j == nil {
		e, err = s.deps.Quotes.QuoteHCL(ctx, renter, hcl)
	} else {
		e, err = s.deps.Quotes.Quote(ctx, renter, j)
	}
	if err != nil {
		return jobError(err, "quoting the job")
	}
	return c.JSON(http.StatusOK, e)
}
