// Package devstack is `spice dev` (`make dev`): a whole local SpiceRoute
// stack for a newcomer, with no set-up. It starts an ephemeral PostgreSQL
// cluster (or uses DatabaseURL), runs migrations, starts a hub, creates a
// demo operator, a demo renter with a funded account and a demo contributor,
// prints the hub URL, the tokens and what to try, and runs until its context
// is cancelled (Ctrl-C), then stops everything it started.
package devstack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
)

// Config configures the dev stack.
type Config struct {
	Listen      string // hub address (default 127.0.0.1:7070)
	DatabaseURL string // use this PostgreSQL instead of an ephemeral cluster
	DataDir     string // where the key and (ephemeral) database live; default a temp dir removed at exit
	HubName     string // default dev.spiceroute.local
	Logger      *slog.Logger
}

// Stack is a running dev stack.
type Stack struct {
	Hub            *hub.Server
	cluster        *pgcluster.Cluster
	tmp            string
	OperatorToken  string
	RenterToken    string
	ContributorTok string
	RenterAccount  ledger.ID
	ContribAccount ledger.ID
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
	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		pc := pgcluster.DefaultConfig()
		pc.Logger = cfg.Logger
		if cfg.DataDir != "" {
			pc.DataDir = filepath.Join(cfg.DataDir, "postgres")
		}
		if s.cluster, err = pgcluster.Start(ctx, pc); err != nil {
			return nil, fmt.Errorf("dev: %w", err)
		}
		// A kept data directory (-data) already has the database from the last run.
		if err := s.cluster.CreateDatabase(ctx, "spiceroute", ""); err != nil && !errors.Is(err, pgcluster.ErrDatabaseExists) {
			return nil, fmt.Errorf("dev: %w", err)
		}
		dbURL = s.cluster.URL("spiceroute")
	}
	hc := hub.DefaultConfig()
	hc.Name, hc.Listen, hc.DatabaseURL, hc.Logger = cfg.HubName, cfg.Listen, dbURL, cfg.Logger
	hc.KeyFile = filepath.Join(dir, "hub.key")
	if s.Hub, err = hub.Open(ctx, hc); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// seed creates the demo principals, their tokens and accounts.
func (s *Stack) seed(ctx context.Context) error {
	var err error
	for _, p := range []struct {
		dst  *string
		name string
		role auth.Role
	}{{&s.OperatorToken, "operator", auth.RoleOperator}, {&s.RenterToken, "alice", auth.RoleRenter}, {&s.ContributorTok, "carol", auth.RoleContributor}} {
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
	tw.Flush()
	fmt.Fprintf(w, "\nTry, in another terminal:\n")
	fmt.Fprintf(w, "  export SPICE_ADDR=%s SPICE_TOKEN=%s\n", url, s.RenterToken)
	fmt.Fprintf(w, "  bin/spice account list\n")
	fmt.Fprintf(w, "  bin/spice transfer create -from %s -to %s -amount 2.5\n", s.RenterAccount, s.ContribAccount)
	fmt.Fprintf(w, "  bin/spice ledger verify -key '%s'\n", s.Hub.VKey)
	fmt.Fprintf(w, "  curl %s/log/checkpoint\n", url)
	fmt.Fprintf(w, "\nPress Ctrl-C to stop; everything started here stops with it.\n\n")
}

// Run serves until ctx is done.
func (s *Stack) Run(ctx context.Context) error { return s.Hub.Run(ctx) }

// Close stops the hub, then PostgreSQL, and removes temporary files. Safe to call twice.
func (s *Stack) Close() error {
	if s.Hub != nil {
		s.Hub.Close()
		s.Hub = nil
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.Stop()
		s.cluster = nil
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
		s.tmp = ""
	}
	return err
}
