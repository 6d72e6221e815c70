package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

// AgentConfig configures the agent footprint benchmark.
type AgentConfig struct {
	// SpiceBin is the spice binary the agent runs from (default: this
	// process's executable).
	SpiceBin string
	// Interval is the agent's sampling and heartbeat interval (default 10s).
	Interval time.Duration
	// Duration is how long the footprint is measured, from the first
	// heartbeat (default 1m).
	Duration time.Duration
	// Recheck makes the hub ask for a benchmark re-check after Duration,
	// and the benchmark report the memory it takes (default false).
	Recheck bool
	TempDir string
}

// AgentResult is what the agent benchmark measured.
type AgentResult struct {
	SteadyRSS  int64   // bytes: median VmRSS over the measurement
	PeakRSS    int64   // bytes: VmHWM at the end of the measurement (start-up and join state load included)
	CPUPercent float64 // of one core, over the measurement
	Heartbeats int     // accepted during the measurement
	// RecheckPeakRSS and AfterRecheckRSS are VmHWM after a re-check and
	// VmRSS one interval later (with Recheck).
	RecheckPeakRSS, AfterRecheckRSS int64
	// JoinToNodeReady is the time from `spice agent join` to the node
	// being ready in the hub's Nomad pool. It needs a hub and a Nomad
	// server, and is measured by Join (`spice bench join`); zero here.
	JoinToNodeReady time.Duration
}

// Targets of the issue: the agent's own footprint at a 10s interval.
const (
	agentRSSTarget = 30 << 20 // bytes
	agentCPUTarget = 1.0      // percent of one core
)

// footprintHub is the hub's agent API (agentapi: join, heartbeat, a ping
// URL) and nothing else: the agent footprint benchmark measures the agent
// process, not a hub, so this stand-in speaks the real protocol over real
// HTTP and accepts what a hub would accept.
type footprintHub struct {
	srv        *http.Server
	url        string
	enrol      string
	agentToken string

	mu         sync.Mutex
	heartbeats []time.Time
	recheckAt  int // ask for a re-check in the reply to this heartbeat (1-based); 0 never
	rechecked  chan struct{}
}

func startFootprintHub() (*footprintHub, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &footprintHub{url: "http://" + l.Addr().String(), enrol: "bench-enrolment", agentToken: "bench-agent-token",
		rechecked: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/agent/join", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.EnrolmentToken != h.enrol {
			http.Error(w, `{"error":{"code":"enrolment_token_invalid","message":"unknown enrolment token"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(agentapi.JoinReply{MachineID: "bench-machine", AgentToken: h.agentToken, Owner: "bench", AccountID: "bench-account",
			Nomad:   agentapi.NomadJoin{Servers: []string{"127.0.0.1:4647"}, IntroToken: "unused", NodeName: "bench-node", NodePool: "bench"},
			Regions: []agentapi.Region{{Name: "bench", PingURL: h.url + "/ping"}}})
	})
	mux.HandleFunc("POST /api/agent/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		var hb agentapi.Heartbeat
		if r.Header.Get("Authorization") != "Bearer "+h.agentToken {
			http.Error(w, `{"error":{"code":"unauthenticated","message":"unknown agent token"}}`, http.StatusUnauthorized)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&hb); err != nil || hb.MachineID != "bench-machine" {
			http.Error(w, `{"error":{"code":"bad_request","message":"bad heartbeat"}}`, http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.heartbeats = append(h.heartbeats, time.Now())
		n := len(h.heartbeats)
		recheck := n == h.recheckAt
		h.mu.Unlock()
		if hb.Recheck != nil {
			select {
			case <-h.rechecked:
			default:
				close(h.rechecked)
			}
		}
		_ = json.NewEncoder(w).Encode(agentapi.HeartbeatReply{Recheck: recheck})
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(l) }()
	return h, nil
}

func (h *footprintHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.heartbeats)
}

// Agent measures the contributor agent's own footprint: `spice agent run`
// (sampling and heartbeats; the Nomad client, which is Nomad's footprint,
// is not started) runs as a child process against a hub's agent API for
// cfg.Duration at cfg.Interval, and its resident memory (/proc/<pid>/status
// VmRSS, VmHWM) and CPU time (/proc/<pid>/stat utime + stime) are read and
// set beside the targets: under 30 MiB and under 1 % of one core.
func Agent(ctx context.Context, cfg AgentConfig, out io.Writer) (*AgentResult, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Minute
	}
	if cfg.SpiceBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.SpiceBin = exe
	}
	h, err := startFootprintHub()
	if err != nil {
		return nil, err
	}
	defer h.srv.Close()
	stateDir := filepath.Join(cfg.TempDir, "agent-state")
	env := append(os.Environ(), "SPICE_AGENT_STATE_DIR="+stateDir)

	var joinOut bytes.Buffer
	join := exec.CommandContext(ctx, cfg.SpiceBin, "agent", "join", h.url, "-token", h.enrol, "-region", "bench", "-floor", "0.01", "-print-config")
	join.Env, join.Stdout, join.Stderr = env, &joinOut, &joinOut
	if err := join.Run(); err != nil {
		return nil, fmt.Errorf("bench: spice agent join: %w\n%s", err, joinOut.String())
	}

	var runOut bytes.Buffer
	run := exec.Command(cfg.SpiceBin, "agent", "run", "-manage-nomad=false", "-interval", cfg.Interval.String())
	run.Env, run.Stdout, run.Stderr = env, &runOut, &runOut
	if err := run.Start(); err != nil {
		return nil, fmt.Errorf("bench: spice agent run: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = run.Wait(); close(exited) }()
	defer func() {
		_ = run.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = run.Process.Kill()
			<-exited
		}
	}()
	pid := run.Process.Pid
	fail := func(err error) (*AgentResult, error) {
		return nil, fmt.Errorf("bench: agent: %w\n--- agent output ---\n%s", err, runOut.String())
	}

	// The measurement starts with the first heartbeat: start-up is not the
	// steady state.
	deadline := time.Now().Add(30 * time.Second)
	for h.count() == 0 {
		select {
		case <-exited:
			return fail(errors.New("the agent exited"))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(errors.New("no heartbeat within 30s"))
		}
	}
	fmt.Fprintf(out, "agent: footprint of `spice agent run` (host sample + heartbeat every %s, no Nomad client) for %s:\n", cfg.Interval, cfg.Duration)
	began := time.Now()
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return fail(err)
	}
	n0 := h.count()
	var rss []int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(began) < cfg.Duration {
		select {
		case <-exited:
			return fail(errors.New("the agent exited"))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		r, err := procStatus(pid, "VmRSS")
		if err != nil {
			return fail(err)
		}
		rss = append(rss, r)
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return fail(err)
	}
	elapsed := time.Since(began)
	res := &AgentResult{Heartbeats: h.count() - n0}
	// proc(5): utime and stime are in clock ticks, sysconf(_SC_CLK_TCK),
	// which is 100 (USER_HZ) on every Linux ABI.
	res.CPUPercent = 100 * float64(cpu1-cpu0) / 100 / elapsed.Seconds()
	slices.Sort(rss)
	res.SteadyRSS = rss[len(rss)/2]
	if res.PeakRSS, err = procStatus(pid, "VmHWM"); err != nil {
		return fail(err)
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(out, "  %-22s %8s   %s\n", "", "measured", "target")
	fmt.Fprintf(out, "  %-22s %6.1f MiB  < 30 MiB: %s\n", "RSS steady (median)", mib(res.SteadyRSS), verdict(res.SteadyRSS < agentRSSTarget))
	fmt.Fprintf(out, "  %-22s %6.1f MiB  < 30 MiB: %s\n", "RSS peak (VmHWM)", mib(res.PeakRSS), verdict(res.PeakRSS < agentRSSTarget))
	fmt.Fprintf(out, "  %-22s %6.2f %%    < 1 %% of one core: %s\n", "CPU", res.CPUPercent, verdict(res.CPUPercent < agentCPUTarget))
	fmt.Fprintf(out, "  %d heartbeats in %s, %d RSS samples\n", res.Heartbeats, elapsed.Round(time.Second), len(rss))

	if cfg.Recheck {
		h.mu.Lock()
		h.recheckAt = len(h.heartbeats) + 1
		h.mu.Unlock()
		select {
		case <-h.rechecked:
		case <-exited:
			return fail(errors.New("the agent exited"))
		case <-time.After(3*cfg.Interval + 30*time.Second):
			return fail(errors.New("no re-check result"))
		}
		if res.RecheckPeakRSS, err = procStatus(pid, "VmHWM"); err != nil {
			return fail(err)
		}
		time.Sleep(cfg.Interval)
		if res.AfterRecheckRSS, err = procStatus(pid, "VmRSS"); err != nil {
			return fail(err)
		}
		fmt.Fprintf(out, "  benchmark re-check: RSS peak %.1f MiB while it ran (its copy buffers), %.1f MiB one interval after\n",
			mib(res.RecheckPeakRSS), mib(res.AfterRecheckRSS))
	}
	fmt.Fprintf(out, "  join to node ready: measured with a hub and a Nomad server by 'spice bench join' (not in this run)\n")
	return res, nil
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	v, err := procStatusField(pid, field)
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return kb << 10, nil
}

// procStatusField is a field of /proc/<pid>/status, as written there.
func procStatusField(pid int, field string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, v, ok := strings.Cut(sc.Text(), ":"); ok && name == field {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// cpuTicks is the process's user + system CPU time in clock ticks (proc(5)
// /proc/<pid>/stat fields 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')') // comm may hold spaces
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	// f[0] is field 3; utime is field 14, stime 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}
