package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/jobs"
)

// RunJobHCL submits an HCL2 jobspec (what `nomad job run` reads) as the
// client's renter. The job is checked against the hub's admission policy,
// quoted, its quote held on the renter's account, then registered with
// Nomad; the reply says how much is held and by which hold. A rejected job
// is an error with code policy_violation, insufficient_funds,
// over_max_price, invalid or no_renter_account, and never reaches Nomad.
func (c *Client) RunJobHCL(ctx context.Context, hcl string) (*jobs.Admission, error) {
	var a jobs.Admission
	if _, err := c.do(ctx, http.MethodPost, "/api/jobs", nil, api.JobRequest{HCL: hcl}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// RunJob submits a job given as Nomad's JSON job (the object `nomad job
// inspect` prints under "Job"), as RunJobHCL does.
func (c *Client) RunJob(ctx context.Context, j *nomadapi.Job) (*jobs.Admission, error) {
	body := struct {
		Job *nomadapi.Job `json:"job"`
	}{j}
	var a jobs.Admission
	if _, err := c.do(ctx, http.MethodPost, "/api/jobs", nil, body, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Jobs lists the renter's admissions, newest first (limit 0 = the hub's
// default, api.DefaultJobsLimit).
func (c *Client) Jobs(ctx context.Context, limit int) ([]*jobs.Record, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var r api.JobsReply
	if _, err := c.do(ctx, http.MethodGet, "/api/jobs", q, nil, &r); err != nil {
		return nil, err
	}
	return r.Jobs, nil
}

// JobStatus reports one of the renter's jobs: Nomad's status, its
// allocations and tasks, why it is not placed (Status.Unplaced), and its
// latest admission with the quote, the charges and the invoice number. A
// job the renter does not have is an error with code job_not_found.
func (c *Client) JobStatus(ctx context.Context, id string) (*jobs.Status, error) {
	path, err := jobPath(id)
	if err != nil {
		return nil, err
	}
	var st jobs.Status
	if _, err := c.do(ctx, http.MethodGet, path, nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// StopJob stops one of the renter's jobs. It returns once Nomad accepted
// the stop; the final settlement and the invoice follow when the job's
// allocations have stopped.
func (c *Client) StopJob(ctx context.Context, id string) (api.JobStopped, error) {
	path, err := jobPath(id)
	if err != nil {
		return api.JobStopped{}, err
	}
	var r api.JobStopped
	_, err = c.do(ctx, http.MethodDelete, path, nil, nil, &r)
	return r, err
}

// LogsOptions chooses what JobLogs returns. The zero value is the stdout
// of the only task of the job's newest allocation, up to the hub's default
// limit (api.DefaultLogsLimit).
type LogsOptions struct {
	Alloc  string // an allocation ID; "" = the newest that started
	Task   string // a task name; "" = the allocation's only task
	Stderr bool   // stderr instead of stdout
	Limit  int    // bytes; 0 = the hub's default, at most api.MaxLogsLimit
}

// JobLogs returns what a task of the renter's job wrote.
func (c *Client) JobLogs(ctx context.Context, id string, o LogsOptions) (string, error) {
	path, err := jobPath(id)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	if o.Alloc != "" {
		q.Set("alloc", o.Alloc)
	}
	if o.Task != "" {
		q.Set("task", o.Task)
	}
	if o.Stderr {
		q.Set("stream", "stderr")
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var b []byte
	if _, err := c.do(ctx, http.MethodGet, path+"/logs", q, nil, &b); err != nil {
		return "", err
	}
	return string(b), nil
}

// jobPath is the route of a job. IDs with a slash cannot be in a path
// segment (and Nomad's job IDs have none).
func jobPath(id string) (string, error) {
	if id == "" || strings.Contains(id, "/") {
		return "", fmt.Errorf("client: job ID %q: want a non-empty ID without slashes", id)
	}
	return "/api/jobs/" + id, nil
}
