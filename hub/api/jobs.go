package api

import (
	"context"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/jobs"
)

// JobService runs renters' jobs (*jobs.Service). Safe for concurrent use.
// Errors are *coded.Error for what the renter can fix (policy_violation,
// insufficient_funds, over_max_price, job_not_found, no_renter_account...).
type JobService interface {
	// SubmitHCL parses an HCL2 jobspec and admits it: policy, quote, hold,
	// then registration in the renter's namespace.
	SubmitHCL(ctx context.Context, renter, hcl string) (*jobs.Admission, error)
	// Admit admits a job given as Nomad's JSON job.
	Admit(ctx context.Context, renter string, j *nomadapi.Job) (*jobs.Admission, error)
	Status(ctx context.Context, renter, jobID string) (*jobs.Status, error)
	Stop(ctx context.Context, renter, jobID string) error
	Logs(ctx context.Context, renter, jobID, alloc, task, stream string, limit int) (string, error)
	// Jobs lists the renter's admissions, newest first.
	Jobs(ctx context.Context, renter string, limit int) ([]*jobs.Record, error)
}

// registerJobs adds /api/jobs. TODO(helper): implement.
func (s *Server) registerJobs(g *echo.Group, small echo.MiddlewareFunc) {}
