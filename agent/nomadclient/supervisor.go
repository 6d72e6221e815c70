package nomadclient

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Binary is the nomad executable (a path, or a name looked up in PATH).
	// Required.
	Binary string
	// Args are the arguments; default: agent -config ConfigPath.
	Args []string
	// ConfigPath is the file Config.HCL was written to.
	ConfigPath string
	// Env is added to the child's environment (this process's, without
	// AWS_CA_BUNDLE), e.g. IntroTokenEnv=<token>.
	Env []string
	// StderrPath receives the child's standard error, appended (start-up
	// errors and panics; the agent's log goes to Config.LogFile). Default:
	// discarded.
	StderrPath string
	// DataDir is the client's data_dir: Close unmounts what is left below
	// it and removes the cgroups of the allocations in DataDir/alloc.
	DataDir string
	// MinBackoff and MaxBackoff bound the wait before a restart; it doubles
	// after each exit and resets after a run of StableAfter (defaults 1s,
	// 1m, 1m).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopTimeout is how long the child gets to exit after SIGINT before
	// SIGKILL (default 30s).
	StopTimeout time.Duration
	// Logger receives start, exit and restart events (default
	// slog.Default()).
	Logger *slog.Logger
}

// Supervisor runs the Nomad client as a child process in its own process
// group (a Ctrl-C at the terminal reaches only the SpiceRoute agent, which
// then stops the client in order) and restarts it with backoff whenever it
// exits. Tasks survive a client crash and the restarted client re-attaches
// them. Close stops the client and ends its tasks: a machine whose client
// is gone must not keep running renters' work that the hub will reschedule
// elsewhere.
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd     // the running child, nil between runs
	exited   chan struct{} // closed when cmd exits
	starts   int
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the loop has returned
	once     sync.Once
	closeErr error
}

// StartSupervisor starts the client and the loop that restarts it. It
// returns an error, and leaves nothing running, when the first start fails
// (no binary, no permission); later failures are retried.
func StartSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Binary == "" {
		return nil, errors.New("nomadclient: no nomad binary configured")
	}
	bin, err := exec.LookPath(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("nomadclient: nomad binary: %w", err)
	}
	if cfg.Binary, err = filepath.Abs(bin); err != nil {
		return nil, fmt.Errorf("nomadclient: nomad binary: %w", err)
	}
	if cfg.Args == nil {
		cfg.Args = []string{"agent", "-config", cfg.ConfigPath}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = time.Minute
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Supervisor{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.startChild(); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

// startChild starts one run of the client.
func (s *Supervisor) startChild() error {
	cmd := exec.Command(s.cfg.Binary, s.cfg.Args...)
	cmd.Env = append(nomadagent.Env(), s.cfg.Env...)
	cmd.Dir = "/"
	if s.cfg.DataDir != "" {
		cmd.Dir = s.cfg.DataDir
		if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("nomadclient: data dir: %w", err)
		}
	}
	if s.cfg.StderrPath != "" {
		f, err := os.OpenFile(s.cfg.StderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("nomadclient: %w", err)
		}
		defer f.Close() // the child has its own descriptor
		cmd.Stderr = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("nomadclient: exec %s: %w", s.cfg.Binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.starts++
	s.mu.Unlock()
	s.log.Info("nomad client started", "pid", cmd.Process.Pid, "config", s.cfg.ConfigPath)
	return nil
}

// loop waits for the child to exit and restarts it, until Close.
func (s *Supervisor) loop() {
	defer close(s.done)
	backoff := s.cfg.MinBackoff
	for {
		s.mu.Lock()
		cmd, exited := s.cmd, s.exited
		s.mu.Unlock()
		began := time.Now()
		if cmd != nil {
			select {
			case <-s.stop:
				s.closeErr = s.stopChild(cmd, exited)
				return
			case <-exited:
			}
			ran := time.Since(began)
			if ran >= s.cfg.StableAfter {
				backoff = s.cfg.MinBackoff
			}
			s.log.Warn("nomad client exited; restarting", "pid", cmd.Process.Pid, "state", cmd.ProcessState.String(),
				"ran", ran.Round(time.Millisecond), "in", backoff)
		}
		select {
		case <-s.stop:
			s.closeErr = s.cleanup()
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		if err := s.startChild(); err != nil {
			s.log.Error("nomad client did not start", "err", err)
			s.mu.Lock()
			s.cmd, s.exited = nil, nil
			s.mu.Unlock()
		}
	}
}

// stopChild stops the running client: SIGINT, SIGKILL to its process group
// after StopTimeout, then the executors and tasks it started, then what
// they left on the host.
func (s *Supervisor) stopChild(cmd *exec.Cmd, exited chan struct{}) error {
	pid := cmd.Process.Pid
	before := nomadagent.Descendants(pid)
	began := time.Now()
	var errs []error
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(s.cfg.StopTimeout):
		s.log.Warn("nomad client did not exit after SIGINT; sending SIGKILL", "pid", pid, "after", s.cfg.StopTimeout)
		before = append(before, nomadagent.Descendants(pid)...)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("nomad client %d still running 10s after SIGKILL", pid))
		}
	}
	errs = append(errs, before.Kill(10*time.Second)...)
	s.log.Info("nomad client stopped", "pid", pid, "in", time.Since(began).Round(time.Millisecond))
	if err := s.cleanup(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanup removes the mounts and cgroups a client can leave behind.
func (s *Supervisor) cleanup() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	var ids []string
	ents, _ := os.ReadDir(filepath.Join(s.cfg.DataDir, "alloc"))
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == 36 { // allocation IDs are UUIDs
			ids = append(ids, e.Name())
		}
	}
	return errors.Join(nomadagent.CleanupHost(s.cfg.DataDir, ids)...)
}

// PID is the running client's process ID, 0 between runs.
func (s *Supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	select {
	case <-s.exited:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// Starts is how many times the client was started (1 + restarts).
func (s *Supervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Close stops the client and the restart loop. It is safe to call more than
// once; later calls return the first call's result.
func (s *Supervisor) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("nomadclient: stop: %w", s.closeErr)
		}
	})
	return s.closeErr
}
