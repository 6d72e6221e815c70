// Package gateway is the hub's Nomad-compatible HTTP API under /v1/, so that
// renters can use the stock nomad CLI against the hub:
//
//	NOMAD_ADDR=https://hub.example NOMAD_TOKEN=<SpiceRoute API token> nomad job run job.nomad.hcl
//
// It speaks Nomad's HTTP API (developer.hashicorp.com/nomad/api-docs) for
// the subset of it that running and following one's own jobs needs, and
// nothing else. The hub's API authenticates the request first (it takes the
// SpiceRoute token from X-Nomad-Token, as the CLI sends it) and puts the
// principal in the request's context; only renters may use the gateway.
//
// Writes never reach Nomad directly: registering a job goes through
// admission (jobs.Service.Admit: policy, quote, hold, then registration in
// the renter's namespace and the hub's node pool), planning through
// jobs.Service.Plan. Everything else on the allowlist below is forwarded to
// Nomad, and every forwarded request
//
//   - authenticates with the hub's Nomad token: the renter's X-Nomad-Token
//     and Authorization headers, and every other header not needed, are
//     dropped;
//   - has its namespace query parameter set to the renter's namespace,
//     whatever it was ("*" included);
//   - when it addresses an allocation, evaluation or deployment by ID, which
//     Nomad looks up whatever namespace is asked for (its ACL check is the
//     only namespace check, and the hub's token passes it), is preceded by a
//     lookup of that object: unless it is in the renter's namespace the
//     answer is 404, exactly as for an ID that does not exist;
//   - waits at most Config.MaxWait when it is a blocking query (index/wait);
//   - streams its response (logs with follow) as Nomad writes it.
//
// Paths are parsed the way Nomad's agent parses them (job IDs by suffix,
// command/agent/job_endpoint.go), and the forwarded path is rebuilt from the
// parsed parts, so that the gateway and Nomad always agree on what a request
// addresses. Paths that are not clean (//, /./, /../) are refused.
//
// # Routes
//
//	GET       /v1/jobs                               list (prefix, filter, meta)
//	PUT|POST  /v1/jobs                               register: admission, then Nomad
//	PUT|POST  /v1/jobs/parse                         HCL to JSON (a pure parse, no file or env access)
//	GET       /v1/job/:job                           read
//	PUT|POST  /v1/job/:job                           register: admission, then Nomad
//	DELETE    /v1/job/:job                           stop (purge, global, no_shutdown_delay)
//	PUT|POST  /v1/job/:job/plan                      admission checks and quote, then Nomad's dry run
//	GET       /v1/job/:job/{allocations,evaluations,deployment,deployments,summary,versions,submission}
//	GET       /v1/allocations                        list (prefix)
//	GET       /v1/allocation/:alloc                  owner checked
//	GET       /v1/evaluations                        list (prefix)
//	GET       /v1/evaluation/:eval                   owner checked
//	GET       /v1/evaluation/:eval/allocations       owner checked
//	GET       /v1/deployments                        list (prefix)
//	GET       /v1/deployment/:deployment             owner checked
//	GET       /v1/deployment/allocations/:deployment owner checked
//	GET       /v1/client/fs/logs/:alloc                             owner checked (not ls, cat, ...: they would browse the task's chroot)
//	GET       /v1/client/allocation/:alloc/{stats,checks}             owner checked
//	PUT|POST  /v1/search                             prefix search in the contexts jobs, allocs, evals, deployment
//
// :alloc, :eval and :deployment are full UUIDs (the CLI resolves prefixes
// with the list endpoints first). Everything else answers 403 "not available
// through the SpiceRoute gateway: <method> <path>". Among what the CLI asks
// for and is refused: /v1/node/:id (it falls back to reading logs through
// the server, i.e. the gateway) and /v1/agent/self (it then shows no UI
// hints); neither is a renter's data.
//
// # Errors
//
// The nomad CLI prints "Unexpected response code: <status> (<body>)", so
// errors are plain text, one sentence: 401 without a token, 403 for a
// principal that is not a renter or a request off the allowlist, 400 for a
// job the policy or Nomad rejects, 402 when the renter cannot pay
// (insufficient_funds, over_max_price, no_renter_account), 404 for what does
// not exist or is not the renter's, 413 for a body over Config.BodyLimit,
// 502 when Nomad cannot be reached, 500 "internal error" (logged in full
// under the request's ID) otherwise.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/market"
)

// Config configures the gateway. Only main reads flags and environment
// variables.
type Config struct {
	// NomadAddr is Nomad's HTTP API, e.g. http://127.0.0.1:4646. Required.
	NomadAddr string
	// NomadToken is the hub's Nomad ACL token, used for every request the
	// gateway sends to Nomad (empty: Nomad runs without ACLs). Renters never
	// see it.
	NomadToken string
	// Namespace is the renter's Nomad namespace (nomad.Scheduler.Namespace).
	// Required.
	Namespace func(renter string) string
	// BodyLimit is the largest request body in bytes (default 1 MiB); larger
	// bodies get 413.
	BodyLimit int64
	// MaxWait caps how long a blocking query (index/wait parameters) waits
	// in Nomad (default 20s, under the hub's 30s request timeout).
	MaxWait time.Duration
}

// Streaming reports whether r follows a log (`nomad alloc logs -f`): a
// response that lasts as long as the renter reads it, which the hub's API
// must not cut at its request timeout (api.Config.Unbounded).
func Streaming(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/v1/client/fs/logs/") && r.URL.Query().Get("follow") == "true"
}

// DefaultBodyLimit and DefaultMaxWait are Config's defaults.
const (
	DefaultBodyLimit = 1 << 20
	DefaultMaxWait   = 20 * time.Second
)

// Jobs admits and plans renters' jobs (*jobs.Service). Both methods are
// safe for concurrent use, block on the ledger and Nomad, and stop when ctx
// is done. They place the job in the renter's namespace and the hub's node
// pool whatever it says, and return a *coded.Error for a job they reject.
type Jobs interface {
	Admit(ctx context.Context, renter string, j *api.Job) (*jobs.Admission, error)
	Plan(ctx context.Context, renter string, j *api.Job, diff bool) (*api.JobPlanResponse, market.Quote, error)
}

// Gateway is the /v1/ handler. Safe for concurrent use.
type Gateway struct {
	cfg    Config
	jobs   Jobs
	log    *slog.Logger
	nomad  string // NomadAddr without a trailing slash
	client *http.Client
	proxy  *httputil.ReverseProxy
}

// New builds the gateway. It does not contact Nomad.
func New(cfg Config, js Jobs, logger *slog.Logger) (*Gateway, error) {
	u, err := url.Parse(cfg.NomadAddr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("gateway: NomadAddr %q is not an http(s) URL", cfg.NomadAddr)
	}
	if cfg.Namespace == nil {
		return nil, errors.New("gateway: Config.Namespace is required")
	}
	if js == nil {
		return nil, errors.New("gateway: jobs are required")
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if logger == nil {
		logger = slog.Default()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	g := &Gateway{
		cfg:    cfg,
		jobs:   js,
		log:    logger,
		nomad:  strings.TrimSuffix(cfg.NomadAddr, "/"),
		client: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The outgoing URL was built by forward; only the headers change.
			pr.Out.Host = ""
			pr.Out.Header = g.nomadHeader(pr.In.Header)
		},
		Transport:     transport,
		FlushInterval: -1, // log streams and blocking queries reach the client as Nomad writes them
		ErrorHandler:  g.proxyError,
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// ServeHTTP serves /v1/ requests already authenticated by the hub's API.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.PrincipalFrom(r.Context())
	if !ok {
		g.text(w, http.StatusUnauthorized, "set NOMAD_TOKEN to your SpiceRoute API token")
		return
	}
	if p.Role != auth.RoleRenter {
		g.text(w, http.StatusForbidden, fmt.Sprintf("the Nomad gateway is for renters, and %s has the role %s", p.Name, p.Role))
		return
	}
	c, rt := match(r.Method, r.URL.Path)
	if rt == nil || path.Clean(r.URL.Path) != r.URL.Path {
		g.log.InfoContext(r.Context(), "gateway: refused", "method", r.Method, "path", r.URL.Path, "principal", p.Name)
		g.text(w, http.StatusForbidden, fmt.Sprintf("not available through the SpiceRoute gateway: %s %s", r.Method, r.URL.Path))
		return
	}
	c.renter = p.Name
	c.ns = g.cfg.Namespace(p.Name)
	rt.serve(g, w, r, c)
}

// text writes a plain-text reply: the body the nomad CLI shows in
// "Unexpected response code: <status> (<body>)".
func (g *Gateway) text(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}
