package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/market"
)

// register admits a job (PUT /v1/jobs, PUT /v1/job/:job): the body is
// Nomad's api.JobRegisterRequest, the reply its api.JobRegisterResponse, so
// the CLI goes on to monitor the evaluation through the gateway.
func (g *Gateway) register(w http.ResponseWriter, r *http.Request, c *call) {
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	var req api.JobRegisterRequest
	if err := json.Unmarshal(body, &req); err != nil {
		g.text(w, http.StatusBadRequest, fmt.Sprintf("the job registration is not valid JSON: %v", err))
		return
	}
	if !g.validJob(w, req.Job, c.job) {
		return
	}
	if req.EnforceIndex && !g.enforceIndex(w, r, c, *req.Job.ID, req.JobModifyIndex) {
		return
	}
	adm, err := g.jobs.Admit(r.Context(), c.renter, req.Job)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(adm.JobModifyIndex, 10))
	g.writeJSON(w, r, api.JobRegisterResponse{
		EvalID:          adm.EvalID,
		EvalCreateIndex: adm.EvalCreateIndex,
		JobModifyIndex:  adm.JobModifyIndex,
		Warnings:        joinLines(adm.Warnings, holdWarning(adm)),
	})
}

// plan is PUT /v1/job/:job/plan: admission's checks and quote, then Nomad's
// dry run. The quote is added to the plan's warnings, which the CLI prints.
func (g *Gateway) plan(w http.ResponseWriter, r *http.Request, c *call) {
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	var req api.JobPlanRequest
	if err := json.Unmarshal(body, &req); err != nil {
		g.text(w, http.StatusBadRequest, fmt.Sprintf("the job plan request is not valid JSON: %v", err))
		return
	}
	if !g.validJob(w, req.Job, c.job) {
		return
	}
	plan, quote, err := g.jobs.Plan(r.Context(), c.renter, req.Job, req.Diff)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	plan.Warnings = joinLines(plan.Warnings, quoteWarning(quote))
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(plan.JobModifyIndex, 10))
	g.writeJSON(w, r, plan)
}

// validJob checks what Nomad's agent checks before decoding further: a job
// with an ID, the one in the URL if there is one.
func (g *Gateway) validJob(w http.ResponseWriter, j *api.Job, urlID string) bool {
	switch {
	case j == nil:
		g.text(w, http.StatusBadRequest, "the request has no job")
	case j.ID == nil || *j.ID == "":
		g.text(w, http.StatusBadRequest, "the job has no ID")
	case urlID != "" && *j.ID != urlID:
		g.text(w, http.StatusBadRequest, fmt.Sprintf("the job's ID %q does not match %q in the URL", *j.ID, urlID))
	default:
		return true
	}
	return false
}

// enforceIndex implements `nomad job run -check-index`, which `nomad job
// plan` suggests: the job is registered only if its current modify index is
// the one given (0: only if it does not exist). The messages are Nomad's,
// which the CLI recognises. The check and the registration are two steps,
// so two concurrent submissions can both pass it; admission itself is
// idempotent.
func (g *Gateway) enforceIndex(w http.ResponseWriter, r *http.Request, c *call, id string, want uint64) bool {
	const prefix = "Enforcing job modify index"
	var cur struct{ JobModifyIndex uint64 }
	err := g.get(r.Context(), "/v1/job/"+url.PathEscape(id), url.Values{"namespace": {c.ns}}, &cur)
	exists := err == nil
	if err != nil && !errors.Is(err, errNotFound) {
		g.fail(w, r, fmt.Errorf("gateway: check index of job %s: %w", id, err))
		return false
	}
	msg := ""
	switch {
	case exists && want == 0:
		msg = fmt.Sprintf("%s 0: job already exists", prefix)
	case exists && want != cur.JobModifyIndex:
		msg = fmt.Sprintf("%s %d: job exists with conflicting job modify index: %d", prefix, want, cur.JobModifyIndex)
	case !exists && want != 0:
		msg = fmt.Sprintf("%s %d: job does not exist", prefix, want)
	}
	if msg != "" {
		g.text(w, http.StatusBadRequest, msg)
		return false
	}
	return true
}

// searchContexts are the prefix-search contexts that Nomad scopes to the
// request's namespace. The others (nodes, node pools, namespaces, plugins,
// "all", ...) list what is not the renter's.
var searchContexts = map[string]bool{"jobs": true, "allocs": true, "evals": true, "deployment": true}

// search is PUT /v1/search (prefix search, used by the CLI's completion).
// The body is rebuilt from its prefix and context only: Nomad would also
// read a namespace and query options from it.
func (g *Gateway) search(w http.ResponseWriter, r *http.Request, c *call) {
	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Prefix  string
		Context string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		g.text(w, http.StatusBadRequest, fmt.Sprintf("the search request is not valid JSON: %v", err))
		return
	}
	if !searchContexts[req.Context] {
		g.text(w, http.StatusForbidden, fmt.Sprintf("search context %q is not available through the SpiceRoute gateway (use jobs, allocs, evals or deployment)", req.Context))
		return
	}
	b, err := json.Marshal(req)
	if err != nil {
		g.fail(w, r, fmt.Errorf("gateway: search: %w", err))
		return
	}
	g.send(w, r, c, b)
}

// holdWarning tells the renter what admission held.
func holdWarning(a *jobs.Admission) string {
	return fmt.Sprintf("SpiceRoute: held up to %s on your account for up to %s of runtime at the current prices (hold %s); you pay only for what runs.",
		a.Quote.Max, a.Quote.MaxRuntime, a.Hold)
}

// quoteWarning shows a plan's quote.
func quoteWarning(q market.Quote) string {
	return fmt.Sprintf("SpiceRoute quote: up to %s for %s of %d MHz CPU, %d MB memory and %d MB disk at %s per core-hour, %s per GiB-hour of memory, %s per GiB-hour of disk; `nomad job run` holds it on your account.",
		q.Max, q.MaxRuntime, q.Resources.CPUMHz, q.Resources.MemoryMB, q.Resources.DiskMB, q.Prices.CPU, q.Prices.Memory, q.Prices.Disk)
}

func joinLines(a, b string) string {
	a = strings.TrimRight(a, "\n")
	if a == "" {
		return b
	}
	return a + "\n" + b
}

// writeJSON writes a 200 JSON reply.
func (g *Gateway) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		g.fail(w, r, fmt.Errorf("gateway: encode reply: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
