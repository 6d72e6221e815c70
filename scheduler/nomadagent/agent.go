// Package nomadagent starts and stops a real Nomad agent in dev mode
// (`nomad agent -dev`: one server and one client in one process) on free
// loopback ports, with ACLs enabled and bootstrapped, in a temporary
// directory that Stop removes. `spice dev` runs one as its demo
// contributor's machine; scheduler/nomadtest wraps it for tests. It follows
// the fork/exec model of Nomad's own api/internal/testutil.
//
// The agent binary is the one `make tools` builds from deploy/nomad (Nomad
// v1.11.3).
//
// What Start changes from Nomad's -dev defaults, and why:
//
//   - The agent runs with AWS_CA_BUNDLE unset, and the cloud fingerprinters
//     (env_aws, env_gce, env_azure, env_digitalocean) are denied. With both
//     AWS_CA_BUNDLE set and env_aws enabled, the agent exits at start-up
//     with "failed to setup IMDS client: unable to add custom RootCAs
//     HTTPClient, has no WithTransportOptions".
//   - The raw_exec driver is disabled: -dev enables it, and it runs tasks
//     unisolated on the host. SpiceRoute never runs renters' tasks with it.
//   - The exec driver's chroot is LeanChrootEnv unless Config says
//     otherwise: Nomad's default takes ~25s to build per task.
//
// Stop ends the agent (SIGINT, then SIGKILL after Config.StopTimeout), ends
// the executors and tasks it started (they run in their own sessions and
// would outlive it), removes the mounts and cgroups a hard kill leaves
// behind and the temporary directory.
package nomadagent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
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
	"time"

	"github.com/hashicorp/nomad/api"
)

// BinEnv names the environment variable that tells tests and `spice dev`
// where the nomad binary is. Only mains and tests read it: Start runs
// Config.Binary.
const BinEnv = "SPICE_NOMAD_BIN"

// DeniedFingerprinters are the client fingerprinters the agent runs without.
// They probe cloud metadata services that do not exist here and, with
// AWS_CA_BUNDLE set, env_aws aborts the agent's start.
var DeniedFingerprinters = []string{"env_aws", "env_gce", "env_azure", "env_digitalocean"}

// Config configures an agent. Start from DefaultConfig: in the zero value,
// nil Drivers and ChrootEnv mean "wait for no driver" and "Nomad's default
// chroot".
type Config struct {
	// Binary is the nomad executable: a path, or a name looked up in PATH.
	// Required.
	Binary string
	// Name is the agent's name, which its client node takes too. Default:
	// nomad-dev-<HTTP port>.
	Name string
	// LogLevel is the agent's log_level (TRACE, DEBUG, INFO, WARN, ERROR).
	// Default: INFO.
	LogLevel string
	// NodePool is the client node's node pool; empty leaves Nomad's
	// "default". Nomad creates the pool when the node registers.
	NodePool string
	// Meta is the client node's metadata, e.g. the contributor account
	// SpiceRoute pays for the work done on it.
	Meta map[string]string
	// ExtraHCL is written to a second configuration file passed after the
	// one Start writes, so its blocks merge with and override it.
	ExtraHCL string
	// Drivers are the task drivers that must be detected and healthy on the
	// client node before Start returns.
	Drivers []string
	// ChrootEnv is the client's chroot_env: the host paths the exec driver
	// links into each task's chroot. nil keeps Nomad's default, all of /usr
	// among others. ExtraHCL can add entries (Nomad merges the maps).
	ChrootEnv map[string]string
	// StartTimeout bounds the wait for a leader, ACL bootstrap and a ready
	// client node (default 90s).
	StartTimeout time.Duration
	// StopTimeout is how long the agent gets to exit after SIGINT before it
	// and its descendants are sent SIGKILL (default 30s).
	StopTimeout time.Duration
	// ServerOnly runs a server without a client (`nomad agent -server`
	// rather than -dev): the hub's cluster, whose clients are contributors'
	// machines joining through their agents. Such a server refuses clients
	// that bring no introduction token (client_introduction enforcement
	// "strict"), and Start waits for no client node.
	ServerOnly bool
	// Logger receives the agent's lifecycle events (started, retried,
	// stopped). Default: slog.Default(). The agent's own output goes to
	// Agent.LogPath.
	Logger *slog.Logger
}

// DefaultConfig is an agent whose client is ready to run exec tasks in a
// lean chroot; set Binary.
func DefaultConfig() Config {
	return Config{
		LogLevel:     "INFO",
		Drivers:      []string{"exec"},
		ChrootEnv:    LeanChrootEnv(),
		StartTimeout: 90 * time.Second,
		StopTimeout:  30 * time.Second,
	}
}

// LeanChrootEnv is a chroot with a shell, the core utilities and the C
// library, enough for small exec jobs. Nomad's default chroot hard-links all
// of /usr (and a second copy of /usr/lib through the /lib symlink), about
// 225,000 files on a developer machine: building it takes ~25s per task and
// removing it ~20s when the allocation is collected.
func LeanChrootEnv() map[string]string {
	env := map[string]string{}
	for _, p := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/lib64"} {
		env[p] = p
	}
	// Only the public parts of /etc: never the machine's secrets
	// (/etc/shadow, SSH host keys, ...), which a renter's task could read.
	for _, p := range chrootEtc {
		if _, err := os.Stat(p); err == nil {
			env[p] = p
		}
	}
	// Multiarch library directories: /lib/x86_64-linux-gnu, /lib/aarch64-linux-gnu, ...
	dirs, _ := filepath.Glob("/lib/*-linux-gnu*")
	for _, p := range dirs {
		env[p] = p
	}
	return env
}

// chrootEtc is what of /etc a renter's task sees: name resolution, users
// and groups (no passwords), the dynamic linker's cache, CA certificates.
var chrootEtc = []string{"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf",
	"/etc/host.conf", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl/certs", "/etc/ca-certificates",
	"/etc/localtime", "/etc/timezone"}

// Agent is a running `nomad agent -dev`. Its exported fields are set by
// Start and must not be changed.
type Agent struct {
	// Addr is the agent's HTTP API (and UI) address, http://127.0.0.1:<port>.
	Addr string
	// ManagementToken is the secret ID of the ACL bootstrap (management)
	// token: whoever holds it controls the cluster.
	ManagementToken string
	// Client is a Nomad API client for Addr that authenticates with
	// ManagementToken. It ignores NOMAD_* environment variables.
	Client *api.Client
	// LogPath is the agent's combined stdout and stderr.
	LogPath string
	// Dir is the temporary directory holding the configuration, the log and
	// the agent's data_dir; Stop removes it.
	Dir string
	// HTTPPort, RPCPort and SerfPort are the agent's ports on 127.0.0.1.
	HTTPPort, RPCPort, SerfPort int

	cfg     Config
	log     *slog.Logger
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	once    sync.Once
	stopErr error
}

// portAttempts is how many times Start tries new ports when the agent finds
// one taken.
const portAttempts = 3

// logTailLines is how much of the agent's log a start-up error carries.
const logTailLines = 60

// Start starts a Nomad dev agent and returns once it has a leader, ACLs are
// bootstrapped and its client node is ready with cfg.Drivers healthy. On
// failure nothing is left running or on disk, and the error carries the end
// of the agent's log. ctx bounds the start only: the agent runs until Stop.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Binary == "" {
		return nil, errors.New("nomadagent: no nomad binary configured")
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("nomadagent: nomad binary: %w (run `make tools` to build bin/nomad)", err)
	}
	// The agent runs in its own directory: a relative path would be
	// resolved from there.
	if cfg.Binary, err = filepath.Abs(bin); err != nil {
		return nil, fmt.Errorf("nomadagent: nomad binary: %w", err)
	}
	if slices.Contains(cfg.Drivers, "exec") && os.Geteuid() != 0 {
		return nil, errors.New("nomadagent: the exec driver runs tasks only as root (Nomad isolates them with chroots and cgroups)")
	}
	def := DefaultConfig()
	if cfg.LogLevel == "" {
		cfg.LogLevel = def.LogLevel
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = def.StartTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = def.StopTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}

	// Ports are picked free and then handed to the agent, so another process
	// can take one in between; retry with new ports when that happens.
	for i := 1; ; i++ {
		a, err := start(ctx, cfg)
		if err == nil {
			return a, nil
		}
		if a == nil {
			return nil, fmt.Errorf("nomadagent: %w", err)
		}
		portClash := a.logContains("address already in use")
		tail := a.LogTail(logTailLines)
		if serr := a.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		if portClash && i < portAttempts && ctx.Err() == nil {
			cfg.Logger.Warn("nomadagent: port clash, retrying with new ports", "err", err)
			continue
		}
		return nil, fmt.Errorf("nomadagent: start nomad agent: %w\n--- agent log (tail) ---\n%s", err, tail)
	}
}

// start launches one agent and waits for it. It returns the Agent (to be
// stopped by the caller) together with any error, or a nil Agent when
// nothing was created.
func start(ctx context.Context, cfg Config) (*Agent, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nomadagent-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	a := &Agent{
		Addr:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		LogPath:  filepath.Join(dir, "agent.log"),
		Dir:      dir,
		HTTPPort: ports[0],
		RPCPort:  ports[1],
		SerfPort: ports[2],
		cfg:      cfg,
		log:      cfg.Logger,
		exited:   make(chan struct{}),
	}
	if a.cfg.Name == "" {
		a.cfg.Name = fmt.Sprintf("nomad-dev-%d", a.HTTPPort)
	}

	conf := filepath.Join(dir, "agent.hcl")
	args := []string{"agent", "-dev", "-config", conf}
	if cfg.ServerOnly {
		args = []string{"agent", "-config", conf}
	}
	if err := os.WriteFile(conf, []byte(a.agentHCL()), 0o600); err != nil {
		close(a.exited)
		return a, fmt.Errorf("write config: %w", err)
	}
	if cfg.ExtraHCL != "" {
		extra := filepath.Join(dir, "extra.hcl")
		if err := os.WriteFile(extra, []byte(cfg.ExtraHCL), 0o600); err != nil {
			close(a.exited)
			return a, fmt.Errorf("write config: %w", err)
		}
		args = append(args, "-config", extra)
	}
	logf, err := os.Create(a.LogPath)
	if err != nil {
		close(a.exited)
		return a, fmt.Errorf("create log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor

	a.cmd = exec.Command(cfg.Binary, args...)
	a.cmd.Dir = dir
	a.cmd.Stdout = logf
	a.cmd.Stderr = logf
	a.cmd.Env = agentEnv()
	// Its own process group, so a Ctrl-C at the terminal reaches only the
	// process that started it, which then stops it with Stop (its tasks
	// first), rather than killing the agent under its running tasks.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		a.cmd = nil
		close(a.exited)
		return a, fmt.Errorf("exec %s: %w", cfg.Binary, err)
	}
	go func() {
		_ = a.cmd.Wait()
		close(a.exited)
	}()

	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := a.waitReady(ctx); err != nil {
		return a, err
	}
	a.log.Info("nomad agent ready", "pid", a.PID(), "addr", a.Addr,
		"in", time.Since(began).Round(time.Millisecond), "log", a.LogPath)
	return a, nil
}

// agentHCL is the agent configuration. -dev supplies the rest: a single
// server that bootstraps itself, a client, and in-memory-sized timeouts.
func (a *Agent) agentHCL() string {
	var client strings.Builder
	if a.cfg.NodePool != "" {
		fmt.Fprintf(&client, "  node_pool = %s\n", strconv.Quote(a.cfg.NodePool))
	}
	fmt.Fprintf(&client, "  options = {\n    \"fingerprint.denylist\" = %s\n  }\n",
		strconv.Quote(strings.Join(DeniedFingerprinters, ",")))
	client.WriteString(mapBlock("meta", a.cfg.Meta))
	client.WriteString(mapBlock("chroot_env", a.cfg.ChrootEnv))

	return fmt.Sprintf(`# Written by scheduler/nomadagent.
name                 = %[1]s
data_dir             = %[2]s
bind_addr            = "127.0.0.1"
log_level            = %[3]s
disable_update_check = true

ports {
  http = %[4]d
  rpc  = %[5]d
  serf = %[6]d
}

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

acl {
  enabled = true
}
%[7]s
# -dev enables raw_exec (client option driver.raw_exec.enable); a plugin
# block's config replaces that option's.
plugin "raw_exec" {
  config {
    enabled = false
  }
}
`, strconv.Quote(a.cfg.Name), strconv.Quote(filepath.Join(a.Dir, "data")), strconv.Quote(a.cfg.LogLevel),
		a.HTTPPort, a.RPCPort, a.SerfPort, a.roleHCL(client.String()))
}

// roleHCL is the client block of a dev agent, or the server block of a
// server-only one.
func (a *Agent) roleHCL(client string) string {
	if !a.cfg.ServerOnly {
		return "\nclient {\n" + client + "}\n"
	}
	return `
server {
  enabled          = true
  bootstrap_expect = 1
  # Contributors' machines join with a Nomad client introduction token
  # (nomad node intro create) that the hub issues at enrolment.
  client_introduction {
    enforcement = "strict"
  }
}
`
}

// mapBlock renders a client block of string pairs (meta, chroot_env), or
// nothing for nil.
func mapBlock(name string, m map[string]string) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s {\n", name)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "    %s = %s\n", strconv.Quote(k), strconv.Quote(m[k]))
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
func (a *Agent) waitReady(ctx context.Context) error {
	anon, err := a.NewClient("")
	if err != nil {
		return err
	}
	defer anon.Close()

	// 1. The HTTP API answers and a leader is elected. Status endpoints need
	// no token.
	err = a.poll(ctx, "leader", func() error {
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
	err = a.poll(ctx, "ACL bootstrap", func() error {
		_, _, err := anon.ACLTokens().BootstrapOpts(secret, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil && strings.Contains(err.Error(), "ACL bootstrap already done") {
			// Ours, if the secret works.
			c, cerr := a.NewClient(secret)
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
	a.ManagementToken = secret
	if a.Client, err = a.NewClient(secret); err != nil {
		return err
	}

	if a.cfg.ServerOnly {
		// The keyring signs introduction tokens: wait until it has a key.
		return a.poll(ctx, "keyring", func() error {
			keys, _, err := a.Client.Keyring().List((&api.QueryOptions{}).WithContext(ctx))
			if err == nil && len(keys) == 0 {
				err = errors.New("no root key yet")
			}
			return err
		})
	}
	// 3. The client node is registered, ready and eligible, and its drivers
	// are fingerprinted healthy. Node registration needs the keyring, so
	// this also means the keyring is initialised.
	return a.poll(ctx, "ready client node", func() error {
		nodes, _, err := a.Client.Nodes().List((&api.QueryOptions{}).WithContext(ctx))
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
		for _, d := range a.cfg.Drivers {
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
func (a *Agent) poll(ctx context.Context, what string, f func() error) error {
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
		case <-a.exited:
			return fmt.Errorf("wait for %s: agent exited: %v (last error: %v)", what, a.cmd.ProcessState, last)
		case <-tick.C:
		}
	}
}

// NewClient returns an API client for the agent that authenticates with
// token ("" for anonymous requests). The caller should Close it.
func (a *Agent) NewClient(token string) (*api.Client, error) {
	// Built from scratch rather than api.DefaultConfig, which reads
	// NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, ... from the environment.
	c, err := api.NewClient(&api.Config{Address: a.Addr, SecretID: token})
	if err != nil {
		return nil, fmt.Errorf("nomadagent: api client: %w", err)
	}
	return c, nil
}

// PID is the agent process's ID (0 if it never started).
func (a *Agent) PID() int {
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Done is closed when the agent process has exited, whether by Stop or not.
func (a *Agent) Done() <-chan struct{} { return a.exited }

// Stop stops the agent: SIGINT, then after StopTimeout SIGKILL to it and to
// every process it started. Then it removes what the agent leaves behind
// after a hard kill (mounts under Dir, task cgroups) and Dir itself. It is
// safe to call more than once; later calls return the first call's result.
func (a *Agent) Stop() error {
	a.once.Do(func() { a.stopErr = a.stop() })
	return a.stopErr
}

func (a *Agent) stop() error {
	var errs []error
	var allocIDs []string
	if a.cmd != nil {
		select {
		case <-a.exited:
		default:
			began := time.Now()
			allocIDs = a.allocIDs()
			errs = append(errs, a.kill()...)
			a.log.Info("nomad agent stopped", "pid", a.PID(), "in", time.Since(began).Round(time.Millisecond))
		}
	}
	if a.Client != nil {
		a.Client.Close()
	}
	for _, err := range cleanupHost(a.Dir, allocIDs) {
		errs = append(errs, fmt.Errorf("clean up after agent: %w", err))
	}
	if a.Dir != "" {
		if err := os.RemoveAll(a.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove agent dir: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nomadagent: stop: %w", err)
	}
	return nil
}

// allocIDs lists the agent's allocations, whose cgroups a hard kill would
// leave behind.
func (a *Agent) allocIDs() []string {
	if a.Client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stubs, _, err := a.Client.Allocations().List((&api.QueryOptions{Namespace: "*"}).WithContext(ctx))
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(stubs))
	for _, s := range stubs {
		ids = append(ids, s.ID)
	}
	return ids
}

// kill stops the agent process, and the executors and tasks the agent
// started (they run in their own sessions and survive the agent).
func (a *Agent) kill() []error {
	var errs []error
	pid := a.PID()
	before := descendants(pid)

	// A dev agent stops its allocations on SIGINT before it exits.
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.exited:
	case <-time.After(a.cfg.StopTimeout):
		a.log.Warn("nomad agent did not exit after SIGINT; sending SIGKILL", "pid", pid, "after", a.cfg.StopTimeout)
		before = append(before, descendants(pid)...)
		_ = a.cmd.Process.Kill()
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("agent %d still running 10s after SIGKILL", pid))
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
			errs = append(errs, fmt.Errorf("process %d started by the agent survived SIGKILL", p.pid))
		}
	}
	return errs
}

// logContains reports whether the agent's log contains sub.
func (a *Agent) logContains(sub string) bool {
	b, err := os.ReadFile(a.LogPath)
	return err == nil && bytes.Contains(b, []byte(sub))
}

// LogTail returns the last n lines of the agent's log (gone after Stop).
func (a *Agent) LogTail(n int) string {
	f, err := os.Open(a.LogPath)
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
