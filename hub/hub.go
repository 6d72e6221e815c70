// Package hub wires a SpiceRoute hub together: the PostgreSQL store, the
// ledger writer, the transparency log and its checkpoint publisher, and the
// HTTP API. `spice hub` is Open + Run + Close; tests and `spice dev` reuse
// the same Server with port 0 and temporary directories.
package hub

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiceroute/spiceroute/hub/admission"
	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/gateway"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/hub/translog"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"golang.org/x/mod/sumdb/note"
)

// Config configures a hub. Only main reads flags and environment variables.
type Config struct {
	// Name is the hub's name: the origin line of its log checkpoints and the
	// name of its signing key, e.g. "eu-west.spiceroute.example". Required.
	Name string
	// Listen is the HTTP address (default 127.0.0.1:7070; ":0" picks a port).
	Listen string
	// DatabaseURL is the PostgreSQL connection string. Required.
	DatabaseURL string
	// KeyFile holds the hub's Ed25519 signed-note key; created if missing.
	KeyFile string
	// CheckpointInterval bounds how long a commit waits for a signed
	// checkpoint (default 500ms; at most a second).
	CheckpointInterval time.Duration
	// API configures the HTTP API (limits, rate limits).
	API api.Config

	// Nomad is the hub's Nomad cluster, reached with the hub's own token.
	// An empty Address runs a ledger-only hub: no jobs, no gateway.
	Nomad nomad.Config
	// PolicyFile is the admission policy (default policies/admission.hcl).
	PolicyFile string
	// CommissionBP is the hub's commission in basis points of what renters
	// pay (default 1000: 10 %; set NoCommission for none).
	CommissionBP int
	// SettleInterval is how often running jobs are settled (default 1m);
	// SettleLag how far behind the clock they are charged (default 5s).
	SettleInterval, SettleLag time.Duration
	// Pricing moves unit prices with supply and demand (hub/market's
	// utilization controller), with Nomad only. Interval 0 never moves
	// them by itself (Server.Pricing.Tick still does).
	Pricing market.ControllerConfig
	// Contrib configures contributors' machines: the Nomad servers agents
	// join, regions, heartbeats, reputation (with Nomad only).
	Contrib contrib.Config
	// ReputationInterval is how often reputations are applied to nodes
	// (default 1m).
	ReputationInterval time.Duration
	// SpotChecks sends contributors' machines known check jobs and
	// verifies their results (with Nomad only); a zero Fraction (the
	// default) runs no rounds.
	SpotChecks contrib.SpotCheckConfig
	// Payout configures contributors' payouts (rate, the hub's bank
	// account, the batch directory, the schedule); the zero value is off.
	Payout payout.Config

	Logger *slog.Logger
}

// NoCommission is a CommissionBP that takes no commission.
const NoCommission = -1

// DefaultPolicyFile is where the hub finds its admission policy.
const DefaultPolicyFile = "policies/admission.hcl"

// DefaultConfig returns a Config with every default filled in except Name,
// DatabaseURL and KeyFile.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:7070",
		CheckpointInterval: 500 * time.Millisecond,
		API:                api.DefaultConfig(),
		PolicyFile:         DefaultPolicyFile,
		CommissionBP:       1000,
		Pricing:            market.DefaultControllerConfig(),
	}
}

// SystemAccountID is the ID of a hub's own account of a kind: the first 16
// bytes of SHA-256("spiceroute/system-account/v1\x00" || hub name || 0 || kind).
// Deterministic, so every hub replica and auditor agrees on them.
func SystemAccountID(hubName string, kind ledger.AccountKind) ledger.ID {
	h := sha256.New()
	h.Write([]byte("spiceroute/system-account/v1\x00" + hubName + "\x00"))
	h.Write([]byte{byte(kind)})
	var id ledger.ID
	copy(id[:], h.Sum(nil))
	return id
}

// SystemOwner owns the hub's own accounts.
const SystemOwner = "hub"

// systemAccounts are created at every start (idempotently).
var systemAccounts = []struct {
	kind  ledger.AccountKind
	flags ledger.AccountFlags
}{
	{ledger.KindIssuance, ledger.AccountAllowNegative},
	{ledger.KindHubCommission, 0},
	{ledger.KindHubRevenue, 0},
	{ledger.KindEscrow, 0},
	{ledger.KindPayout, 0},
}

// Server is a running hub.
type Server struct {
	cfg       Config
	log       *slog.Logger
	Store     *postgres.Store
	Ledger    *ledger.Ledger
	Log       *translog.Log
	publisher *translog.Publisher
	VKey      string // the log's verifier key, for auditors
	// Jobs admits, meters and settles renters' jobs; nil without Nomad.
	Jobs *jobs.Service
	// Pricing moves prices with supply and demand; nil without Nomad.
	Pricing *market.Controller
	// Machines registers and follows contributors' machines; nil without
	// Nomad.
	Machines *contrib.Service
	// SpotChecks checks contributors' machines' results; nil without
	// Nomad.
	SpotChecks *contrib.SpotChecker
	// Payouts pays contributors; nil unless Config.Payout is set.
	Payouts  *payout.Service
	http     *http.Server
	listener net.Listener

	cancel context.CancelFunc
	done   chan error
	closed bool
}

// Open connects to the database, migrates it, loads the ledger, creates the
// hub's system accounts and binds the listener. Serving starts with Run.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Name == "" || cfg.DatabaseURL == "" || cfg.KeyFile == "" {
		return nil, errors.New("hub: Name, DatabaseURL and KeyFile are required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultConfig().Listen
	}
	if cfg.CheckpointInterval <= 0 || cfg.CheckpointInterval > time.Second {
		cfg.CheckpointInterval = DefaultConfig().CheckpointInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	signer, vkey, err := translog.LoadOrCreateKey(cfg.KeyFile, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	s.VKey = vkey
	if s.Store, err = postgres.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	s.Log = translog.New(s.Store, signer)
	s.publisher = translog.NewPublisher(s.Log, cfg.CheckpointInterval, cfg.Logger)
	s.Ledger, err = ledger.Open(ctx, s.Store, ledger.Config{OnCommit: s.publisher.Notify, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if err := s.createSystemAccounts(ctx); err != nil {
		return nil, err
	}
	deps := api.Deps{Ledger: s.Ledger, Reader: s.Store, Tokens: s.Store, Log: s.Log, Prices: s.Store, Invoices: s.Store}
	if cfg.Nomad.Address != "" {
		if s.Jobs, err = s.openJobs(ctx); err != nil {
			return nil, err
		}
		deps.Jobs, deps.Quotes = s.Jobs, s.Jobs
		s.Machines = s.openMachines(s.Jobs.Sched)
		deps.Machines = s.Machines
		if s.Pricing, err = market.NewController(cfg.Pricing, s.Jobs.Sched, s.Store, cfg.Logger); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
	}
	if cfg.Payout.Enabled() {
		s.Payouts, err = payout.New(cfg.Payout, payout.Deps{Hub: cfg.Name, Ledger: s.Ledger, Store: s.Store,
			Account: SystemAccountID(cfg.Name, ledger.KindPayout), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		deps.Payouts = s.Payouts
	}
	if s.Jobs != nil {
		if s.SpotChecks, err = s.openSpotChecks(s.Jobs.Sched); err != nil {
			return nil, err
		}
	}
	apiCfg := cfg.API
	apiCfg.HubInfo = s.info(signer)
	if s.Jobs != nil {
		apiCfg.Unbounded = gateway.Streaming
	}
	reg := prometheus.NewRegistry()
	if s.Jobs != nil {
		s.Jobs.Metrics = jobs.NewMetrics(reg)
	}
	handler := api.New(apiCfg, deps, cfg.Logger, reg)
	if s.Jobs != nil {
		// The Nomad-compatible gateway: renters' stock nomad CLI, with
		// NOMAD_TOKEN set to their SpiceRoute token.
		gw, err := gateway.New(gateway.Config{NomadAddr: cfg.Nomad.Address, NomadToken: cfg.Nomad.Token, Namespace: s.Jobs.Sched.Namespace}, s.Jobs, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		handler.Echo().Any("/v1/*", echo.WrapHandler(gw))
	}
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("hub: listen: %w", err)
	}
	s.http = api.NewHTTPServer(s.listener.Addr().String(), handler.Handler())
	return s, nil
}

// openJobs connects to Nomad, creates the contributors' node pool and
// loads the admission policy.
func (s *Server) openJobs(ctx context.Context) (*jobs.Service, error) {
	cfg := s.cfg
	sched, err := nomad.New(cfg.Nomad)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if err := sched.EnsureNodePool(ctx); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if cfg.PolicyFile == "" {
		cfg.PolicyFile = DefaultPolicyFile
	}
	policy, err := admission.LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	bp := cfg.CommissionBP
	switch {
	case bp == NoCommission:
		bp = 0
	case bp == 0:
		bp = DefaultConfig().CommissionBP
	case bp < 0 || bp > 10_000:
		return nil, fmt.Errorf("hub: commission %d basis points is outside 0..10000", bp)
	}
	return &jobs.Service{
		Sched: sched, Ledger: s.Ledger, Prices: s.Store, Policy: policy, Store: s.Store,
		Accounts: jobs.Accounts{
			Accounts: settle.Accounts{Escrow: SystemAccountID(cfg.Name, ledger.KindEscrow), Commission: SystemAccountID(cfg.Name, ledger.KindHubCommission)},
			Owned:    s.Store.AccountsByOwner,
		},
		Billing: jobs.Billing{Hub: cfg.Name, CommissionBP: bp, Interval: cfg.SettleInterval, Lag: cfg.SettleLag,
			Revenue: SystemAccountID(cfg.Name, ledger.KindHubRevenue), Reader: s.Store, Logger: cfg.Logger},
	}, nil
}

func (s *Server) info(signer note.Signer) api.HubInfo {
	info := api.HubInfo{Name: s.cfg.Name, LogOrigin: signer.Name(), LogPublicKey: s.VKey, SystemAccounts: map[string]ledger.ID{}}
	for _, sa := range systemAccounts {
		info.SystemAccounts[sa.kind.String()] = SystemAccountID(s.cfg.Name, sa.kind)
	}
	return info
}

func (s *Server) createSystemAccounts(ctx context.Context) error {
	var accts []ledger.Account
	for _, sa := range systemAccounts {
		accts = append(accts, ledger.Account{ID: SystemAccountID(s.cfg.Name, sa.kind), Owner: SystemOwner, Kind: sa.kind, Flags: sa.flags})
	}
	res, err := s.Ledger.CreateAccounts(ctx, ledger.System, accts)
	if err != nil {
		return fmt.Errorf("hub: system accounts: %w", err)
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("hub: system account %s: %w", r.Account.Kind, r.Err)
		}
	}
	return nil
}

// URL is the hub's base URL, e.g. http://127.0.0.1:7070.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// IssuanceAccount is where the hub's operator issues Spice from.
func (s *Server) IssuanceAccount() ledger.ID { return SystemAccountID(s.cfg.Name, ledger.KindIssuance) }

// Run serves until ctx is done or the server fails, then shuts down.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pubDone := make(chan error, 1)
	go func() { pubDone <- s.publisher.Run(ctx) }()
	var settleDone chan error // nil (never ready) without jobs
	if s.Jobs != nil {
		settleDone = make(chan error, 1)
		go func() { settleDone <- s.Jobs.RunSettlement(ctx) }()
	}
	var pricingDone chan error
	if s.Pricing != nil {
		pricingDone = make(chan error, 1)
		go func() { pricingDone <- s.Pricing.Run(ctx) }()
	}
	var payoutDone chan error
	if s.Payouts != nil && s.cfg.Payout.Schedule {
		payoutDone = make(chan error, 1)
		go func() { payoutDone <- s.Payouts.RunSchedule(ctx) }()
	}
	var repDone chan error
	if s.Machines != nil {
		every := s.cfg.ReputationInterval
		if every <= 0 {
			every = time.Minute
		}
		repDone = make(chan error, 1)
		go func() { repDone <- s.Machines.RunEnforcement(ctx, every) }()
	}
	var spotDone chan error
	if s.SpotChecks != nil && s.cfg.SpotChecks.Fraction > 0 {
		spotDone = make(chan error, 1)
		go func() { spotDone <- s.SpotChecks.Run(ctx) }()
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- s.http.Serve(s.listener) }()
	s.log.Info("hub serving", "name", s.cfg.Name, "url", s.URL(), "log_key", s.VKey)
	var err error
	select {
	case <-ctx.Done():
	case err = <-srvErr:
		err = fmt.Errorf("hub: serve: %w", err)
	case err = <-settleDone:
		if err == nil {
			err = errors.New("hub: settlement stopped")
		}
		err = fmt.Errorf("hub: %w", err)
		settleDone <- nil
	}
	shutCtx, c2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer c2()
	if e := s.http.Shutdown(shutCtx); e != nil && err == nil {
		err = fmt.Errorf("hub: shutdown: %w", e)
	}
	cancel()
	<-pubDone
	if settleDone != nil {
		<-settleDone
	}
	if pricingDone != nil {
		<-pricingDone
	}
	if payoutDone != nil {
		<-payoutDone
	}
	if repDone != nil {
		<-repDone
	}
	if spotDone != nil {
		<-spotDone
	}
	return err
}

// Close releases everything Open acquired, in reverse order. Safe to call twice.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.listener != nil {
		s.listener.Close()
	}
	if s.Ledger != nil {
		s.Ledger.Close()
	}
	if s.Store != nil {
		s.Store.Close()
	}
	return nil
}
