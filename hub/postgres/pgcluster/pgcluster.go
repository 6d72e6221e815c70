// Package pgcluster runs an ephemeral PostgreSQL cluster from the system's
// server binaries (initdb, pg_ctl, postgres under /usr/lib/postgresql/*/bin on
// Debian), for `spice dev`, tests and benchmarks.
//
// A cluster listens on 127.0.0.1 only (TCP, no unix socket), on a free port
// unless one is given, with trust authentication for its superuser
// "postgres": anyone who can connect to 127.0.0.1 on the machine can use it,
// which is acceptable for throw-away data and nothing else.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the process is root, initdb, pg_ctl
// and postgres run as an unprivileged user instead: the owner of DataDir when
// it already holds a cluster owned by a non-root user, else the "postgres"
// user when it exists (Debian's server package creates it), else "nobody".
// The data directory is chowned to that user, so it and its parents must be
// reachable by it (the default, a directory under os.TempDir(), is).
//
// # Lifetime
//
// Start runs `pg_ctl start -w`, which returns once the server accepts
// connections; Stop runs `pg_ctl stop -m fast -w` (falling back to signalling
// the postmaster by its PID), then removes a temporary data directory.
//
// pg_ctl detaches the server into its own session, so it outlives the Go
// process unless stopped. To keep a crashed, killed (SIGKILL, `go test`
// timeout panic) or forgetful process from leaving it running, Start also
// launches a small watchdog (/bin/sh, in its own process group so terminal
// signals don't reach it) whose stdin is a pipe held open only by this
// process. When the process exits for any reason the kernel closes the pipe,
// and the watchdog stops this cluster (fast, then immediate shutdown) and
// removes its temporary data directory. Stop disarms the watchdog first. Only
// a SIGKILL of the watchdog itself, or of the whole machine, leaves a server
// behind; its data directory (spiceroute-pg-* under os.TempDir()) then shows
// where, and `pg_ctl stop -D <dir>/data` stops it.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the name of the cluster's superuser role (trust auth, no password).
const Superuser = "postgres"

// DefaultBinGlob is where Debian's postgresql-NN packages put the server binaries.
const DefaultBinGlob = "/usr/lib/postgresql/*/bin"

// Config configures a cluster. Start from DefaultConfig; the zero Config has
// fsync off.
type Config struct {
	// BinDir holds initdb, pg_ctl and postgres. Default: the newest
	// DefaultBinGlob directory containing initdb, else the directory of
	// initdb on PATH.
	BinDir string
	// DataDir is the cluster's data directory (PGDATA). Default: "data" in a
	// new temporary directory, removed by Stop. A given DataDir is never
	// removed; when it already holds a cluster (PG_VERSION), that cluster is
	// started instead of running initdb.
	DataDir string
	// Port is the TCP port on 127.0.0.1. Default: a free one, chosen again
	// if another process takes it before the server binds it.
	Port int
	// Fsync off also turns off synchronous_commit and full_page_writes:
	// faster, and a crash of the machine (not of postgres) loses data.
	Fsync bool
	// Logger receives the cluster's lifecycle events. Default: discarded.
	Logger *slog.Logger
	// ExtraSettings are postgresql.conf settings applied after (and over)
	// the defaults: listen_addresses=127.0.0.1, max_connections=200,
	// shared_buffers=128MB, TimeZone=UTC. "port" is refused: use Port.
	ExtraSettings map[string]string
}

// DefaultConfig returns the configuration for a temporary cluster with fsync
// on, so that benchmarks measure what production does.
func DefaultConfig() Config {
	return Config{Fsync: true}
}

// Cluster is a running PostgreSQL cluster started by Start. Its methods are
// safe for concurrent use.
type Cluster struct {
	binDir    string
	dataDir   string
	removeDir string // temporary directory to remove on Stop, or ""
	port      int
	pid       int // postmaster
	cred      *syscall.Credential
	log       *slog.Logger

	watchdog  *exec.Cmd
	watchdogW *os.File

	mu      sync.Mutex
	stopped bool
	stopErr error
}

const (
	logName      = "postgres.log"    // in the data directory
	settingsName = "spiceroute.conf" // in the data directory, included by postgresql.conf
	startTimeout = 60                // seconds, for pg_ctl -t
	stopTimeout  = 60                // seconds, for pg_ctl -t
	portAttempts = 5
)

// Start initialises (unless DataDir already holds a cluster) and starts a
// cluster, and returns once it accepts connections. On failure nothing is
// left running, and the error includes the end of the server log.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	start := time.Now()
	c := &Cluster{log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if _, ok := cfg.ExtraSettings["port"]; ok {
		return nil, errors.New("pgcluster: ExtraSettings must not set port: use Config.Port")
	}
	for k := range cfg.ExtraSettings {
		if !validSettingName(k) {
			return nil, fmt.Errorf("pgcluster: invalid setting name %q", k)
		}
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("pgcluster: invalid port %d", cfg.Port)
	}

	if c.binDir, err = findBinDir(cfg.BinDir); err != nil {
		return nil, err
	}

	// Clean up whatever this function set up if it fails.
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				c.log.Warn("pgcluster: cleanup after failed start", "err", stopErr)
			}
		}
	}()

	if cfg.DataDir == "" {
		if c.removeDir, err = os.MkdirTemp("", "spiceroute-pg-"); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		c.dataDir = filepath.Join(c.removeDir, "data")
	} else if c.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}

	initialized := fileExists(filepath.Join(c.dataDir, "PG_VERSION"))
	if os.Geteuid() == 0 {
		if c.cred, err = runAsCredential(c.dataDir, initialized); err != nil {
			return nil, err
		}
	}
	if !initialized {
		if err := c.initdb(ctx, cfg.Fsync && c.removeDir == ""); err != nil {
			return nil, err
		}
	}
	if err := c.includeSettings(); err != nil {
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		return nil, err
	}

	for attempt := 1; ; attempt++ {
		c.port = cfg.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, fmt.Errorf("pgcluster: %w", err)
			}
		}
		if err := c.writeSettings(cfg); err != nil {
			return nil, err
		}
		err = c.pgCtlStart(ctx)
		if err == nil {
			break
		}
		if cfg.Port != 0 || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			return nil, err
		}
		c.log.Debug("pgcluster: port taken, retrying", "port", c.port)
	}

	if c.pid, err = readPostmasterPID(c.dataDir); err != nil {
		return nil, err
	}
	c.log.Info("postgres started", "port", c.port, "data_dir", c.dataDir, "pid", c.pid,
		"bin_dir", c.binDir, "fsync", cfg.Fsync, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// URL returns a connection URL for database dbname as the superuser.
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// BinDir returns the directory of the PostgreSQL binaries in use.
func (c *Cluster) BinDir() string { return c.binDir }

// DataDir returns the cluster's data directory. The server log is postgres.log in it.
func (c *Cluster) DataDir() string { return c.dataDir }

// PID is the postmaster's process ID.
func (c *Cluster) PID() int { return c.pid }

// CreateDatabase creates database name as a copy of template, or of the
// default template (template1) when template is "". Creating from a template
// fails while other sessions are connected to the template.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if err := c.exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
			return fmt.Errorf("pgcluster: create database %s: %w", name, ErrDatabaseExists)
		}
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return nil
}

// ErrDatabaseExists is returned (wrapped) by CreateDatabase for a name in use.
var ErrDatabaseExists = errors.New("database already exists")

// DropDatabase drops database name if it exists, terminating the sessions
// still connected to it (DROP DATABASE ... WITH (FORCE)).
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	return nil
}

// exec runs sql on a new connection to the maintenance database "postgres".
func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown: sessions are terminated, the
// server checkpoints), waits for it to exit and removes the temporary data
// directory. It is safe to call more than once; later calls return the
// first call's result.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return c.stopErr
	}
	c.stopped = true

	var errs []error
	if c.pid != 0 {
		if err := c.stopServer(); err != nil {
			errs = append(errs, err)
		}
	} else if c.dataDir != "" && fileExists(filepath.Join(c.dataDir, "postmaster.pid")) {
		// Start failed after pg_ctl may have launched a server: stop it
		// (pg_ctl only acts if the PID file's process is alive).
		ctx, cancel := context.WithTimeout(context.Background(), (stopTimeout+5)*time.Second)
		out, err := c.command(ctx, filepath.Join(c.binDir, "pg_ctl"), "stop", "-D", c.dataDir,
			"-m", "immediate", "-w", "-t", strconv.Itoa(stopTimeout)).CombinedOutput()
		cancel()
		c.log.Debug("pgcluster: stop after failed start", "err", err, "output", string(out))
	}
	if err := c.disarmWatchdog(); err != nil {
		errs = append(errs, err)
	}
	if c.removeDir != "" {
		if err := os.RemoveAll(c.removeDir); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: remove data dir: %w", err))
		}
	}
	c.stopErr = errors.Join(errs...)
	if c.pid != 0 {
		c.log.Info("postgres stopped", "port", c.port, "pid", c.pid, "err", c.stopErr)
	}
	return c.stopErr
}

// stopServer runs pg_ctl stop -m fast, and signals the postmaster directly
// if that fails while it is still running.
func (c *Cluster) stopServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), (stopTimeout+5)*time.Second)
	defer cancel()
	out, err := c.command(ctx, filepath.Join(c.binDir, "pg_ctl"), "stop", "-D", c.dataDir,
		"-m", "fast", "-w", "-t", strconv.Itoa(stopTimeout)).CombinedOutput()
	if err == nil {
		return nil
	}
	stopErr := fmt.Errorf("pgcluster: pg_ctl stop: %w: %s%s", err, bytes.TrimSpace(out), c.logTail())
	if !c.postmasterAlive() {
		return stopErr
	}
	// PostgreSQL: SIGQUIT is immediate shutdown; SIGKILL as the last resort.
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGKILL} {
		_ = syscall.Kill(c.pid, sig)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if !c.postmasterAlive() {
				return fmt.Errorf("%w (stopped with %v)", stopErr, sig)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return fmt.Errorf("%w (postmaster %d still running after SIGKILL)", stopErr, c.pid)
}

// postmasterAlive reports whether c.pid is still this cluster's postmaster,
// not a process that reused the PID: pg_ctl starts it as `postgres -D <dir>`.
func (c *Cluster) postmasterAlive() bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.pid))
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(string(cmdline), "\x00"), c.dataDir)
}

// initdb creates the cluster in c.dataDir.
func (c *Cluster) initdb(ctx context.Context, sync bool) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := c.chown(c.dataDir); err != nil {
		return err
	}
	if c.removeDir != "" {
		// So that the server can reach its data dir, and the watchdog
		// (running as the same user) can remove the whole directory.
		if err := c.chown(c.removeDir); err != nil {
			return err
		}
	}
	args := []string{"-D", c.dataDir, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-instructions"}
	if !sync {
		// A temporary cluster does not survive a machine crash anyway.
		args = append(args, "--no-sync")
	}
	out, err := c.command(ctx, filepath.Join(c.binDir, "initdb"), args...).CombinedOutput()
	if err != nil {
		hint := ""
		if c.cred != nil {
			hint = fmt.Sprintf(" (running as uid %d: the data directory and its parents must be accessible to it)", c.cred.Uid)
		}
		return fmt.Errorf("pgcluster: initdb%s: %w: %s", hint, err, bytes.TrimSpace(out))
	}
	return nil
}

// includeSettings makes postgresql.conf include settingsName (once).
func (c *Cluster) includeSettings() error {
	const line = "include_if_exists = '" + settingsName + "'\n"
	path := filepath.Join(c.dataDir, "postgresql.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if bytes.Contains(conf, []byte(line)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	_, err = f.WriteString("\n# Written by spiceroute pgcluster.Start on every start.\n" + line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// writeSettings writes settingsName for this start.
func (c *Cluster) writeSettings(cfg Config) error {
	settings := map[string]string{
		"port":             strconv.Itoa(c.port),
		"listen_addresses": "127.0.0.1",
		// TCP only: no socket path length limits, no /var/run/postgresql.
		"unix_socket_directories": "",
		"max_connections":         "200",
		"shared_buffers":          "128MB",
		"TimeZone":                "UTC",
		"log_timezone":            "UTC",
		"log_line_prefix":         "%m [%p] %q%u@%d ",
		"logging_collector":       "off", // pg_ctl -l writes the log
		"fsync":                   "on",
	}
	if !cfg.Fsync {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range cfg.ExtraSettings {
		settings[k] = v
	}
	var b strings.Builder
	b.WriteString("# Written by spiceroute pgcluster.Start; rewritten on every start.\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		// postgresql.conf: a quoted value, with '' for a quote inside.
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	path := filepath.Join(c.dataDir, settingsName)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(path)
}

var errPortInUse = errors.New("port in use")

// pgCtlStart runs pg_ctl start -w. pg_ctl is not killed when ctx is done
// (it could leave a server starting without a PID file to find it by); it
// gives up by itself after startTimeout.
func (c *Cluster) pgCtlStart(ctx context.Context) error {
	out, err := c.command(context.WithoutCancel(ctx), filepath.Join(c.binDir, "pg_ctl"), "start", "-D", c.dataDir,
		"-l", filepath.Join(c.dataDir, logName), "-w", "-t", strconv.Itoa(startTimeout)).CombinedOutput()
	if err == nil {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pgcluster: start: %w", err)
		}
		return nil
	}
	tail := c.logTail()
	if strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("pgcluster: pg_ctl start on port %d: %w: %s%s", c.port, err, bytes.TrimSpace(out), tail)
}

// logTail returns the end of the server log, formatted to append to an error.
func (c *Cluster) logTail() string {
	const max = 4096
	f, err := os.Open(filepath.Join(c.dataDir, logName))
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	if len(b) == max {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	return "\n--- end of " + filepath.Join(c.dataDir, logName) + " ---\n" + string(b)
}

// command returns a command running as the cluster's user, with a clean
// environment (no PG* variables, English messages) and "/" as working
// directory (the unprivileged user may not reach the caller's).
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TZ=UTC"}
	cmd.Dir = "/"
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// watchdogScript stops the cluster and removes its temporary directory when
// stdin reaches EOF without a "disarm" line, i.e. when the Go process died.
// $1 pg_ctl, $2 data directory, $3 directory to remove or "".
const watchdogScript = `trap '' HUP INT
IFS= read -r line
[ "$line" = disarm ] && exit 0
"$1" stop -D "$2" -m fast -w -t 30 || "$1" stop -D "$2" -m immediate -w -t 30
[ -n "$3" ] && rm -rf -- "$3"
exit 0
`

func (c *Cluster) startWatchdog() error {
	r, w, err := os.Pipe() // close-on-exec: no other child inherits w
	if err != nil {
		return fmt.Errorf("pgcluster: watchdog: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgcluster-watchdog",
		filepath.Join(c.binDir, "pg_ctl"), c.dataDir, c.removeDir)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	cmd.Dir = "/"
	cmd.Stdin = r
	// Stdout and stderr stay /dev/null: holding the caller's (go test's)
	// output pipe would keep it waiting after the test binary exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("pgcluster: watchdog: %w", err)
	}
	c.watchdog, c.watchdogW = cmd, w
	return nil
}

func (c *Cluster) disarmWatchdog() error {
	if c.watchdog == nil {
		return nil
	}
	_, err := c.watchdogW.WriteString("disarm\n")
	c.watchdogW.Close()
	if err != nil {
		// Not listening any more: it has already run (or was killed).
		_ = c.watchdog.Process.Kill()
	}
	if err := c.watchdog.Wait(); err != nil && !isKilled(err) {
		return fmt.Errorf("pgcluster: watchdog: %w", err)
	}
	return nil
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// findBinDir returns dir if given (checking it holds initdb), else the newest
// DefaultBinGlob directory with initdb, else the directory of initdb on PATH.
func findBinDir(dir string) (string, error) {
	const install = "install the PostgreSQL server: apt-get install postgresql-15 (or: apt-get install postgresql)"
	if dir != "" {
		if !isExecutable(filepath.Join(dir, "initdb")) {
			return "", fmt.Errorf("pgcluster: no initdb in BinDir %s: %s", dir, install)
		}
		return dir, nil
	}
	matches, _ := filepath.Glob(filepath.Join(DefaultBinGlob, "initdb"))
	best, bestVersion := "", -1.0
	for _, m := range matches {
		// /usr/lib/postgresql/<version>/bin/initdb
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(m))), 64)
		if err == nil && v > bestVersion && isExecutable(m) {
			best, bestVersion = filepath.Dir(m), v
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("pgcluster: no initdb in %s or on PATH: %s", DefaultBinGlob, install)
}

// runAsCredential returns the unprivileged user to run PostgreSQL as when
// this process is root: the owner of an existing non-root cluster, else
// "postgres", else "nobody".
func runAsCredential(dataDir string, initialized bool) (*syscall.Credential, error) {
	if initialized {
		if fi, err := os.Stat(dataDir); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				return &syscall.Credential{Uid: st.Uid, Gid: st.Gid, Groups: []uint32{}}, nil
			}
		}
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, errors.New("pgcluster: running as root and found neither a \"postgres\" nor a \"nobody\" user to run PostgreSQL as")
}

func readPostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pgcluster: bad postmaster.pid: %q", first)
	}
	return pid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func validSettingName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
