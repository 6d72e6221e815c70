// Package agent is the SpiceRoute contributor agent (`spice agent`): it
// joins a contributor's machine to a hub, runs and supervises the machine's
// Nomad client, and reports to the hub with a heartbeat. It speaks the hub
// protocol of agent/agentapi and imports nothing of the hub.
//
// Join (once, with an operator's single-use enrolment token) describes the
// machine (agent/hostmetrics), benchmarks it (agent/benchmark), registers it
// with the hub (POST /api/agent/join) and keeps the reply in the state
// directory (see state.go). Run then starts the Nomad client
// (agent/nomadclient) with the reply's servers, node pool and introduction
// token, and sends a heartbeat every Config.SampleInterval (or less often
// when the hub asks) carrying a host sample, the round-trip times to the
// hub's regions, whether the owner's availability windows (agent/windows)
// are open, and a benchmark re-check when the hub asked for one. The agent
// holds no Nomad token: the hub drains the node when Available is false and
// re-enables it when it is true again.
//
// Memory: the agent keeps one sample, one small reply and one HTTP client
// between heartbeats; the benchmark maps its buffers outside the Go heap
// and unmaps them when done.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/benchmark"
	"github.com/spiceroute/spiceroute/agent/hostmetrics"
	"github.com/spiceroute/spiceroute/agent/windows"
)

// Version is the agent's version, sent at join and put in the node's
// metadata (agentapi.MetaAgentVersion).
const Version = "0.1.0"

// DefaultStateDir is where the agent keeps its state unless told otherwise.
const DefaultStateDir = "/var/lib/spiceroute-agent"

// Config configures an agent. Start from DefaultConfig.
type Config struct {
	// StateDir holds the join state, the agent token and the Nomad client's
	// data (see state.go).
	StateDir string
	// SampleInterval is how often the host is sampled and a heartbeat sent
	// (default 10s). The hub may ask for a longer one
	// (HeartbeatReply.Next).
	SampleInterval time.Duration
	// Windows are the owner's availability windows; the zero Schedule is
	// always available.
	Windows windows.Schedule
	// Offer is the floor, region and reservations sent at join.
	Offer agentapi.Offer
	// NomadBinary is the nomad executable (default "nomad", from PATH).
	NomadBinary string
	// ManageNomad makes Run start and supervise the Nomad client. False
	// when the operator runs it (e.g. with the systemd unit that
	// -print-config writes).
	ManageNomad bool
	// NomadHTTPPort is the Nomad client's HTTP port on loopback (default
	// nomadclient.DefaultHTTPPort).
	NomadHTTPPort int
	// Benchmark sizes the join benchmark and re-checks.
	Benchmark benchmark.Config
	// RTTSamples is how many GETs measure a region's round-trip time (the
	// median counts), every RTTEvery (defaults 3 and 1m).
	RTTSamples int
	RTTEvery   time.Duration
	// RetryMin and RetryMax bound the backoff after a failed heartbeat
	// (defaults 1s and 1m; doubling, with jitter).
	RetryMin, RetryMax time.Duration
	// HTTPTimeout bounds each request to the hub (default 15s).
	HTTPTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// DefaultConfig is an agent that samples every 10 seconds and runs the
// Nomad client itself.
func DefaultConfig() Config {
	return Config{
		StateDir:       DefaultStateDir,
		SampleInterval: 10 * time.Second,
		NomadBinary:    "nomad",
		ManageNomad:    true,
		Benchmark:      benchmark.DefaultConfig(),
		RTTSamples:     3,
		RTTEvery:       time.Minute,
		RetryMin:       time.Second,
		RetryMax:       time.Minute,
		HTTPTimeout:    15 * time.Second,
	}
}

// withDefaults fills in zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.StateDir == "" {
		c.StateDir = d.StateDir
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = d.SampleInterval
	}
	if c.NomadBinary == "" {
		c.NomadBinary = d.NomadBinary
	}
	if c.RTTSamples <= 0 {
		c.RTTSamples = d.RTTSamples
	}
	if c.RTTEvery <= 0 {
		c.RTTEvery = d.RTTEvery
	}
	if c.RetryMin <= 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(d.RetryMax, c.RetryMin)
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = d.HTTPTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// HubError is an error answer from the hub: its HTTP status and, when the
// body is the hub's JSON error ({"error": {"code", "message"}}), its code
// and message.
type HubError struct {
	Status  int
	Code    string
	Message string
}

func (e *HubError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("hub answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("hub answered %d: %s: %s", e.Status, e.Code, e.Message)
}

// newHTTPClient is the agent's one HTTP client: few idle connections, kept
// alive across heartbeats (no new TLS handshake every 10 seconds).
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       2 * time.Minute,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// maxReply bounds what the agent reads of a hub reply.
const maxReply = 1 << 20

// post sends body as JSON to hubURL+path and decodes a 2xx reply into out.
func post(ctx context.Context, hc *http.Client, hubURL, path, token string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(hubURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "spice-agent/"+Version)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body2 := io.LimitReader(resp.Body, maxReply)
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(body2)
		he := &HubError{Status: resp.StatusCode}
		var coded struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &coded) == nil && coded.Error.Code != "" {
			he.Code, he.Message = coded.Error.Code, coded.Error.Message
		} else {
			he.Message = strings.TrimSpace(string(raw))
			if len(he.Message) > 200 {
				he.Message = he.Message[:200] + "…"
			}
		}
		return he
	}
	if err := json.NewDecoder(body2).Decode(out); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	_, _ = io.Copy(io.Discard, body2) // let the connection be reused
	return nil
}

// checkHubURL accepts http and https URLs without query or fragment.
func checkHubURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("agent: hub URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("agent: hub URL %q: want http(s)://host[:port][/path]", s)
	}
	return nil
}

// ErrAlreadyJoined is returned by Join when the state directory already
// holds a join: one machine, one registration.
var ErrAlreadyJoined = errors.New("agent: this machine has already joined")

// Join registers this machine with the hub at hubURL using an enrolment
// token, and saves the reply in cfg.StateDir. It describes and benchmarks
// the machine first (about 1.5s). A join is not retried: the hub burns the
// enrolment token with the first request it processes.
func Join(ctx context.Context, cfg Config, hubURL, enrolToken string, settings Settings) (*State, error) {
	cfg = cfg.withDefaults()
	if err := checkHubURL(hubURL); err != nil {
		return nil, err
	}
	if enrolToken == "" {
		return nil, errors.New("agent: no enrolment token")
	}
	if st, _, err := LoadState(cfg.StateDir); err == nil {
		return nil, fmt.Errorf("%w: %s as machine %s (state in %s; remove it to join again)", ErrAlreadyJoined, st.HubURL, st.Join.MachineID, cfg.StateDir)
	} else if !errors.Is(err, ErrNotJoined) {
		return nil, err
	}
	if err := agentapi.ValidRegion(cfg.Offer.Region); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.Offer.FloorCPU < 0 || cfg.Offer.ReservedCPUMHz < 0 || cfg.Offer.ReservedMemoryMB < 0 {
		return nil, errors.New("agent: the floor and the reservations must not be negative")
	}
	m, err := hostmetrics.Machine(ctx, cfg.StateDir)
	if err != nil {
		// The state dir may not exist yet: measure the root filesystem.
		if m, err = hostmetrics.Machine(ctx, "/"); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if cfg.Offer.ReservedCPUMHz >= m.CPUMHz || cfg.Offer.ReservedMemoryMB >= m.MemoryMB {
		return nil, fmt.Errorf("agent: the reservation (%d MHz, %d MB) leaves nothing of the machine (%d MHz, %d MB) to offer",
			cfg.Offer.ReservedCPUMHz, cfg.Offer.ReservedMemoryMB, m.CPUMHz, m.MemoryMB)
	}
	bench, err := benchmark.Run(ctx, cfg.Benchmark)
	if err != nil {
		return nil, fmt.Errorf("agent: benchmark: %w", err)
	}
	req := agentapi.JoinRequest{EnrolmentToken: enrolToken, Machine: m, Benchmark: bench, Offer: cfg.Offer, AgentVersion: Version}
	var reply agentapi.JoinReply
	hc := newHTTPClient(cfg.HTTPTimeout)
	defer hc.CloseIdleConnections()
	if err := post(ctx, hc, hubURL, "/api/agent/join", "", req, &reply); err != nil {
		return nil, fmt.Errorf("agent: join %s: %w", hubURL, err)
	}
	if reply.MachineID == "" || reply.AgentToken == "" {
		return nil, fmt.Errorf("agent: join %s: the reply has no machine ID or agent token", hubURL)
	}
	st := &State{HubURL: hubURL, JoinedAt: time.Now().UTC(), Join: reply, Offer: cfg.Offer, Benchmark: bench, Settings: settings}
	if err := SaveState(cfg.StateDir, st, reply.AgentToken); err != nil {
		return nil, err
	}
	st.Join.AgentToken = ""
	cfg.Logger.Info("joined hub", "hub", hubURL, "machine", reply.MachineID, "node", reply.Nomad.NodeName,
		"cpu_score", int64(bench.CPUScore), "memory_mbps", int64(bench.MemoryMBps))
	return st, nil
}

// Stats is what the agent has done so far (for `spice bench agent` and the
// logs). The time from join to the node being ready is measured by the hub,
// which sees the node register.
type Stats struct {
	Heartbeats      int64     // accepted by the hub
	Failures        int64     // heartbeats that failed
	Rechecks        int64     // benchmark re-checks run
	FirstHeartbeat  time.Time // when the hub first accepted one
	LastHeartbeat   time.Time
	Available       bool
	NomadStarts     int // starts of the supervised Nomad client
	LastError       string
	LastHeartbeatIn time.Duration // round trip of the last accepted heartbeat
}

// Agent is a joined agent. Run it once; Close it after.
type Agent struct {
	cfg     Config
	state   *State
	token   string
	log     *slog.Logger
	hc      *http.Client
	sampler *hostmetrics.Sampler
	nomad   nomadRunner // nil unless cfg.ManageNomad

	mu    sync.Mutex
	stats Stats

	closeOnce sync.Once
	closeErr  error
}

// nomadRunner is the supervised Nomad client as Run uses it.
type nomadRunner interface {
	Starts() int
	Close() error
}

// New loads the join state from cfg.StateDir (ErrNotJoined if there is
// none) and returns an agent ready to Run.
func New(cfg Config) (*Agent, error) {
	cfg = cfg.withDefaults()
	st, token, err := LoadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if cfg.Offer == (agentapi.Offer{}) {
		cfg.Offer = st.Offer
	}
	return &Agent{
		cfg:     cfg,
		state:   st,
		token:   token,
		log:     cfg.Logger,
		hc:      newHTTPClient(cfg.HTTPTimeout),
		sampler: hostmetrics.NewSampler(cfg.StateDir),
	}, nil
}

// State is the join state the agent runs with.
func (a *Agent) State() *State { return a.state }

// Stats returns a copy of the agent's counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	if a.nomad != nil {
		s.NomadStarts = a.nomad.Starts()
	}
	return s
}

// Run starts the Nomad client (when cfg.ManageNomad) and sends heartbeats
// until ctx ends; it then returns nil. It returns an error only when the
// Nomad client cannot be started at all. Hub errors are logged and retried
// with backoff.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.ManageNomad {
		sup, err := a.startNomad()
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.nomad = sup
		a.mu.Unlock()
	}
	var (
		wait     time.Duration // before the next heartbeat; the first goes at once
		failures int
		recheck  *agentapi.Benchmark
		rtt      map[string]int64
		rttAt    time.Time
		wasAvail *bool
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		if len(a.state.Join.Regions) > 0 && now.Sub(rttAt) >= a.cfg.RTTEvery {
			rtt, rttAt = a.measureRTT(ctx), now
		}
		m, err := a.sampler.Sample(ctx)
		if err != nil {
			a.log.Warn("host sample incomplete", "err", err)
		}
		avail := a.cfg.Windows.Available(now)
		if wasAvail == nil || *wasAvail != avail {
			a.log.Info("availability", "available", avail, "windows", a.cfg.Windows.String())
			wasAvail = &avail
		}
		hb := agentapi.Heartbeat{MachineID: a.state.Join.MachineID, Metrics: m, RTT: rtt, Available: avail, Recheck: recheck}
		began := time.Now()
		var reply agentapi.HeartbeatReply
		err = a.send(ctx, &hb, &reply)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			wait = a.backoff(failures)
			a.mu.Lock()
			a.stats.Failures++
			a.stats.LastError = err.Error()
			a.mu.Unlock()
			a.log.Warn("heartbeat failed", "err", err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
			continue
		}
		failures, recheck = 0, nil
		a.mu.Lock()
		a.stats.Heartbeats++
		if a.stats.FirstHeartbeat.IsZero() {
			a.stats.FirstHeartbeat = began
		}
		a.stats.LastHeartbeat, a.stats.LastHeartbeatIn, a.stats.Available = began, time.Since(began), avail
		a.mu.Unlock()
		wait = max(a.cfg.SampleInterval, reply.Next)
		if reply.Recheck {
			b, err := benchmark.Run(ctx, a.cfg.Benchmark)
			if err != nil {
				a.log.Warn("benchmark re-check failed", "err", err)
				continue
			}
			recheck = &b
			a.mu.Lock()
			a.stats.Rechecks++
			a.mu.Unlock()
			a.log.Info("benchmark re-checked", "cpu_score", int64(b.CPUScore), "memory_mbps", int64(b.MemoryMBps))
		}
	}
}

// send posts one heartbeat.
func (a *Agent) send(ctx context.Context, hb *agentapi.Heartbeat, reply *agentapi.HeartbeatReply) error {
	if err := post(ctx, a.hc, a.state.HubURL, "/api/agent/heartbeat", a.token, hb, reply); err != nil {
		return fmt.Errorf("agent: heartbeat: %w", err)
	}
	return nil
}

// backoff is the wait after the n-th failure in a row: RetryMin doubling
// up to RetryMax, with ±20 % jitter so that a hub's agents coming back
// together do not all call at once.
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.RetryMin
	for i := 1; i < n && d < a.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.RetryMax)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}

// measureRTT measures the round-trip time to each region: the median of
// RTTSamples plain GETs of its PingURL, in whole milliseconds (at least
// 1). A region that does not answer is left out.
func (a *Agent) measureRTT(ctx context.Context) map[string]int64 {
	out := make(map[string]int64, len(a.state.Join.Regions))
	for _, r := range a.state.Join.Regions {
		if r.PingURL == "" {
			continue
		}
		var ds []time.Duration
		for i := 0; i < a.cfg.RTTSamples; i++ {
			d, err := a.ping(ctx, r.PingURL)
			if err != nil {
				a.log.Debug("ping failed", "region", r.Name, "url", r.PingURL, "err", err)
				continue
			}
			ds = append(ds, d)
		}
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		ms := ds[len(ds)/2].Milliseconds()
		out[r.Name] = max(ms, 1)
	}
	return out
}

// ping times one GET of u, including the connection when none is idle
// (the first sample of a region usually is the slowest, and the median
// discards it).
func (a *Agent) ping(ctx context.Context, u string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "spice-agent/"+Version)
	began := time.Now()
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	d := time.Since(began)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%s", resp.Status)
	}
	return d, nil
}

// Close stops the Nomad client (when the agent runs it) and releases the
// HTTP client's connections. Safe to call more than once.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		n := a.nomad
		a.mu.Unlock()
		if n != nil {
			a.closeErr = n.Close()
		}
		a.hc.CloseIdleConnections()
	})
	return a.closeErr
}
