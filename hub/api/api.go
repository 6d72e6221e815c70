// Package api is the hub's REST API under /api (JSON over HTTP, bearer
// tokens), served with echo. It also mounts the transparency log at /log/,
// Prometheus metrics at /metrics and a health check at /healthz.
//
// The API adds no business rules of its own to writes: the ledger enforces
// who may create and debit what (ledger.Caller). Reads are checked here: a
// renter or contributor sees only the accounts it owns and the transfers
// touching them, and gets 404, not 403, for anything else, so that IDs do not
// leak. Operators see everything.
//
// # Routes
//
//	GET    /api/hub                          hub info (no auth)
//	GET    /api/whoami                       the caller's principal
//	POST   /api/accounts                     one account, or {"accounts": [...]}
//	GET    /api/accounts?owner=X             accounts of an owner (default: the caller)
//	GET    /api/accounts/:id                 one account with its balances
//	GET    /api/accounts/:id/transfers       newest transfers of an account (?limit=, default 100, max 1000)
//	POST   /api/transfers                    one transfer: 201 committed, 200 {"existed": true} for a retry
//	POST   /api/transfers/batch              {"transfers": [...]}: 200 with one result per item
//	GET    /api/transfers/:id                one transfer
//	GET    /api/transfers/:id/proof          inclusion proof (?tree_size=, default the latest checkpoint)
//	POST   /api/transfers/:id/post           post a hold: {"id": new ID, "amount": optional µSP}
//	POST   /api/transfers/:id/void           void a hold: {"id": new ID}
//	GET    /api/log/consistency?old=N&new=M  consistency proof (no auth; new defaults to the latest checkpoint)
//	POST   /api/tokens                       create a token (operators only); the secret is shown once
//	DELETE /api/tokens                       revoke the presented token, or {"secret": "..."}
//	GET    /api/prices                       the unit prices in force (no auth; ?region=, ?history=N)
//	GET    /api/prices/history               price changes with what moved them (no auth; ?region=, ?limit=)
//	PUT    /api/prices                       set a region's base prices (operators only)
//	POST   /api/jobs/quote                   quote a job without running it (renters; see registerQuotes)
//	POST   /api/enrolments                   a single-use enrolment token for a contributor (operators only)
//	POST   /api/agent/join                   a machine joins (agentapi.JoinRequest; the enrolment token is the credential)
//	POST   /api/agent/heartbeat              an agent's report (agentapi.Heartbeat; the machine's agent token)
//	GET    /api/machines                     the caller's machines with their reputation (operators: all, or ?owner=)
//	GET    /api/machines/:id                 one machine
//	GET    /api/payouts/profile              the caller's payout profile (operators: ?owner=)
//	PUT    /api/payouts/profile              set the caller's payout profile (contributors): legal name, IBAN, BIC, threshold
//	GET    /api/payouts                      the caller's payouts, newest first (operators: ?owner=; ?limit=)
//	POST   /api/payouts/runs                 pay a period's payouts: {"period": "2026-11"} (operators only; once per period)
//	GET    /api/payouts/runs                 payout runs, newest first (operators only)
//	GET    /api/payouts/runs/:period         one run with its payouts (operators only)
//	GET    /api/payouts/runs/:period/batch.csv|.xml  the run's batch: CSV or ISO 20022 pain.001 (operators only)
//	GET    /api/payouts/withholds            active withholds (?all=true: all; operators only)
//	POST   /api/payouts/withholds            withhold a contributor's payouts: {"owner", "period"?, "reason"} (operators only)
//	POST   /api/payouts/withholds/:id/release  release a withhold (operators only)
//	GET    /log/*                            the transparency log (c2sp.org/tlog-tiles; no auth)
//	GET    /metrics                          Prometheus metrics
//	GET    /healthz                          200 "ok"
//
// Amounts are integer micro-Spice (µSP) everywhere. IDs are UUID strings.
//
// # Errors
//
// Every error reply is
//
//	{"error": {"code": "insufficient_funds", "message": "...", "request_id": "..."}}
//
// with the HTTP status given by [Status] for the code. Internal errors read
// "internal error" and are logged in full under the same request ID.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"golang.org/x/mod/sumdb/tlog"
)

// Ledger is the hub's ledger writer (*ledger.Ledger). Its methods are safe
// for concurrent use and block until the caller's batch is durable or ctx is
// done (then the batch may still commit; a retry with the same IDs is safe).
type Ledger interface {
	CreateAccounts(ctx context.Context, c ledger.Caller, accounts []ledger.Account) ([]ledger.AccountResult, error)
	CreateTransfers(ctx context.Context, c ledger.Caller, transfers []ledger.Transfer) ([]ledger.TransferResult, error)
}

// Reader reads committed ledger state (*postgres.Store). Methods are safe
// for concurrent use. Account and Transfer return a *coded.Error with code
// account_not_found or transfer_not_found when there is no such object.
type Reader interface {
	Account(ctx context.Context, id ledger.ID) (ledger.Account, error)
	AccountsByOwner(ctx context.Context, owner string) ([]ledger.Account, error)
	Transfer(ctx context.Context, id ledger.ID) (ledger.Transfer, error)
	TransfersOfAccount(ctx context.Context, id ledger.ID, limit int) ([]ledger.Transfer, error)
}

// TokenStore keeps API tokens (*postgres.Store). Safe for concurrent use.
// Authenticate returns a *coded.Error "unauthenticated" for an unknown or
// revoked token; RevokeToken returns "not_found" when there is no such
// active token.
type TokenStore interface {
	CreateToken(ctx context.Context, p auth.Principal, name string) (secret string, err error)
	Authenticate(ctx context.Context, secret string) (auth.Principal, error)
	RevokeToken(ctx context.Context, secret string) error
}

// Log is the hub's transparency log (*translog.Log). Safe for concurrent use.
type Log interface {
	// Handler serves the log's public files (c2sp.org/tlog-tiles) at paths
	// relative to /log.
	Handler() http.Handler
	// Checkpoint returns the latest signed checkpoint and its tree.
	Checkpoint(ctx context.Context) (signed []byte, tree tlog.Tree, err error)
	// InclusionProof proves leaf index is in the tree of size treeSize.
	InclusionProof(ctx context.Context, index, treeSize int64) (tlog.RecordProof, error)
	// ConsistencyProof proves the tree of size oldSize is a prefix of newSize's.
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
}

// Deps are the components the API serves. All are required.
type Deps struct {
	Ledger Ledger
	Reader Reader
	Tokens TokenStore
	Log    Log
	// Prices serves /api/prices when set.
	Prices PriceStore
	// Invoices serves /api/invoices when set.
	Invoices InvoiceStore
	// Jobs serves /api/jobs when set (a hub with a Nomad cluster).
	Jobs JobService
	// Payouts serves /api/payouts when set (payouts configured).
	Payouts PayoutService
	// Quotes serves POST /api/jobs/quote when set (a hub with a Nomad cluster).
	Quotes JobQuoter
	// Machines serves enrolments, the agent protocol (/api/agent/) and
	// /api/machines when set (a hub with a Nomad cluster).
	Machines MachineService
}

// Config configures the API. Start from DefaultConfig.
type Config struct {
	// BodyLimit is the largest request body in bytes (default 1 MiB).
	BodyLimit int64
	// BatchBodyLimit is the largest body of POST /api/transfers/batch and of
	// account batches (default 16 MiB: ledger.MaxBatch transfers with long
	// user data fit).
	BatchBodyLimit int64

	// RatePerToken is the sustained number of requests per second one token
	// may make, Burst how many it may make at once (defaults 200 and 400).
	// A token over its rate gets 429 with a Retry-After header.
	RatePerToken float64
	Burst        int
	// ExemptOperators lifts the per-token limit for operator tokens.
	ExemptOperators bool
	// RatePerIP and BurstPerIP limit requests without a valid token (and
	// with an invalid one) per client IP address, IPv6 per /64 (defaults 50
	// and 100). /healthz and /metrics are never limited.
	RatePerIP  float64
	BurstPerIP int
	// TrustForwardedFor takes the client IP from X-Forwarded-For; set it only
	// behind a reverse proxy that sets that header. Otherwise the client IP
	// is the connection's remote address.
	TrustForwardedFor bool

	// RequestTimeout bounds each request's handler (default 30s). A ledger
	// write that times out answers 503 unavailable: it may still commit, and
	// a retry with the same IDs is safe.
	RequestTimeout time.Duration
	// Unbounded picks the requests that run as long as their client reads
	// (a followed log stream through the Nomad gateway): neither
	// RequestTimeout nor the server's WriteTimeout applies to them; they
	// end when the client goes away or the stream does.
	Unbounded func(*http.Request) bool

	// HubInfo is returned by GET /api/hub.
	HubInfo HubInfo
}

// DefaultConfig returns the default limits.
func DefaultConfig() Config {
	return Config{
		BodyLimit:      1 << 20,
		BatchBodyLimit: 16 << 20,
		RatePerToken:   200,
		Burst:          400,
		RatePerIP:      50,
		BurstPerIP:     100,
		RequestTimeout: 30 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BodyLimit <= 0 {
		c.BodyLimit = d.BodyLimit
	}
	if c.BatchBodyLimit <= 0 {
		c.BatchBodyLimit = d.BatchBodyLimit
	}
	if c.RatePerToken <= 0 {
		c.RatePerToken = d.RatePerToken
	}
	if c.Burst <= 0 {
		c.Burst = d.Burst
	}
	if c.RatePerIP <= 0 {
		c.RatePerIP = d.RatePerIP
	}
	if c.BurstPerIP <= 0 {
		c.BurstPerIP = d.BurstPerIP
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	return c
}

// Server is the API. Build it with New and serve Handler(); the hub may add
// its own routes (the Nomad gateway, the portal) on Echo().
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	e       *echo.Echo
	metrics *metrics
	tokens  *limiters // keyed by token hash
	ips     *limiters // keyed by client IP (IPv6: /64)
}

// New builds the API. Zero Config fields take DefaultConfig values. Metrics
// are registered on reg and served at /metrics; a nil reg uses a new
// registry (the hub passes its own, with the Go and process collectors).
func New(cfg Config, deps Deps, logger *slog.Logger, reg *prometheus.Registry) *Server {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:     cfg,
		deps:    deps,
		log:     logger,
		metrics: newMetrics(reg),
		tokens:  newLimiters(cfg.RatePerToken, cfg.Burst),
		ips:     newLimiters(cfg.RatePerIP, cfg.BurstPerIP),
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	if cfg.TrustForwardedFor {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(s.observe, s.timeout, s.authenticate)
	s.e = e

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	logH := echo.WrapHandler(http.StripPrefix("/log", deps.Log.Handler()))
	e.GET("/log/*", logH)
	e.HEAD("/log/*", logH)

	small, batch := s.bodyLimit(cfg.BodyLimit), s.bodyLimit(cfg.BatchBodyLimit)
	g := e.Group("/api")
	g.GET("/hub", s.getHub)
	g.GET("/whoami", s.whoami)
	g.POST("/accounts", s.createAccounts, batch)
	g.GET("/accounts", s.listAccounts)
	g.GET("/accounts/:id", s.getAccount)
	g.GET("/accounts/:id/transfers", s.accountTransfers)
	g.POST("/transfers", s.createTransfer, small)
	g.POST("/transfers/batch", s.createTransferBatch, batch)
	g.GET("/transfers/:id", s.getTransfer)
	g.GET("/transfers/:id/proof", s.transferProof)
	g.POST("/transfers/:id/post", s.postHold, small)
	g.POST("/transfers/:id/void", s.voidHold, small)
	g.GET("/log/consistency", s.consistency)
	g.POST("/tokens", s.createToken, small)
	g.DELETE("/tokens", s.revokeToken, small)
	if deps.Prices != nil {
		s.registerPrices(g, small)
	}
	if deps.Invoices != nil {
		s.registerInvoices(g)
	}
	if deps.Jobs != nil {
		s.registerJobs(g, small)
	}
	if deps.Payouts != nil {
		s.registerPayouts(g, small)
	}
	if deps.Quotes != nil {
		s.registerQuotes(g, small)
	}
	if deps.Machines != nil {
		s.registerMachines(g, small)
	}
	return s
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.e }

// Echo returns the router, for the hub to add routes that share the API's
// middleware (request IDs, logging, metrics, authentication, rate limits)
// and error handler.
func (s *Server) Echo() *echo.Echo { return s.e }

// Timeouts against slow clients, used by NewHTTPServer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 2 * time.Minute // a 16 MiB batch at ~150 KB/s
	WriteTimeout      = 2 * time.Minute // must exceed Config.RequestTimeout
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// NewHTTPServer returns an http.Server for h on addr with timeouts that keep
// slow or idle clients from holding connections open forever.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}
