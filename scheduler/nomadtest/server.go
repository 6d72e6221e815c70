// Package nomadtest runs a real Nomad agent for tests: `nomad agent -dev`
// (server and client in one process) on free loopback ports, with ACLs
// enabled and bootstrapped, in a temporary data directory. It follows the
// fork/exec model of Nomad's own api/internal/testutil.
//
// The agent binary is the one `make tools` builds from deploy/nomad (Nomad
// v1.11.3). There are no fakes here: tests that need Nomad fail, never skip,
// when the binary is missing.
//
// Two things this machine needs, both applied by NewTestServer: the agent runs
// with AWS_CA_BUNDLE unset, and the cloud fingerprinters (env_aws, env_gce,
// env_azure, env_digitalocean) are denied. With both AWS_CA_BUNDLE set and
// env_aws enabled, the agent exits at start-up with "failed to setup IMDS
// client: unable to add custom RootCAs HTTPClient, has no
// WithTransportOptions".
package nomadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// BinEnv names the environment variable that overrides where the nomad
// binary is; by default it is bin/nomad at the root of this repository.
const BinEnv = "SPICE_NOMAD_BIN"

// DeniedFingerprinters are the client fingerprinters the agent runs without.
// They probe cloud metadata services that do not exist here and, with
// AWS_CA_BUNDLE set, env_aws aborts the agent's start.
var DeniedFingerprinters = []string{"env_aws", "env_gce", "env_azure", "env_digitalocean"}

// Config configures a test agent. The zero value is not useful; NewTestServer
// starts from DefaultConfig and applies options to it.
type Config struct {
	// Binary is the nomad executable. Default: $SPICE_NOMAD_BIN, else
	// <repo>/bin/nomad.
	Binary string
	// LogLevel is the agent's log_level (TRACE, DEBUG, INFO, WARN, ERROR).
	LogLevel string
	// ExtraHCL is written to a second configuration file passed after the
	// harness's own, so its blocks merge with and override the defaults.
	ExtraHCL string
	// Drivers are the task drivers that must be detected and healthy on the
	// client node before NewTestServer returns.
	Drivers []string
	// ChrootEnv is the client's chroot_env: the host paths the exec driver
	// links into each task's chroot. nil keeps Nomad's default, all of /usr
	// among others. WithHCL can add entries (Nomad merges the maps).
	ChrootEnv map[string]string
	// StartTimeout bounds the wait for a leader, ACL bootstrap and a ready
	// client node.
	StartTimeout time.Duration
	// StopTimeout is how long the agent gets to exit after SIGINT before it
	// and its descendants are sent SIGKILL.
	StopTimeout time.Duration
}

// DefaultConfig is the configuration NewTestServer starts from.
func DefaultConfig() Config {
	return Config{
		LogLevel:     "DEBUG",
		Drivers:      []string{"exec"},
		ChrootEnv:    LeanChrootEnv(),
		StartTimeout: 90 * time.Second,
		StopTimeout:  30 * time.Second,
	}
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
// library, enough for tests' exec jobs. Nomad's default chroot hard-links all
// of /usr (and a second copy of /usr/lib through the /lib symlink), about
// 225,000 files on a developer machine: building it takes ~25s per task and
// removing it ~20s when the allocation is collected.
func LeanChrootEnv() map[string]string {
	env := map[string]string{}
	for _, p := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/lib64"} {
		env[p] = p
	}
	// Multiarch library directories: /lib/x86_64-linux-gnu, /lib/aarch64-linux-gnu, ...
	dirs, _ := filepath.Glob("/lib/*-linux-gnu*")
	for _, p := range dirs {
		env[p] = p
	}
	return env
}

// WithDrivers sets the task drivers to wait for (none: do not wait for any).
func WithDrivers(drivers ...string) Option { return func(c *Config) { c.Drivers = drivers } }

// Server is a running `nomad agent -dev`.
type Server struct {
	// Addr is the agent's HTTP API address, http://127.0.0.1:<port>.
	Addr string
	// ManagementToken is the secret ID of the ACL bootstrap (management) token.
	ManagementToken string
	// Client is a Nomad API client for Addr that authenticates with
	// ManagementToken. It ignores NOMAD_* environment variables.
	Client *api.Client
	// LogPath is the agent's combined stdout and stderr.
	LogPath string
	// Dir is the temporary directory holding the configuration, the log and
	// the agent's data_dir; it is removed when the server stops.
	Dir string
	// Ports are the agent's HTTP, RPC and Serf ports.
	HTTPPort, RPCPort, SerfPort int

	cfg    Config
	tb     testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returns
	once   sync.Once
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

	// Ports are picked free and then handed to the agent, so another process
	// can take one in between; retry with new ports when that happens.
	const attempts = 3
	for i := 1; ; i++ {
		s, err := start(tb, cfg)
		if err == nil {
			return s
		}
		portClash := s != nil && s.logContains("address already in use")
		tail := ""
		if s != nil {
			tail = s.logTail(80)
			s.Stop()
		}
		if portClash && i < attempts {
			tb.Logf("nomadtest: port clash, retrying: %v", err)
			continue
		}
		tb.Fatalf("nomadtest: start nomad agent: %v\n--- agent log (tail) ---\n%s", err, tail)
	}
}

// start launches one agent and waits for it. It returns the Server (to be
// stopped by the caller) together with any error.
func start(tb testing.TB, cfg Config) (*Server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nomadtest")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{
		Addr:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		LogPath:  filepath.Join(dir, "agent.log"),
		Dir:      dir,
		HTTPPort: ports[0],
		RPCPort:  ports[1],
		SerfPort: ports[2],
		cfg:      cfg,
		tb:       tb,
		exited:   make(chan struct{}),
	}
	// Registered before the agent starts, so a half-started agent is
	// stopped too.
	tb.Cleanup(s.Stop)

	args := []string{"agent", "-dev", "-config", filepath.Join(dir, "agent.hcl")}
	if err := os.WriteFile(args[3], []byte(s.agentHCL()), 0o600); err != nil {
		return s, fmt.Errorf("write config: %w", err)
	}
	if cfg.ExtraHCL != "" {
		extra := filepath.Join(dir, "extra.hcl")
		if err := os.WriteFile(extra, []byte(cfg.ExtraHCL), 0o600); err != nil {
			return s, fmt.Errorf("write config: %w", err)
		}
		args = append(args, "-config", extra)
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return s, fmt.Errorf("create log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor

	s.cmd = exec.Command(cfg.Binary, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout = logf
	s.cmd.Stderr = logf
	s.cmd.Env = agentEnv()
	// Its own process group, so a Ctrl-C at the terminal reaches the test
	// binary (which then stops the agent in Cleanup) and not the agent first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		close(s.exited)
		return s, fmt.Errorf("exec %s: %w", cfg.Binary, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		return s, err
	}
	tb.Logf("nomadtest: agent %d ready at %s in %s (log %s)", s.cmd.Process.Pid, s.Addr, time.Since(began).Round(time.Millisecond), s.LogPath)
	return s, nil
}

// agentHCL is the agent configuration. -dev supplies the rest: a single
// server that bootstraps itself, a client with the raw_exec driver enabled
// and in-memory-sized timeouts.
func (s *Server) agentHCL() string {
	return fmt.Sprintf(`# Written by scheduler/nomadtest.
name                 = "nomadtest-%[1]d"
data_dir             = %[2]s
bind_addr            = "127.0.0.1"
log_level            = %[3]s
disable_update_check = true

ports {
  http = %[1]d
  rpc  = %[4]d
  serf = %[5]d
}

acl {
  enabled = true
}

client {
  options = {
    "fingerprint.denylist" = %[6]s
  }
%[7]s}
`, s.HTTPPort, strconv.Quote(filepath.Join(s.Dir, "data")), strconv.Quote(s.cfg.LogLevel),
		s.RPCPort, s.SerfPort, strconv.Quote(strings.Join(DeniedFingerprinters, ",")),
		chrootHCL(s.cfg.ChrootEnv))
}

// chrootHCL renders a client chroot_env block, or nothing for nil.
func chrootHCL(env map[string]string) string {
	if env == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("  chroot_env {\n")
	for _, src := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "    %s = %s\n", strconv.Quote(src), strconv.Quote(env[src]))
	}
	b.WriteString("  }\n")
	return b.String()
}

// agentEnv is this process's environment without AWS_CA_BUNDLE (see the
// package documentation).
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_CA_BUNDLE=") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady waits for a leader, bootstraps ACLs and waits for a ready client
// node with the configured drivers healthy.
func (s *Server) waitReady(ctx context.Context) error {
	anon, err := s.newClient("")
	if err != nil {
		return err
	}
	defer anon.Close()

	// 1. The HTTP API answers and a leader is elected. Status endpoints need
	// no token.
	err = s.poll(ctx, "leader", func() error {
		leader, err := anon.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
	if err != nil {
		return err
	}

	// 2. Bootstrap ACLs with a secret chosen here, so a retry after a lost
	// response still knows the token.
	secret := newUUID()
	err = s.poll(ctx, "ACL bootstrap", func() error {
		_, _, err := anon.ACLTokens().BootstrapOpts(secret, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil && strings.Contains(err.Error(), "ACL bootstrap already done") {
			// Ours, if the secret works.
			c, cerr := s.newClient(secret)
			if cerr != nil {
				return cerr
			}
			defer c.Close()
			_, _, err = c.ACLTokens().Self((&api.QueryOptions{}).WithContext(ctx))
		}
		return err
	})
	if err != nil {
		return err
	}
	s.ManagementToken = secret
	if s.Client, err = s.newClient(secret); err != nil {
		return err
	}

	// 3. The client node is registered, ready and eligible, and its drivers
	// are fingerprinted healthy. Node registration needs the keyring, so
	// this also means the keyring is initialised.
	return s.poll(ctx, "ready client node", func() error {
		nodes, _, err := s.Client.Nodes().List((&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return err
		}
		if len(nodes) == 0 {
			return errors.New("no client node registered")
		}
		n := nodes[0]
		if n.Status != api.NodeStatusReady || n.SchedulingEligibility != api.NodeSchedulingEligible {
			return fmt.Errorf("node %s is %s, %s", n.Name, n.Status, n.SchedulingEligibility)
		}
		for _, d := range s.cfg.Drivers {
			info := n.Drivers[d]
			if info == nil || !info.Detected || !info.Healthy {
				desc := "not detected"
				if info != nil {
					desc = fmt.Sprintf("detected=%t healthy=%t: %s", info.Detected, info.Healthy, info.HealthDescription)
				}
				return fmt.Errorf("driver %s on node %s: %s", d, n.Name, desc)
			}
		}
		return nil
	})
}

// poll calls f every 250ms until it returns nil, ctx ends or the agent
// exits; the error then names what was awaited and f's last error.
func (s *Server) poll(ctx context.Context, what string, f func() error) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-s.exited:
			return fmt.Errorf("wait for %s: agent exited: %v (last error: %v)", what, s.cmd.ProcessState, last)
		case <-tick.C:
		}
	}
}

// NewClient returns an API client for the agent that authenticates with
// token ("" for anonymous requests). The caller should Close it.
func (s *Server) NewClient(token string) *api.Client {
	s.tb.Helper()
	c, err := s.newClient(token)
	if err != nil {
		s.tb.Fatalf("nomadtest: %v", err)
	}
	return c
}

func (s *Server) newClient(token string) (*api.Client, error) {
	// Built from scratch rather than api.DefaultConfig, which reads
	// NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, ... from the environment.
	c, err := api.NewClient(&api.Config{Address: s.Addr, SecretID: token})
	if err != nil {
		return nil, fmt.Errorf("nomad api client: %w", err)
	}
	return c, nil
}

// Stop stops the agent: SIGINT, then after StopTimeout SIGKILL to it and to
// every process it started. Then it removes what the agent leaves behind
// after a hard kill (mounts under Dir, task cgroups) and Dir itself. Safe to
// call more than once; NewTestServer registers it with tb.Cleanup.
func (s *Server) Stop() {
	s.once.Do(s.stop)
}

func (s *Server) stop() {
	tb := s.tb
	if tb.Failed() {
		tb.Logf("nomadtest: agent log %s (tail):\n%s", s.LogPath, s.logTail(60))
	}
	var allocIDs []string
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			began := time.Now()
			allocIDs = s.allocIDs()
			s.kill()
			tb.Logf("nomadtest: agent %d stopped in %s", s.cmd.Process.Pid, time.Since(began).Round(time.Millisecond))
		}
	}
	if s.Client != nil {
		s.Client.Close()
	}
	for _, err := range cleanupHost(s.Dir, allocIDs) {
		tb.Errorf("nomadtest: clean up after agent: %v", err)
	}
	if s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			tb.Errorf("nomadtest: remove %s: %v", s.Dir, err)
		}
	}
}

// allocIDs lists the agent's allocations, whose cgroups a hard kill would
// leave behind.
func (s *Server) allocIDs() []string {
	if s.Client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stubs, _, err := s.Client.Allocations().List((&api.QueryOptions{Namespace: "*"}).WithContext(ctx))
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(stubs))
	for _, a := range stubs {
		ids = append(ids, a.ID)
	}
	return ids
}

// kill stops the agent process it started, and the executors and tasks the
// agent started (they run in their own sessions and survive the agent).
func (s *Server) kill() {
	tb := s.tb
	pid := s.cmd.Process.Pid
	before := descendants(pid)

	// A dev agent stops its allocations on SIGINT before it exits.
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(s.cfg.StopTimeout):
		tb.Logf("nomadtest: agent %d did not exit %s after SIGINT; sending SIGKILL", pid, s.cfg.StopTimeout)
		before = append(before, descendants(pid)...)
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			tb.Errorf("nomadtest: agent %d still running 10s after SIGKILL", pid)
		}
	}
	// Anything the agent started and left running is ours to end.
	for _, p := range before {
		p.kill()
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range before {
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p.alive() {
			tb.Errorf("nomadtest: process %d started by the agent survived SIGKILL", p.pid)
		}
	}
}

// logContains reports whether the agent's log contains s.
func (s *Server) logContains(sub string) bool {
	b, err := os.ReadFile(s.LogPath)
	return err == nil && bytes.Contains(b, []byte(sub))
}

// LogTail returns the last n lines of the agent's log.
func (s *Server) LogTail(n int) string { return s.logTail(n) }

func (s *Server) logTail(n int) string {
	f, err := os.Open(s.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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

// freePorts returns n distinct loopback ports that are free for both TCP and
// UDP (Serf gossips over both) at the time of the call.
func freePorts(n int) ([]int, error) {
	var ports []int
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 50 {
			return nil, errors.New("no free loopback ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // TCP free but UDP taken: keep the TCP one held, try another
		}
		closers = append(closers, u.Close)
		ports = append(ports, port)
	}
	return ports, nil
}

// newUUID returns a random (version 4) UUID, the form Nomad requires for a
// bootstrap secret.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
