package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func show(t *testing.T, conn *pgx.Conn, setting string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", setting, err)
	}
	return v
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExtraSettings = map[string]string{"work_mem": "8MB", "application_name": "it's quoted"}
	c := startCluster(t, cfg)
	ctx := context.Background()

	wantURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app?sslmode=disable", c.Port())
	if got := c.URL("app"); got != wantURL {
		t.Errorf("URL = %q, want %q", got, wantURL)
	}
	if !isExecutable(filepath.Join(c.BinDir(), "initdb")) {
		t.Errorf("BinDir %q has no initdb", c.BinDir())
	}

	conn := connect(t, c.URL("postgres"))
	for setting, want := range map[string]string{
		"fsync":            "on",
		"listen_addresses": "127.0.0.1",
		"max_connections":  "200",
		"work_mem":         "8MB",
		"application_name": "it's quoted",
		"TimeZone":         "UTC",
	} {
		if got := show(t, conn, setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}

	// CreateDatabase from the default template and from a named one.
	if err := c.CreateDatabase(ctx, "tmpl", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase(ctx, "tmpl", ""); !errors.Is(err, ErrDatabaseExists) {
		t.Fatalf("creating tmpl again: %v, want ErrDatabaseExists", err)
	}
	if err := c.CreateDatabase(ctx, "x", "no_such_template"); err == nil || errors.Is(err, ErrDatabaseExists) {
		t.Fatalf("creating from a missing template: %v, want another error", err)
	}
	tmpl := connect(t, c.URL("tmpl"))
	if _, err := tmpl.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	tmpl.Close(ctx) // CREATE DATABASE ... TEMPLATE needs the template idle
	if err := c.CreateDatabase(ctx, "Copy-1", "tmpl"); err != nil {
		t.Fatal(err)
	}
	cp := connect(t, c.URL("Copy-1"))
	var x int
	if err := cp.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Fatalf("copy of template: x = %d, err = %v", x, err)
	}
	if err := c.CreateDatabase(ctx, "tmpl", ""); err == nil {
		t.Error("CreateDatabase of an existing database succeeded")
	}

	// DropDatabase terminates cp's session, and is idempotent.
	for range 2 {
		if err := c.DropDatabase(ctx, "Copy-1"); err != nil {
			t.Fatalf("DropDatabase: %v", err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'Copy-1'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after drop: count = %d, err = %v", n, err)
	}

	dataDir, pid := c.DataDir(), c.pid
	if !c.postmasterAlive() {
		t.Fatalf("postmaster %d not running", pid)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c.postmasterAlive() {
		t.Errorf("postmaster %d still running after Stop", pid)
	}
	if _, err := os.Stat(filepath.Dir(dataDir)); !os.IsNotExist(err) {
		t.Errorf("temporary dir %s not removed: %v", filepath.Dir(dataDir), err)
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		t.Error("connected after Stop")
	}
}

func TestStartWithoutInitdb(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BinDir = t.TempDir()
	_, err := Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("Start with a BinDir without initdb: err = %v, want one naming apt-get install postgresql", err)
	}
}

func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExtraSettings = map[string]string{"shared_buffers": "lots"}
	_, err := Start(context.Background(), cfg)
	if err == nil {
		t.Fatal("Start with shared_buffers=lots succeeded")
	}
	t.Logf("error (expected):\n%v", err)
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Errorf("error lacks the server log's reason")
	}
	m := regexp.MustCompile(`--- end of (\S+)/data/postgres\.log ---`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatal("error lacks the log path")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temporary dir %s left behind: %v", m[1], err)
	}
}

func TestStartRejectsPortSetting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExtraSettings = map[string]string{"port": "5432"}
	if _, err := Start(context.Background(), cfg); err == nil {
		t.Fatal("Start with ExtraSettings[port] succeeded")
	}
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := DefaultConfig()
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), cfg)
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("Start on a taken port: err = %v, want errPortInUse", err)
	}
}

// A given DataDir survives Stop and is started again, data intact.
func TestReuseDataDir(t *testing.T) {
	parent, err := os.MkdirTemp("", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil { // reachable by the server's user when root
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(parent, "pgdata")
	ctx := context.Background()

	c1 := startCluster(t, cfg)
	if _, err := connect(t, c1.URL("postgres")).Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	if err := c1.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("given DataDir removed by Stop: %v", err)
	}

	c2 := startCluster(t, cfg)
	var x int
	if err := connect(t, c2.URL("postgres")).QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 7 {
		t.Fatalf("after restart: x = %d, err = %v", x, err)
	}
}

// The watchdog stops the cluster and removes its directory when the process
// that started it dies without calling Stop. The helper process below is
// that process; this test SIGKILLs it.
func TestWatchdogCleansUpAfterCrash(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartAndHang$")
	cmd.Env = append(os.Environ(), "PGCLUSTER_HELPER=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	var dataDir string
	var pid int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "READY %s %d", &dataDir, &pid); err == nil {
			break
		}
	}
	if pid == 0 {
		t.Fatal("helper did not start a cluster")
	}
	c := &Cluster{dataDir: dataDir, pid: pid}
	if !c.postmasterAlive() {
		t.Fatalf("postmaster %d not running", pid)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, "postmaster to exit", time.Minute, func() bool { return !c.postmasterAlive() })
	waitFor(t, "data dir removal", time.Minute, func() bool {
		_, err := os.Stat(filepath.Dir(dataDir))
		return os.IsNotExist(err)
	})
}

func TestHelperStartAndHang(t *testing.T) {
	if os.Getenv("PGCLUSTER_HELPER") != "1" {
		t.Skip("helper process for TestWatchdogCleansUpAfterCrash")
	}
	c, err := Start(context.Background(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s %d\n", c.DataDir(), c.pid)
	time.Sleep(time.Minute) // until SIGKILLed; Stop deliberately never called
	os.Exit(1)
}

func TestPGBench(t *testing.T) {
	c := startCluster(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, "bench", ""); err != nil {
		t.Fatal(err)
	}
	tps, out, err := c.PGBench(ctx, "bench", 1, 4, 2, 3*time.Second)
	if err != nil {
		t.Fatalf("PGBench: %v\n%s", err, out)
	}
	t.Logf("tps = %.1f\n%s", tps, out)
	if tps <= 0 {
		t.Errorf("tps = %v, want > 0", tps)
	}
}

// Captured from TestPGBench: pgbench 15.18, scale 1, 4 clients, 2 threads, 3 s, fsync on.
const pgbench15Output = `pgbench (15.18 (Debian 15.18-0+deb12u1))
starting vacuum...end.
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 6272
number of failed transactions: 0 (0.000%)
latency average = 1.907 ms
initial connection time = 42.332 ms
tps = 2097.132125 (without initial connection time)
`

// pgbench 13 prints both figures, including connections first.
const pgbench13Output = `transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 2
duration: 3 s
number of transactions actually processed: 3000
latency average = 4.000 ms
tps = 999.500000 (including connections establishing)
tps = 1001.250000 (excluding connections establishing)
`

func TestParseTPS(t *testing.T) {
	for _, tt := range []struct {
		name    string
		output  string
		want    float64
		wantErr bool
	}{
		{name: "PostgreSQL15", output: pgbench15Output, want: 2097.132125},
		{name: "PostgreSQL13", output: pgbench13Output, want: 1001.25},
		{name: "NoTPSLine", output: "pgbench: error: connection to server failed\n", wantErr: true},
		{name: "OnlyIncludingConnections", output: "tps = 5.0 (including connections establishing)\n", wantErr: true},
		{name: "BadNumber", output: "tps = x1 (without initial connection time)\n", wantErr: true},
		{name: "Negative", output: "tps = -1 (without initial connection time)\n", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTPS(tt.output)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseTPS: err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseTPS = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseTPS(f *testing.F) {
	f.Add(pgbench15Output)
	f.Add(pgbench13Output)
	f.Add("tps = NaN (without initial connection time)")
	f.Fuzz(func(t *testing.T, out string) {
		tps, err := parseTPS(out)
		if err == nil && (tps < 0 || math.IsNaN(tps)) {
			t.Fatalf("parseTPS(%q) = %v without error", out, tps)
		}
	})
}
