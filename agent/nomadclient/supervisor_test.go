package nomadclient

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The supervisor tests run this test binary as the supervised child, in
// one of these modes (env helperEnv):
//
//	crash      exit 3 at once
//	serve      start a grandchild in its own session (as Nomad starts an
//	           executor), write its PID to the file in helperPIDFile, and
//	           exit 0 on SIGINT, leaving the grandchild behind
//	stubborn   ignore SIGINT
const (
	helperEnv     = "NOMADCLIENT_TEST_HELPER"
	helperPIDFile = "NOMADCLIENT_TEST_PIDFILE"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		os.Exit(3)
	case "serve":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		gc := exec.Command("sleep", "300")
		gc.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := gc.Start(); err != nil {
			os.Exit(4)
		}
		_ = os.WriteFile(os.Getenv(helperPIDFile), []byte(strconv.Itoa(gc.Process.Pid)), 0o600)
		<-sig
		os.Exit(0)
	case "stubborn":
		signal.Ignore(os.Interrupt)
		time.Sleep(time.Hour)
	}
	os.Exit(5)
}

func helper(t *testing.T, mode string, cfg SupervisorConfig) SupervisorConfig {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Binary = exe
	cfg.Args = []string{"-test.run=^$"}
	cfg.Env = append(cfg.Env, helperEnv+"="+mode)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func TestSupervisorRestartsCrashedChild(t *testing.T) {
	s, err := StartSupervisor(helper(t, "crash", SupervisorConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "4 starts", func() bool { return s.Starts() >= 4 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n := s.Starts()
	time.Sleep(100 * time.Millisecond)
	if s.Starts() != n {
		t.Errorf("restarted after Close: %d starts, then %d", n, s.Starts())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSupervisorBackoffGrows: restarts slow down: with a minimum of 50ms
// doubling to 400ms, 6 starts take at least 50+100+200+400+400ms.
func TestSupervisorBackoffGrows(t *testing.T) {
	began := time.Now()
	s, err := StartSupervisor(helper(t, "crash", SupervisorConfig{MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, 20*time.Second, "6 starts", func() bool { return s.Starts() >= 6 })
	if took := time.Since(began); took < 1150*time.Millisecond {
		t.Errorf("6 starts in %s, want at least 1.15s of backoff", took)
	}
}

// TestSupervisorCloseEndsTasks: Close stops the child with SIGINT and ends
// what it started in other sessions (a Nomad executor survives its client).
func TestSupervisorCloseEndsTasks(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	s, err := StartSupervisor(helper(t, "serve", SupervisorConfig{Env: []string{helperPIDFile + "=" + pidFile}}))
	if err != nil {
		t.Fatal(err)
	}
	var gc int
	waitFor(t, 10*time.Second, "the grandchild", func() bool {
		b, err := os.ReadFile(pidFile)
		gc, _ = strconv.Atoi(string(b))
		return err == nil && gc > 0
	})
	child := s.PID()
	if child == 0 || !alive(gc) {
		t.Fatalf("child %d, grandchild %d alive %t", child, gc, alive(gc))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(child) || alive(gc) {
		t.Errorf("after Close: child %d alive %t, grandchild %d alive %t", child, alive(child), gc, alive(gc))
	}
	if s.Starts() != 1 {
		t.Errorf("%d starts: the child stopped by Close was restarted", s.Starts())
	}
}

func TestSupervisorKillsStubbornChild(t *testing.T) {
	s, err := StartSupervisor(helper(t, "stubborn", SupervisorConfig{StopTimeout: 300 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the child", func() bool { return s.PID() != 0 })
	pid := s.PID()
	time.Sleep(100 * time.Millisecond) // let it ignore SIGINT
	began := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("stubborn child %d survived Close", pid)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("Close took %s: SIGKILL before the stop timeout", took)
	}
}

func TestStartSupervisorNoBinary(t *testing.T) {
	if _, err := StartSupervisor(SupervisorConfig{Binary: filepath.Join(t.TempDir(), "nomad")}); err == nil {
		t.Error("StartSupervisor with a missing binary succeeded")
	}
}
