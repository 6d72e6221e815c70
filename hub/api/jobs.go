package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/labstack/echo/v4"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
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
	// Statement issues a contributor's statement of [from, to), once per
	// contributor and period.
	Statement(ctx context.Context, contributor string, from, to time.Time) (*invoice.Invoice, error)
	// Jobs lists the renter's admissions, newest first.
	Jobs(ctx context.Context, renter string, limit int) ([]*jobs.Record, error)
}

// Limits of the job routes.
const (
	DefaultJobsLimit = 50       // GET /api/jobs without ?limit=
	MaxJobsLimit     = 500      // largest ?limit= of GET /api/jobs
	DefaultLogsLimit = 1 << 20  // GET /api/jobs/:id/logs without ?limit= (1 MiB)
	MaxLogsLimit     = 16 << 20 // largest ?limit= of the logs (16 MiB)
	// MaxJobIDLength is the longest job ID (and task name) the routes
	// accept. Nomad sets no limit; this bounds what is looked up and logged.
	MaxJobIDLength = 128
)

// JobRequest is the body of POST /api/jobs: exactly one of HCL (an HCL2
// jobspec, as `nomad job run` reads) and Job (Nomad's JSON job, the object
// `nomad job inspect` prints under "Job").
type JobRequest struct {
	HCL string          `json:"hcl,omitempty"`
	Job json.RawMessage `json:"job,omitempty"`
}

// JobsReply lists a renter's admissions, newest first (GET /api/jobs).
type JobsReply struct {
	Jobs []*jobs.Record `json:"jobs"`
}

// JobStopped is the reply of DELETE /api/jobs/:id (202 Accepted): Nomad
// stops the job's allocations, then the hub settles it and issues its
// invoice.
type JobStopped struct {
	JobID   string `json:"job_id"`
	Message string `json:"message"`
}

// registerJobs adds the renters' job routes:
//
//	POST   /api/jobs                 {"hcl": "..."} or {"job": {...}}: 201 with the jobs.Admission
//	GET    /api/jobs                 the caller's admissions, newest first (?limit=, default 50, max 500)
//	GET    /api/jobs/:id             jobs.Status: Nomad's view, why not placed, quote and charges
//	DELETE /api/jobs/:id             stop the job: 202 with a JobStopped
//	GET    /api/jobs/:id/logs        a task's output as text/plain (?alloc=, ?task=, ?stream=stdout|stderr,
//	                                 ?limit= bytes, default 1 MiB, max 16 MiB)
//
// Only renters may use them (others get 403), and a renter only ever sees
// its own jobs: the service is always asked in the caller's name, so
// another renter's job is job_not_found (404), exactly like a missing one.
func (s *Server) registerJobs(g *echo.Group, small echo.MiddlewareFunc) {
	g.POST("/jobs", s.submitJob, small)
	g.GET("/jobs", s.listJobs)
	g.GET("/jobs/:id", s.jobStatus)
	g.DELETE("/jobs/:id", s.stopJob)
	g.GET("/jobs/:id/logs", s.jobLogs)
	g.POST("/statements", s.issueStatement, small)
}

// renterOnly returns the caller if it is a renter.
func renterOnly(c echo.Context) (auth.Principal, error) {
	p, err := principal(c)
	if err != nil {
		return p, err
	}
	if p.Role != auth.RoleRenter {
		return p, coded.Errorf(ledger.CodeForbidden, "only renters run jobs; %s's token is for the %s role (ask the hub's operator for a renter token)", p.Name, p.Role)
	}
	return p, nil
}

// jobError passes the service's coded errors through and wraps the rest
// with what failed. A 4xx answer of Nomad's (other than not found or
// forbidden, which the service maps itself) is the renter's to fix, e.g. an
// unknown task name, so it becomes "invalid" with Nomad's words.
func jobError(err error, what string) error {
	if _, ok := coded.As(err); ok {
		return err
	}
	if code, body := nomadReply(err); code >= 400 && code < 500 && code != http.StatusNotFound && code != http.StatusForbidden && code != http.StatusUnauthorized {
		return coded.Errorf(ledger.CodeInvalid, "%s: Nomad refused: %s", what, body)
	}
	return fmt.Errorf("api: %s: %w", what, err)
}

// nomadReply is the status and body of a Nomad API error in err's chain,
// or 0 and "".
func nomadReply(err error) (int, string) {
	var v nomadapi.UnexpectedResponseError
	if errors.As(err, &v) {
		return v.StatusCode(), strings.TrimSpace(v.Body())
	}
	var p *nomadapi.UnexpectedResponseError
	if errors.As(err, &p) {
		return p.StatusCode(), strings.TrimSpace(p.Body())
	}
	return 0, ""
}

// jobIDParam validates the :id of a job route.
// renterJob is the calling renter and the job its path names.
func renterJob(c echo.Context) (auth.Principal, string, error) {
	p, err := renterOnly(c)
	if err != nil {
		return p, "", err
	}
	id, err := jobIDParam(c)
	return p, id, err
}

func jobIDParam(c echo.Context) (string, error) {
	id := c.Param("id")
	if c.Request().URL.RawPath != "" {
		// echo routes on the raw path when the URL has escapes that the
		// decoded path loses (%2F): its params are then still escaped.
		var err error
		if id, err = url.PathUnescape(id); err != nil {
			return "", badf("job ID %q: %v", c.Param("id"), err)
		}
	}
	if err := validName("job ID", id, MaxJobIDLength); err != nil {
		return "", err
	}
	return id, nil
}

// validName checks an identifier from the URL: non-empty, at most max
// bytes of UTF-8 without spaces, control characters or slashes.
func validName(what, v string, max int) error {
	switch {
	case v == "":
		return badf("%s: empty", what)
	case len(v) > max:
		return badf("%s: longer than %d bytes", what, max)
	case !utf8.ValidString(v):
		return badf("%s %q: not valid UTF-8", what, v)
	}
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' {
			return badf("%s %q: must not contain spaces, control characters or slashes", what, v)
		}
	}
	return nil
}

// jobRequest reads a renter's JobRequest: the renter and either an HCL2
// jobspec or Nomad's JSON job decoded (j is nil for HCL).
func jobRequest(c echo.Context) (renter, hcl string, j *nomadapi.Job, err error) {
	p, err := renterOnly(c)
	if err != nil {
		return "", "", nil, err
	}
	var req JobRequest
	if err := decodeJSON(c.Request().Body, &req, false); err != nil {
		return "", "", nil, err
	}
	hasJob := len(req.Job) > 0 && !bytes.Equal(bytes.TrimSpace(req.Job), []byte("null"))
	switch {
	case req.HCL != "" && hasJob:
		return "", "", nil, badf(`send either "hcl" (an HCL2 jobspec) or "job" (Nomad's JSON job), not both`)
	case req.HCL != "":
		return p.Name, req.HCL, nil, nil
	case hasJob:
		j, err := decodeNomadJob(req.Job)
		return p.Name, "", j, err
	}
	return "", "", nil, badf(`a job is required: send {"hcl": "<HCL2 jobspec>"} or {"job": <Nomad's JSON job>}`)
}

func (s *Server) submitJob(c echo.Context) error {
	renter, hcl, j, err := jobRequest(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var adm *jobs.Admission
	if j == nil {
		adm, err = s.deps.Jobs.SubmitHCL(ctx, renter, hcl)
	} else {
		adm, err = s.deps.Jobs.Admit(ctx, renter, j)
	}
	if err != nil {
		return jobError(err, "admitting the job")
	}
	loggerOf(c, s.log).Info("api: job admitted", "renter", renter, "job", adm.JobID, "admission", adm.Key, "quote", adm.Quote.Max, "hold", adm.Hold)
	return c.JSON(http.StatusCreated, adm)
}

// decodeNomadJob reads Nomad's JSON job strictly: an unknown field is
// more likely a typo than something Nomad would honour. The fields Nomad's
// servers set (status, versions, indexes, submit time, stop) are cleared:
// a job copied from `nomad job inspect` runs like the jobspec it came from.
func decodeNomadJob(raw json.RawMessage) (*nomadapi.Job, error) {
	if k := kindOf(bytes.TrimSpace(raw)); k != "an object" {
		return nil, badf("job: want Nomad's JSON job (an object), got %s", k)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var j nomadapi.Job
	if err := dec.Decode(&j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, badf("job.%s: want a JSON %s, got %s", te.Field, te.Type.Kind(), te.Value)
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			if name == "Job" {
				return nil, badf(`job: send the object under "Job" (what nomad job inspect prints there), not the whole reply`)
			}
			return nil, badf("job.%s: unknown field of a Nomad job", name)
		}
		return nil, badf("job: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badf("job: unexpected data after the job")
	}
	j.Stop, j.Status, j.StatusDescription, j.Stable = nil, nil, nil, nil
	j.Version, j.SubmitTime, j.CreateIndex, j.ModifyIndex, j.JobModifyIndex = nil, nil, nil, nil, nil
	return &j, nil
}

func (s *Server) listJobs(c echo.Context) error {
	p, err := renterOnly(c)
	if err != nil {
		return err
	}
	limit, err := intQuery(c, "limit", DefaultJobsLimit, 1, MaxJobsLimit)
	if err != nil {
		return err
	}
	recs, err := s.deps.Jobs.Jobs(c.Request().Context(), p.Name, int(limit))
	if err != nil {
		return jobError(err, "listing your jobs")
	}
	if recs == nil {
		recs = []*jobs.Record{}
	}
	return c.JSON(http.StatusOK, JobsReply{Jobs: recs})
}

func (s *Server) jobStatus(c echo.Context) error {
	p, id, err := renterJob(c)
	if err != nil {
		return err
	}
	st, err := s.deps.Jobs.Status(c.Request().Context(), p.Name, id)
	if err != nil {
		return jobError(err, fmt.Sprintf("status of job %q", id))
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) stopJob(c echo.Context) error {
	p, id, err := renterJob(c)
	if err != nil {
		return err
	}
	if err := s.deps.Jobs.Stop(c.Request().Context(), p.Name, id); err != nil {
		return jobError(err, fmt.Sprintf("stopping job %q", id))
	}
	loggerOf(c, s.log).Info("api: job stopped", "renter", p.Name, "job", id)
	return c.JSON(http.StatusAccepted, JobStopped{JobID: id,
		Message: "the job is stopping; it is settled, and its invoice issued, once its allocations have stopped"})
}

func (s *Server) jobLogs(c echo.Context) error {
	p, id, err := renterJob(c)
	if err != nil {
		return err
	}
	alloc := c.QueryParam("alloc")
	if alloc != "" {
		aid, err := ledger.ParseID(alloc)
		if err != nil {
			return badf("alloc: %q is not an allocation ID (want the full UUID, as spice job status shows it)", alloc)
		}
		alloc = aid.String()
	}
	task := c.QueryParam("task")
	if task != "" {
		if err := validName("task", task, MaxJobIDLength); err != nil {
			return err
		}
	}
	stream := c.QueryParam("stream")
	switch stream {
	case "":
		stream = "stdout"
	case "stdout", "stderr":
	default:
		return badf("stream: want stdout or stderr, got %q", stream)
	}
	limit, err := intQuery(c, "limit", DefaultLogsLimit, 1, MaxLogsLimit)
	if err != nil {
		return err
	}
	out, err := s.deps.Jobs.Logs(c.Request().Context(), p.Name, id, alloc, task, stream, int(limit))
	if err != nil {
		return jobError(err, fmt.Sprintf("logs of job %q", id))
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(out))
}
