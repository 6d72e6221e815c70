package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiceroute/spiceroute/agent"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/nomadclient"
	"github.com/spiceroute/spiceroute/hub/devstack"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// JoinConfig configures the join benchmark.
type JoinConfig struct {
	// SpiceBin is the spice binary `spice agent join` runs from (default:
	// this process's executable).
	SpiceBin string
	// NomadBin is the nomad binary of the hub's server and of both sides'
	// clients (required).
	NomadBin string
	// Runs is how many joins each side makes, alternating (default 3).
	Runs int
	// TempDir holds the machines' state directories (required).
	TempDir string
	// PolicyFile is the hub's admission policy (default
	// hub.DefaultPolicyFile, relative to the working directory).
	PolicyFile string
}

// JoinResult is what the join benchmark measured: from exec to the node
// being ready for work (ready, eligible, not draining) in the hub's pool.
type JoinResult struct {
	Agent []time.Duration // `spice agent join`, each run
	Nomad []time.Duration // `nomad agent` with an introduction token, each run
	// AgentJoined is, for each agent run, exec to the agent logging that
	// the hub accepted its join (host description, benchmark and the join
	// round trip); zero when the log did not say.
	AgentJoined []time.Duration
	// AgentNodes and NomadNodes are the nodes that became ready.
	AgentNodes, NomadNodes   []string
	AgentMedian, NomadMedian time.Duration
	Ratio                    float64 // AgentMedian / NomadMedian
}

// The machine both sides offer: what the benchmark's `spice agent join`
// is told, and the baseline's node carries the same in its metadata.
const (
	joinRegion     = "eu-west"
	joinFloor      = "0.03" // SP per core-hour
	joinFloorMicro = 30_000 // the same in µSP
)

// Join measures the time from `spice agent join` to the machine's Nomad
// node being ready for work, against a bare Nomad client joining the same
// server, in one run on one stack: the dev stack (an ephemeral PostgreSQL,
// the hub's server-only Nomad agent, a hub) without its demo machines.
//
//   - agent: the operator enrols a fresh owner (contrib.Service.Enrol), and
//     `spice agent join` runs as a child process with that token; the clock
//     runs from just before exec until the node named by the hub's record
//     of the machine is ready. The agent describes and benchmarks the host,
//     joins through the hub's API, writes the Nomad client configuration
//     and starts the client.
//   - nomad: the hub mints an introduction token directly
//     (nomad.Scheduler.IntroToken), the client configuration the agent
//     would write is rendered with agent.NomadConfig and written before the
//     clock starts, and `nomad agent -config` runs under the same
//     supervisor the agent uses (nomadclient.Supervisor); the clock runs
//     from just before exec until the node is ready.
//
// The sides alternate, and each joined machine is stopped (its Nomad client
// with it) before the next run.
func Join(ctx context.Context, cfg JoinConfig, out io.Writer) (_ *JoinResult, err error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if cfg.NomadBin == "" || cfg.TempDir == "" {
		return nil, errors.New("bench: join: NomadBin and TempDir are required")
	}
	if cfg.SpiceBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.SpiceBin = exe
	}
	nomadBin, err := filepath.Abs(cfg.NomadBin)
	if err != nil {
		return nil, err
	}
	cfg.NomadBin = nomadBin
	if _, err := os.Stat(cfg.SpiceBin); err != nil {
		return nil, fmt.Errorf("bench: join: spice binary: %w", err)
	}
	st, err := devstack.Start(ctx, devstack.Config{Listen: "127.0.0.1:0", NomadBinary: nomadBin, PolicyFile: cfg.PolicyFile,
		Logger: quietLogger(), NoDemoMachines: true})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bench: join: %w", cerr)
		}
	}()

	res := &JoinResult{}
	plural := "s each, alternating"
	if cfg.Runs == 1 {
		plural = " each"
	}
	fmt.Fprintf(out, "join: exec to the machine's Nomad node ready for work in the hub's pool, %d run%s:\n", cfg.Runs, plural)
	for i := range cfg.Runs {
		d, joined, node, err := joinAgent(ctx, st, cfg, i+1)
		if err != nil {
			return nil, err
		}
		res.Agent, res.AgentJoined, res.AgentNodes = append(res.Agent, d), append(res.AgentJoined, joined), append(res.AgentNodes, node)
		if d, node, err = joinNomad(ctx, st, cfg, i+1); err != nil {
			return nil, err
		}
		res.Nomad, res.NomadNodes = append(res.Nomad, d), append(res.NomadNodes, node)
	}
	res.AgentMedian, res.NomadMedian = median(res.Agent), median(res.Nomad)
	res.Ratio = float64(res.AgentMedian) / float64(res.NomadMedian)

	runs := func(ds []time.Duration) string {
		s := make([]string, len(ds))
		for i, d := range ds {
			s[i] = fmt.Sprintf("%.0f", ms(d))
		}
		return strings.Join(s, ", ") + " ms"
	}
	fmt.Fprintf(out, "  %-48s %9s   %s\n", "", "median", "runs")
	fmt.Fprintf(out, "  %-48s %6.0f ms   %s\n", "spice agent join → node ready", ms(res.AgentMedian), runs(res.Agent))
	if !slices.Contains(res.AgentJoined, 0) {
		fmt.Fprintf(out, "  %-48s %6.0f ms   %s\n", "  of which exec → join accepted by the hub", ms(median(res.AgentJoined)), runs(res.AgentJoined))
	}
	fmt.Fprintf(out, "  %-48s %6.0f ms   %s\n", "nomad agent (client, intro token) → node ready", ms(res.NomadMedian), runs(res.Nomad))
	fmt.Fprintf(out, "  agent / nomad = %.2f (medians)\n", res.Ratio)
	fmt.Fprintf(out, "  The difference is the agent's own part of joining, before it starts the same Nomad client: it\n"+
		"  describes the host and runs its join benchmark (about 1.5 s), joins through the hub (one round trip,\n"+
		"  in which the hub mints the introduction token and records the machine) and writes the client's\n"+
		"  configuration. The bare client was given a token and a configuration made before its clock started.\n")
	return res, nil
}

// joinAgent enrols a fresh owner and times `spice agent join` from exec to
// its node being ready; joined is exec to the agent logging the hub's
// acceptance. The agent is stopped before joinAgent returns.
func joinAgent(ctx context.Context, st *devstack.Stack, cfg JoinConfig, run int) (d, joined time.Duration, node string, err error) {
	owner := fmt.Sprintf("bench-join-%d", run)
	token, _, err := st.Hub.Machines.Enrol(ctx, "operator", owner, 0)
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: join: enrol %s: %w", owner, err)
	}
	port, err := freePort()
	if err != nil {
		return 0, 0, "", err
	}
	dir := filepath.Join(cfg.TempDir, "agent", strconv.Itoa(run))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, "", err
	}
	logPath := filepath.Join(cfg.TempDir, fmt.Sprintf("agent-%d.log", run))
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, 0, "", err
	}
	defer logf.Close()
	cmd := exec.Command(cfg.SpiceBin, "agent", "join", st.Hub.URL(), "-token", token, "-region", joinRegion, "-floor", joinFloor,
		"-state-dir", dir, "-nomad", cfg.NomadBin, "-nomad-http-port", strconv.Itoa(port), "-interval", "2s")
	cmd.Env, cmd.Stdout, cmd.Stderr = nomadagent.Env(), logf, logf
	// Its own process group: a Ctrl-C reaches the benchmark alone, which
	// then stops the agent in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, "", fmt.Errorf("bench: join: spice agent join: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		if serr := stopAgent(cmd, exited, dir); serr != nil && err == nil {
			err = fmt.Errorf("bench: join: stop the agent: %w\n--- agent output ---\n%s", serr, tail(logPath, 30))
		}
	}()
	err = waitNodeReady(ctx, exited, func(ctx context.Context) (bool, error) {
		if node == "" {
			ms, err := st.Hub.Machines.Machines(ctx, owner)
			if err != nil || len(ms) == 0 {
				return false, err
			}
			node = ms[0].NodeName
		}
		n, ok, err := st.Hub.Jobs.Sched.NodeByName(ctx, node)
		return ok && n.Ready(), err
	})
	d = time.Since(began)
	if err != nil {
		return 0, 0, "", fmt.Errorf("bench: join: spice agent join: %w\n--- agent output ---\n%s\n--- its nomad client's stderr ---\n%s",
			err, tail(logPath, 30), tail(filepath.Join(dir, "nomad-stderr.log"), 30))
	}
	if at, ok := loggedAt(logPath, `msg="joined hub"`); ok {
		joined = at.Sub(began)
	}
	return d, joined, node, nil
}

// stopAgent stops `spice agent join`: SIGTERM, which makes it stop its Nomad
// client; SIGKILL to its process group if it has not exited after a minute
// (its supervisor gives the client 30s); then whatever it left running, and
// the mounts under its state directory.
func stopAgent(cmd *exec.Cmd, exited chan struct{}, dir string) error {
	pid := cmd.Process.Pid
	before := nomadagent.Descendants(pid)
	var errs []error
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			errs = append(errs, fmt.Errorf("the agent exited with %s", cmd.ProcessState))
		}
	case <-time.After(time.Minute):
		errs = append(errs, errors.New("the agent did not exit a minute after SIGTERM"))
		before = append(before, nomadagent.Descendants(pid)...)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
	errs = append(errs, before.Kill(10*time.Second)...)
	errs = append(errs, nomadagent.CleanupHost(dir, nil)...)
	return errors.Join(errs...)
}

// joinNomad times a bare Nomad client, with an introduction token the hub
// minted and the configuration the agent would write, from exec to its
// node being ready. The client is stopped before joinNomad returns.
func joinNomad(ctx context.Context, st *devstack.Stack, cfg JoinConfig, run int) (d time.Duration, node string, err error) {
	node = fmt.Sprintf("bench-nomad-%d", run)
	intro, err := st.Hub.Jobs.Sched.IntroToken(ctx, node, 30*time.Minute)
	if err != nil {
		return 0, "", fmt.Errorf("bench: join: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return 0, "", err
	}
	dir := filepath.Join(cfg.TempDir, "nomad", strconv.Itoa(run))
	// What the hub's join reply would hold (contrib.Service.Join), with
	// made-up machine and account IDs: nothing in the hub knows the node.
	mc := st.Hub.Machines.Config
	dc := mc.Datacenter
	if dc == "" {
		dc = "dc1" // contrib.Config's default
	}
	machine, account := ledger.NewID().String(), ledger.NewID().String()
	state := &agent.State{
		Join: agentapi.JoinReply{MachineID: machine, AccountID: account, Nomad: agentapi.NomadJoin{
			Servers: mc.NomadServers, IntroToken: intro, NodeName: node, NodePool: mc.NodePool, Datacenter: dc,
			Meta: agentapi.NodeMeta(account, machine, joinRegion, joinFloorMicro, agent.Version)}},
		Offer: agentapi.Offer{Region: joinRegion, FloorCPU: joinFloorMicro},
	}
	files, err := agent.WriteNomadConfig(state, dir, port)
	if err != nil {
		return 0, "", fmt.Errorf("bench: join: %w", err)
	}
	began := time.Now()
	sup, err := nomadclient.StartSupervisor(nomadclient.SupervisorConfig{
		Binary:     cfg.NomadBin,
		ConfigPath: files.ConfigPath,
		Env:        []string{nomadclient.IntroTokenEnv + "=" + intro},
		StderrPath: files.StderrPath,
		DataDir:    files.DataDir,
		Logger:     quietLogger(),
	})
	if err != nil {
		return 0, "", fmt.Errorf("bench: join: %w", err)
	}
	defer func() {
		if cerr := sup.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("bench: join: stop the bare Nomad client: %w", cerr)
		}
	}()
	err = waitNodeReady(ctx, nil, func(ctx context.Context) (bool, error) {
		n, ok, err := st.Hub.Jobs.Sched.NodeByName(ctx, node)
		return ok && n.Ready(), err
	})
	d = time.Since(began)
	if err != nil {
		return 0, "", fmt.Errorf("bench: join: bare Nomad client: %w\n--- its log ---\n%s\n--- its stderr ---\n%s",
			err, tail(files.LogPath, 30), tail(files.StderrPath, 30))
	}
	return d, node, nil
}

// joinTimeout bounds one join; both sides take seconds.
const joinTimeout = 2 * time.Minute

// waitNodeReady polls ready every 50ms (both sides alike) until it reports
// true, the process behind exited (nil: never) exits, or joinTimeout.
func waitNodeReady(ctx context.Context, exited <-chan struct{}, ready func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(joinTimeout)
	for {
		ok, err := ready(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the node was not ready after %s", joinTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("the process exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loggedAt is the time of the first line of a slog text log that contains
// sub (its time= field).
func loggedAt(path, sub string) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, sub) || !strings.HasPrefix(line, "time=") {
			continue
		}
		v, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, v)
		return t, err == nil
	}
	return time.Time{}, false
}

// tail is the last n lines of a file, for error reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// median is the middle of ds (the upper middle of an even count).
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// freePort is a TCP port on loopback that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
