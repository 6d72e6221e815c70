// Package devstack is `spice dev` (`make dev`): a whole local SpiceRoute
// stack for a newcomer, with no set-up. It starts an ephemeral PostgreSQL
// cluster (or uses DatabaseURL), runs migrations, starts the hub's Nomad
// server (unless NoNomad) and the hub, creates a demo operator, a demo
// renter with a funded account and two demo contributors, and joins one
// machine for each contributor through the SpiceRoute agent (in process;
// each supervises its own Nomad client): carol's in eu-west asking little,
// dave's in us-east asking more, so that matching and pricing show. It
// prints the hub URL, the tokens and what to try, and runs until its
// context is cancelled (Ctrl-C), then stops everything it started.
package devstack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spiceroute/spiceroute/agent"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// Config configures the dev stack.
type Config struct {
	Listen      string // hub address (default 127.0.0.1:7070)
	DatabaseURL string // use this PostgreSQL instead of an ephemeral cluster
	DataDir     string // where the key and (ephemeral) database live; default a temp dir removed at exit
	HubName     string // default dev.spiceroute.local
	Logger      *slog.Logger

	// NoNomad runs a ledger-only hub: no Nomad agent, no jobs.
	NoNomad bool
	// NoDemoMachines starts the hub's Nomad server but joins no demo
	// machines: for benchmarks and tests that join their own.
	NoDemoMachines bool
	// NomadBinary is the nomad executable for the dev agent. Default:
	// bin/nomad under the working directory (`make tools` builds it), else
	// nomad on PATH. `spice dev` passes $SPICE_NOMAD_BIN.
	NomadBinary string
	// PolicyFile is the hub's admission policy (default
	// hub.DefaultPolicyFile, relative to the working directory).
	PolicyFile string
	// SettleInterval is how often the hub settles running jobs (default
	// DevSettleInterval).
	SettleInterval time.Duration
}

// DevSettleInterval is how often the dev hub settles running jobs: often,
// so that a newcomer sees debit notes while the example job runs.
const DevSettleInterval = 10 * time.Second

// Stack is a running dev stack.
type Stack struct {
	Hub *hub.Server
	// Nomad is the hub's Nomad server; nil with NoNomad. The hub reaches it
	// with its ManagementToken, which is the hub's own and never a renter's.
	Nomad *nomadagent.Agent
	// Machines are the demo contributors' machines, joined through the
	// agent; empty with NoNomad or NoDemoMachines.
	Machines []*Machine
	// Postgres is the ephemeral cluster; nil with DatabaseURL.
	Postgres *pgcluster.Cluster

	OperatorToken  string
	RenterToken    string
	ContributorTok string
	DaveToken      string
	RenterAccount  ledger.ID
	ContribAccount ledger.ID

	hubStop     context.CancelFunc // stops serving
	hubDone     chan error         // Hub.Run's result
	agentCtx    context.Context    // the agents run until Close cancels it
	agentEnd    context.CancelFunc
	agents      sync.WaitGroup
	machineExit chan error // an agent that stopped by itself

	nomadCLI       string        // how the welcome names the nomad binary
	settleInterval time.Duration // how often the hub settles jobs
	dir            string        // Config.DataDir, or tmp
	tmp            string        // a temporary DataDir, removed by Close
}

// DemoBalance is what the demo renter starts with.
const DemoBalance = 1000 * ledger.MicroPerSpice

// demoID derives stable IDs so restarting against the same database is idempotent.
func demoID(name string) ledger.ID {
	h := sha256.Sum256([]byte("spiceroute/dev/" + name))
	var id ledger.ID
	copy(id[:], h[:16])
	return id
}

// Start brings the stack up.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7070"
	}
	if cfg.HubName == "" {
		cfg.HubName = "dev.spiceroute.local"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SettleInterval <= 0 {
		cfg.SettleInterval = DevSettleInterval
	}
	var nomadBin string
	if !cfg.NoNomad {
		// Before anything starts: a missing binary is the likeliest failure.
		if nomadBin, err = nomadBinary(cfg.NomadBinary); err != nil {
			return nil, err
		}
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dir := cfg.DataDir
	if dir == "" {
		if s.tmp, err = os.MkdirTemp("", "spice-dev-"); err != nil {
			return nil, fmt.Errorf("dev: %w", err)
		}
		dir = s.tmp
	}
	s.dir = dir
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		pc := pgcluster.DefaultConfig()
		pc.Logger = cfg.Logger
		if cfg.DataDir != "" {
			pc.DataDir = filepath.Join(cfg.DataDir, "postgres")
		}
		if s.Postgres, err = pgcluster.Start(ctx, pc); err != nil {
			return nil, fmt.Errorf("dev: %w", err)
		}
		// A kept data directory (-data) already has the database from the last run.
		if err := s.Postgres.CreateDatabase(ctx, "spiceroute", ""); err != nil && !errors.Is(err, pgcluster.ErrDatabaseExists) {
			return nil, fmt.Errorf("dev: %w", err)
		}
		dbURL = s.Postgres.URL("spiceroute")
	}
	hc := hub.DefaultConfig()
	hc.Name, hc.Listen, hc.DatabaseURL, hc.Logger = cfg.HubName, cfg.Listen, dbURL, cfg.Logger
	hc.KeyFile = filepath.Join(dir, "hub.key")
	if !cfg.NoNomad {
		if err := s.startNomad(ctx, nomadBin, cfg.Logger); err != nil {
			return nil, err
		}
		hc.Nomad = nomad.Config{Address: s.Nomad.Addr, Token: s.Nomad.ManagementToken}
		hc.Contrib.NomadServers = []string{fmt.Sprintf("127.0.0.1:%d", s.Nomad.RPCPort)}
		// Both demo regions are this machine: the agents measure their
		// round-trip time to the Nomad server's status endpoint.
		ping := s.Nomad.Addr + "/v1/status/leader"
		hc.Contrib.Regions = []agentapi.Region{{Name: "eu-west", PingURL: ping}, {Name: "us-east", PingURL: ping}}
		hc.Contrib.HeartbeatInterval = 2 * time.Second
		if cfg.PolicyFile != "" {
			hc.PolicyFile = cfg.PolicyFile
		}
		hc.SettleInterval = cfg.SettleInterval
		s.settleInterval = cfg.SettleInterval
	}
	if s.Hub, err = hub.Open(ctx, hc); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	// The agents join over the API: the hub serves from here on.
	hubCtx, stop := context.WithCancel(context.Background())
	s.hubStop, s.hubDone = stop, make(chan error, 1)
	go func() { s.hubDone <- s.Hub.Run(hubCtx) }()
	if !cfg.NoNomad && !cfg.NoDemoMachines {
		if err := s.joinMachines(ctx, nomadBin, cfg.Logger); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Machine is a demo contributor's machine: an agent joined to the hub.
type Machine struct {
	Owner  string
	Region string
	Floor  ledger.Amount // µSP per core-hour
	Agent  *agent.Agent
}

// DemoMachines are the contributors `make dev` joins: carol asks less than
// the hub's default CPU price (0.04 SP/core-hour), dave more, so a job that
// accepts the hub's price lands on carol's machine and one that accepts
// more and prefers us-east lands on dave's.
var DemoMachines = []struct {
	Owner, Region string
	Floor         ledger.Amount
}{{"carol", "eu-west", 30_000}, {"dave", "us-east", 50_000}}

// joinMachines enrols the demo contributors, joins a machine for each
// through the agent (or, with a kept data directory, restarts the machines
// that joined before), and waits for their Nomad nodes to be ready.
func (s *Stack) joinMachines(ctx context.Context, nomadBin string, log *slog.Logger) error {
	s.agentCtx, s.agentEnd = context.WithCancel(context.Background())
	s.machineExit = make(chan error, len(DemoMachines))
	bin, err := filepath.Abs(nomadBin)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for _, d := range DemoMachines {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		ac := agent.DefaultConfig()
		ac.StateDir = filepath.Join(s.dir, "machines", d.Owner)
		ac.SampleInterval, ac.NomadBinary, ac.NomadHTTPPort = 2*time.Second, bin, port
		ac.Offer = agentapi.Offer{Region: d.Region, FloorCPU: int64(d.Floor)}
		ac.Logger = log.With("machine", d.Owner)
		if _, _, err := agent.LoadState(ac.StateDir); errors.Is(err, agent.ErrNotJoined) {
			token, _, err := s.Hub.Machines.Enrol(ctx, "operator", d.Owner, 0)
			if err != nil {
				return fmt.Errorf("dev: enrol %s: %w", d.Owner, err)
			}
			if _, err := agent.Join(ctx, ac, s.Hub.URL(), token, agent.Settings{NomadBinary: bin, NomadHTTPPort: port, ManageNomad: true}); err != nil {
				return fmt.Errorf("dev: %s's machine: %w", d.Owner, err)
			}
		}
		a, err := agent.New(ac)
		if err != nil {
			return fmt.Errorf("dev: %s's machine: %w", d.Owner, err)
		}
		m := &Machine{Owner: d.Owner, Region: d.Region, Floor: d.Floor, Agent: a}
		s.agents.Add(1)
		go func() {
			defer s.agents.Done()
			err := a.Run(s.agentCtx)
			if s.agentCtx.Err() == nil {
				s.machineExit <- fmt.Errorf("dev: %s's agent stopped: %v", m.Owner, err)
			}
		}()
		s.Machines = append(s.Machines, m)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ms, err := s.Hub.Machines.Machines(ctx, "")
		ready := 0
		if err == nil {
			for _, m := range ms {
				if n, ok, err := s.Hub.Jobs.Sched.NodeByName(ctx, m.NodeName); err == nil && ok && n.Ready() {
					ready++
				}
			}
		}
		if ready >= len(DemoMachines) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dev: %d of %d demo machines ready after 2 minutes (last error: %v)", ready, len(DemoMachines), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNomad starts the hub's Nomad server: no client of its own, and
// contributors' clients join only with an introduction token.
func (s *Stack) startNomad(ctx context.Context, bin string, log *slog.Logger) error {
	ac := nomadagent.DefaultConfig()
	ac.Binary, ac.Name, ac.Logger = bin, "hub-dev", log
	ac.ServerOnly, ac.Drivers = true, nil
	var err error
	if s.Nomad, err = nomadagent.Start(ctx, ac); err != nil {
		return fmt.Errorf("dev: Nomad agent (-no-nomad runs a hub without jobs): %w", err)
	}
	s.nomadCLI = bin
	return nil
}

// nomadBinary is the nomad executable to run, as the welcome names it: the
// configured one, else bin/nomad under the working directory, else nomad on
// PATH.
func nomadBinary(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	local := filepath.Join("bin", "nomad")
	if _, err := os.Stat(local); err == nil {
		return local, nil
	}
	if _, err := exec.LookPath("nomad"); err == nil {
		return "nomad", nil
	}
	return "", errors.New("dev: no nomad binary: bin/nomad does not exist and there is no nomad on PATH; " +
		"run `make tools` to build bin/nomad (or set SPICE_NOMAD_BIN, or run with -no-nomad)")
}

// seed creates the demo principals, their tokens and accounts.
func (s *Stack) seed(ctx context.Context) error {
	var err error
	for _, p := range []struct {
		dst  *string
		name string
		role auth.Role
	}{{&s.OperatorToken, "operator", auth.RoleOperator}, {&s.RenterToken, "alice", auth.RoleRenter}, {&s.ContributorTok, "carol", auth.RoleContributor},
		{&s.DaveToken, "dave", auth.RoleContributor}} {
		if *p.dst, err = s.Hub.Store.CreateToken(ctx, auth.Principal{Name: p.name, Role: p.role}, "spice dev"); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	s.RenterAccount, s.ContribAccount = demoID("alice"), demoID("carol")
	res, err := s.Hub.Ledger.CreateAccounts(ctx, ledger.System, []ledger.Account{
		{ID: s.RenterAccount, Owner: "alice", Kind: ledger.KindRenter},
		{ID: s.ContribAccount, Owner: "carol", Kind: ledger.KindContributor},
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("dev: %w", r.Err)
		}
	}
	tr, err := s.Hub.Ledger.CreateTransfers(ctx, ledger.System, []ledger.Transfer{{
		ID: demoID("alice-initial-credit"), DebitAccountID: s.Hub.IssuanceAccount(), CreditAccountID: s.RenterAccount, Amount: DemoBalance, UserData: "dev: initial credit",
	}})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if tr[0].Err != nil {
		return fmt.Errorf("dev: %w", tr[0].Err)
	}
	return nil
}

// PrintWelcome tells the newcomer what is running and what to try.
func (s *Stack) PrintWelcome(w io.Writer) {
	url := s.Hub.URL()
	fmt.Fprintf(w, "\nSpiceRoute dev hub is running at %s\n\n", url)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "who\ttoken\taccount\n")
	fmt.Fprintf(tw, "operator\t%s\tissuance %s\n", s.OperatorToken, s.Hub.IssuanceAccount())
	fmt.Fprintf(tw, "renter alice\t%s\t%s (%s)\n", s.RenterToken, s.RenterAccount, DemoBalance)
	fmt.Fprintf(tw, "contributor carol\t%s\t%s\n", s.ContributorTok, s.ContribAccount)
	fmt.Fprintf(tw, "contributor dave\t%s\t%s\n", s.DaveToken, "(opened when his machine joins)")
	tw.Flush()
	fmt.Fprintf(w, "\nTry, in another terminal:\n")
	fmt.Fprintf(w, "  export SPICE_ADDR=%s SPICE_TOKEN=%s\n", url, s.RenterToken)
	fmt.Fprintf(w, "  bin/spice account list\n")
	fmt.Fprintf(w, "  bin/spice transfer create -from %s -to %s -amount 2.5\n", s.RenterAccount, s.ContribAccount)
	fmt.Fprintf(w, "  bin/spice ledger verify -key '%s'\n", s.Hub.VKey)
	fmt.Fprintf(w, "  curl %s/log/checkpoint\n", url)
	if s.Nomad == nil {
		fmt.Fprintf(w, "\nJobs are off (-no-nomad): this hub runs no Nomad agent.\n")
	} else {
		fmt.Fprintf(w, "\nNomad server (log %s); contributors' machines, joined with `spice agent join` in process, in node pool %q:\n", s.Nomad.LogPath, nomad.DefaultNodePool)
		for _, m := range s.Machines {
			st := m.Agent.State()
			fmt.Fprintf(w, "  %-6s %s, region %s, floor %s SP/core-hour, paid to %s\n", m.Owner, st.Join.Nomad.NodeName, m.Region, m.Floor.SP(), st.Join.AccountID)
		}
		fmt.Fprintf(w, "  (the hub's CPU price starts at 0.04 SP/core-hour; see bin/spice prices history and bin/spice machine list)\n")
		fmt.Fprintf(w, "  operator's UI: %s/ui/  sign in with the hub's own Nomad token %s\n", s.Nomad.Addr, s.Nomad.ManagementToken)
		fmt.Fprintf(w, "  (it controls the whole cluster: never hand it to a renter; renters use their SpiceRoute token)\n")
		fmt.Fprintf(w, "\nRun the example job as alice, with the stock nomad CLI or with spice:\n")
		fmt.Fprintf(w, "  NOMAD_ADDR=%s NOMAD_TOKEN=%s %s job run nomad-jobs/hello.nomad.hcl\n", url, s.RenterToken, s.nomadCLI)
		fmt.Fprintf(w, "  SPICE_ADDR=%s SPICE_TOKEN=%s bin/spice job run nomad-jobs/hello.nomad.hcl\n", url, s.RenterToken)
		fmt.Fprintf(w, "Then, with SPICE_ADDR and SPICE_TOKEN exported as above, see the balances (settled every %s) and the invoice:\n", s.settleInterval)
		fmt.Fprintf(w, "  bin/spice account get %s\n", s.RenterAccount)
		fmt.Fprintf(w, "  SPICE_TOKEN=%s bin/spice account get %s\n", s.ContributorTok, s.ContribAccount)
		fmt.Fprintf(w, "  bin/spice invoice get 1 -o invoice.pdf\n")
		fmt.Fprintf(w, "hello runs on carol's machine: dave's floor is above the hub's price. To reach dave's, accept more and prefer us-east:\n")
		fmt.Fprintf(w, "  bin/spice job quote nomad-jobs/hello-us-east.nomad.hcl\n")
		fmt.Fprintf(w, "  bin/spice job run nomad-jobs/hello-us-east.nomad.hcl\n")
	}
	fmt.Fprintf(w, "\nPress Ctrl-C to stop; everything started here stops with it.\n\n")
}

// DataDir is where the hub's key (and, with an ephemeral PostgreSQL and a
// Config.DataDir, the database) lives: Config.DataDir, else a temporary
// directory that Close removes.
func (s *Stack) DataDir() string { return s.dir }

// errAgentExited ends Run when the Nomad agent exits by itself.
var errAgentExited = errors.New("dev: the Nomad agent exited")

// Run serves until ctx is done, or until the hub, the Nomad server or a
// demo machine's agent stops by itself.
func (s *Stack) Run(ctx context.Context) error {
	var serverExited <-chan struct{}
	if s.Nomad != nil {
		serverExited = s.Nomad.Done()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.hubDone:
		s.hubDone <- err // for Close
		if err == nil {
			err = errors.New("dev: the hub stopped")
		}
		return err
	case <-serverExited:
		return fmt.Errorf("%w unexpectedly; its log (tail):\n%s", errAgentExited, s.Nomad.LogTail(30))
	case err := <-s.machineExit:
		return err
	}
}

// Close stops the demo machines' agents (their Nomad clients and tasks
// with them), then the hub, then the Nomad server, then PostgreSQL, and
// removes temporary files. Safe to call twice.
func (s *Stack) Close() error {
	var errs []error
	if s.agentEnd != nil {
		s.agentEnd()
		s.agents.Wait()
		for _, m := range s.Machines {
			if err := m.Agent.Close(); err != nil {
				errs = append(errs, fmt.Errorf("dev: stop %s's machine: %w", m.Owner, err))
			}
		}
		s.agentEnd, s.Machines = nil, nil
	}
	if s.hubStop != nil {
		s.hubStop()
		if err := <-s.hubDone; err != nil {
			errs = append(errs, fmt.Errorf("dev: hub: %w", err))
		}
		s.hubStop = nil
	}
	if s.Hub != nil {
		if err := s.Hub.Close(); err != nil {
			errs = append(errs, fmt.Errorf("dev: stop hub: %w", err))
		}
		s.Hub = nil
	}
	if s.Nomad != nil {
		if err := s.Nomad.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("dev: %w", err))
		}
		s.Nomad = nil
	}
	if s.Postgres != nil {
		if err := s.Postgres.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("dev: %w", err))
		}
		s.Postgres = nil
	}
	if s.tmp != "" {
		if err := os.RemoveAll(s.tmp); err != nil {
			errs = append(errs, fmt.Errorf("dev: remove %s: %w", s.tmp, err))
		}
		s.tmp = ""
	}
	return errors.Join(errs...)
}
