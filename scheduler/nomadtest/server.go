// Package nomadtest runs a real Nomad agent for tests: a thin testing
// wrapper around scheduler/nomadagent, which starts `nomad agent -dev`
// (server and client in one process) on free loopback ports, with ACLs
// enabled and bootstrapped, in a temporary directory, and stops it leaving
// nothing behind. NewTestServer adds what tests want: the binary found in
// the repository, a DEBUG agent log, progress on the test log, failure
// instead of an error, the agent's log tail when a test fails, and Stop in
// tb.Cleanup.
//
// The agent binary is the one `make tools` builds from deploy/nomad (Nomad
// v1.11.3). There are no fakes here: tests that need Nomad fail, never skip,
// when the binary is missing.
package nomadtest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// BinEnv names the environment variable that overrides where the nomad
// binary is; by default it is bin/nomad at the root of this repository.
const BinEnv = nomadagent.BinEnv

// DeniedFingerprinters are the client fingerprinters the agent runs without
// (see nomadagent.DeniedFingerprinters).
var DeniedFingerprinters = nomadagent.DeniedFingerprinters

// Config configures a test agent: nomadagent's Config. An empty Binary means
// $SPICE_NOMAD_BIN, else <repo>/bin/nomad; a nil Logger means the test log.
type Config = nomadagent.Config

// DefaultConfig is the configuration NewTestServer starts from:
// nomadagent.DefaultConfig with the agent logging at DEBUG.
func DefaultConfig() Config {
	c := nomadagent.DefaultConfig()
	c.LogLevel = "DEBUG"
	return c
}

// Option changes the Config of a test agent.
type Option func(*Config)

// WithBinary runs the given nomad executable.
func WithBinary(path string) Option { return func(c *Config) { c.Binary = path } }

// WithLogLevel sets the agent's log level.
func WithLogLevel(level string) Option { return func(c *Config) { c.LogLevel = level } }

// WithHCL adds agent configuration, merged over the harness's defaults.
func WithHCL(hcl string) Option { return func(c *Config) { c.ExtraHCL = hcl } }

// WithChrootEnv sets the exec driver's chroot; nil for Nomad's default.
func WithChrootEnv(env map[string]string) Option { return func(c *Config) { c.ChrootEnv = env } }

// LeanChrootEnv is a chroot with a shell, the core utilities and the C
// library (see nomadagent.LeanChrootEnv).
func LeanChrootEnv() map[string]string { return nomadagent.LeanChrootEnv() }

// WithDrivers sets the task drivers to wait for (none: do not wait for any).
func WithDrivers(drivers ...string) Option { return func(c *Config) { c.Drivers = drivers } }

// WithServerOnly runs a server without a client, which admits clients
// only with an introduction token (nomadagent.Config.ServerOnly).
func WithServerOnly() Option {
	return func(c *Config) { c.ServerOnly, c.Drivers = true, nil }
}

// WithContributor makes the agent's client node a contributor's machine:
// in the hub's node pool (nomad.DefaultNodePool), its work paid to the
// contributor account, asking no price floor.
func WithContributor(account string) Option {
	return func(c *Config) {
		c.NodePool = nomad.DefaultNodePool
		c.Meta = agentapi.NodeMeta(account, "", "", 0, "")
	}
}

// Server is a running `nomad agent -dev` owned by a test. The agent's
// fields (Addr, ManagementToken, Client, LogPath, Dir, HTTPPort, RPCPort,
// SerfPort) are promoted from the embedded Agent.
type Server struct {
	*nomadagent.Agent

	tb   testing.TB
	once sync.Once
}

// NewTestServer starts a Nomad dev agent and returns once it has a leader,
// ACLs are bootstrapped and its client node is ready with cfg.Drivers
// healthy. The agent is stopped, and everything it left behind removed, in
// tb.Cleanup. On any start-up failure the test fails with the tail of the
// agent's log.
func NewTestServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := DefaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.Binary == "" {
		cfg.Binary = defaultBinary(tb)
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		tb.Fatalf("nomadtest: no nomad binary at %s (%v): run `make tools` to build it, or set %s", cfg.Binary, err, BinEnv)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{} // the test log has its own order
				}
				return a
			},
		}))
	}
	a, err := nomadagent.Start(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("nomadtest: %v", err)
	}
	s := &Server{Agent: a, tb: tb}
	tb.Cleanup(s.Stop)
	return s
}

// NewClient returns an API client for the agent that authenticates with
// token ("" for anonymous requests). The caller should Close it.
func (s *Server) NewClient(token string) *api.Client {
	s.tb.Helper()
	c, err := s.Agent.NewClient(token)
	if err != nil {
		s.tb.Fatalf("nomadtest: %v", err)
	}
	return c
}

// Stop stops the agent and removes everything it left behind (see
// nomadagent.Agent.Stop), failing the test if something remains. When the
// test has failed, it first logs the tail of the agent's log. Safe to call
// more than once; NewTestServer registers it with tb.Cleanup.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.tb.Failed() {
			s.tb.Logf("nomadtest: agent log %s (tail):\n%s", s.LogPath, s.LogTail(60))
		}
		if err := s.Agent.Stop(); err != nil {
			s.tb.Errorf("nomadtest: %v", err)
		}
	})
}

// defaultBinary is $SPICE_NOMAD_BIN, else bin/nomad in the directory of the
// nearest go.mod above the working directory (the repository root when run
// by `go test`).
func defaultBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("nomadtest: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin", "nomad")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("nomadtest: no go.mod above the working directory to find bin/nomad: run `make tools` from the repository, or set %s", BinEnv)
		}
		dir = parent
	}
}
