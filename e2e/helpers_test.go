// Package e2e runs SpiceRoute as real processes: the `spice` binary, a real
// PostgreSQL, real HTTP.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// spiceBin returns the spice binary: $SPICE_BIN (set by `make test`) or one
// built for this test run.
func spiceBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("SPICE_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "spice-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "spice")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/spiceroute/spiceroute").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// run runs the spice binary to completion and returns its stdout.
func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(spiceBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("spice %v: %w\nstderr: %s", args, err, errb.String())
	}
	return out.String(), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hubProc is a `spice hub` process that can be killed and restarted on the
// same address, database and key.
type hubProc struct {
	t    *testing.T
	args []string
	url  string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{}
}

// startHubProc starts `spice hub` on a free port with a fresh key; extra
// flags are appended to its command line.
func startHubProc(t *testing.T, name, dbURL string, extra ...string) *hubProc {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	spiceBin(t)
	logf, err := os.Create(filepath.Join(dir, "hub.log"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hubProc{
		t:   t,
		url: fmt.Sprintf("http://127.0.0.1:%d", port),
		log: logf,
		args: []string{"hub", "-name", name, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-database", dbURL,
			"-key", filepath.Join(dir, "hub.key"), "-rate", "1000000", "-burst", "1000000", "-log-level", "warn", "-checkpoint-interval", "200ms"},
	}
	h.args = append(h.args, extra...)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stop(syscall.SIGTERM)
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("hub log tail:\n%s", b)
		}
	})
	return h
}

// start starts the hub and waits until it answers. It may be called from
// any goroutine.
func (h *hubProc) start() error {
	h.cmd = exec.Command(binPath, h.args...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	if err := h.cmd.Start(); err != nil {
		return err
	}
	h.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(h.cmd, h.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(h.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-h.done:
			return fmt.Errorf("hub exited at start; see its log %s", h.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hub did not become healthy within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals the hub (SIGKILL for a crash) and waits for it to exit.
func (h *hubProc) stop(sig syscall.Signal) {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	h.cmd.Process.Signal(sig)
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
