package client

import (
	"context"
	"net/http"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/jobs"
)

// QuoteJobHCL asks what an HCL2 jobspec would cost if submitted now, as
// the client's renter: the quote admission would hold and whether the
// renter's account covers it. Nothing is held and Nomad never sees the
// job. A job admission would reject is an error with the same code
// (policy_violation, over_max_price, invalid...).
func (c *Client) QuoteJobHCL(ctx context.Context, hcl string) (*jobs.Estimate, error) {
	var e jobs.Estimate
	if _, err := c.do(ctx, http.MethodPost, "/api/jobs/quote", nil, api.JobRequest{HCL: hcl}, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// QuoteJob quotes a job given as Nomad's JSON job, as QuoteJobHCL does.
func (c *Client) QuoteJob(ctx context.Context, j *nomadapi.Job) (*jobs.Estimate, error) {
	body := struct {
		Job *nomadapi.Job `json:"job"`
	}{j}
	var e jobs.Estimate
	if _, err := c.do(ctx, http.MethodPost, "/api/jobs/quote", nil, body, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
