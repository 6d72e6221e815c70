// Package hubtest starts a whole hub for tests: hub.Open and Run on a fresh
// PostgreSQL database (hub/postgres/pgtest: the test binary's TestMain must
// call pgtest.Main), in front of a real `nomad agent -dev` whose one client
// node is in the hub's node pool and is contributed by "carol".
package hubtest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// Hub is a running hub with a Nomad cluster.
type Hub struct {
	*hub.Server
	Nomad *nomadtest.Server
	// Contributor is carol's contributor account, which the Nomad client
	// node names in its meta: the work it runs is paid there.
	Contributor ledger.ID
}

// Option changes how StartWithNomad starts Nomad or the hub.
type Option struct {
	// Nomad changes the agent's configuration (after it is made
	// carol's contributor node), e.g. to add node meta.
	Nomad nomadtest.Option
	// Hub changes the hub's configuration before it opens.
	Hub func(*hub.Config)
}

// WithNodeMeta adds meta to the Nomad client node, e.g. its region
// (spiceroute_region) or price floor.
func WithNodeMeta(meta map[string]string) Option {
	return Option{Nomad: func(c *nomadtest.Config) {
		if c.Meta == nil {
			c.Meta = map[string]string{}
		}
		for k, v := range meta {
			c.Meta[k] = v
		}
	}}
}

// StartWithNomad starts Nomad and the hub (settling every second, charging
// running jobs up to a second behind, prices moving only when the test
// calls Pricing.Tick); both stop when the test ends. Set SPICE_TEST_LOG to
// see the hub's log.
func StartWithNomad(t *testing.T, opts ...Option) *Hub {
	t.Helper()
	ctx := context.Background()
	contrib := ledger.NewID()
	nomadOpts := []nomadtest.Option{nomadtest.WithContributor(contrib.String())}
	for _, o := range opts {
		if o.Nomad != nil {
			nomadOpts = append(nomadOpts, o.Nomad)
		}
	}
	srv := nomadtest.NewTestServer(t, nomadOpts...)
	cfg := hub.DefaultConfig()
	cfg.Name = "jobs.test.spiceroute.local"
	cfg.Listen = "127.0.0.1:0"
	cfg.DatabaseURL = pgtest.NewDB(t)
	cfg.KeyFile = filepath.Join(t.TempDir(), "hub.key")
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SPICE_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.Nomad = nomad.Config{Address: srv.Addr, Token: srv.ManagementToken}
	cfg.PolicyFile = filepath.Join(repoRoot(t), hub.DefaultPolicyFile)
	cfg.SettleInterval, cfg.SettleLag = time.Second, time.Second
	cfg.Pricing.Interval = 0 // tests tick the market themselves
	for _, o := range opts {
		if o.Hub != nil {
			o.Hub(&cfg)
		}
	}
	s, err := hub.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub run: %v", err)
		}
		s.Close()
	})
	h := &Hub{Server: s, Nomad: srv, Contributor: contrib}
	h.CreateAccount(t, ledger.Account{ID: contrib, Owner: "carol", Kind: ledger.KindContributor})
	return h
}

// CreateAccount creates a, failing the test if the ledger refuses.
func (h *Hub) CreateAccount(t *testing.T, a ledger.Account) {
	t.Helper()
	res, err := h.Ledger.CreateAccounts(context.Background(), ledger.System, []ledger.Account{a})
	if err != nil || res[0].Err != nil {
		t.Fatalf("create account %+v: %v %v", a, err, res[0].Err)
	}
}

// Renter gives name a renter account funded with funds from the hub's
// issuance account (none if funds is 0).
func (h *Hub) Renter(t *testing.T, name string, funds ledger.Amount) ledger.ID {
	t.Helper()
	id := ledger.NewID()
	h.CreateAccount(t, ledger.Account{ID: id, Owner: name, Kind: ledger.KindRenter})
	if funds > 0 {
		res, err := h.Ledger.CreateTransfers(context.Background(), ledger.System, []ledger.Transfer{{
			ID: ledger.NewID(), DebitAccountID: h.IssuanceAccount(), CreditAccountID: id, Amount: funds}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("fund %s: %v %v", name, err, res[0].Err)
		}
	}
	return id
}

// Token creates an API token for name in role and returns its secret.
func (h *Hub) Token(t *testing.T, name string, role auth.Role) string {
	t.Helper()
	secret, err := h.Store.CreateToken(context.Background(), auth.Principal{Name: name, Role: role}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// repoRoot is the directory of the nearest go.mod above the working
// directory (the repository, when run by go test).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("hubtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// WindowsJob can run only on Windows; the test node is Linux: Nomad cannot
// place it, and says which constraint filtered the node.
const WindowsJob = `job "win" {
  type = "batch"
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "windows"
  }
  group "win" {
    task "dir" {
      driver = "exec"
      config {
        command = "/bin/true"
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`
