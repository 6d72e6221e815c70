package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/benchmark"
	"github.com/spiceroute/spiceroute/agent/windows"
)

// fakeHub is a hub's agent API for these tests: it speaks agentapi over
// real HTTP (join, heartbeat) and records what it received. Its behaviour
// is set by its fields before the agent talks to it.
type fakeHub struct {
	*httptest.Server
	enrolToken string // the one enrolment token it accepts, once
	agentToken string
	nomad      agentapi.NomadJoin

	mu         sync.Mutex
	joins      []agentapi.JoinRequest
	heartbeats []agentapi.Heartbeat
	attempts   []time.Time // every heartbeat request, accepted or not
	authz      []string    // Authorization headers of heartbeats
	failNext   int         // answer this many heartbeats with 503
	recheckAt  int         // ask for a re-check in the reply to this heartbeat (1-based)
	pings      int
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{enrolToken: "enrol-123", agentToken: "agent-secret-456",
		nomad: agentapi.NomadJoin{Servers: []string{"127.0.0.1:4647"}, IntroToken: "eyJ.intro.jwt", NodeName: "contrib-test",
			NodePool: "spiceroute", Datacenter: "dc1", Meta: map[string]string{agentapi.MetaAccount: "acct-1"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/agent/join", h.join)
	mux.HandleFunc("POST /api/agent/heartbeat", h.heartbeat)
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.pings++
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	return h
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg, "request_id": "r1"}})
}

func (h *fakeHub) join(w http.ResponseWriter, r *http.Request) {
	var req agentapi.JoinRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		hubError(w, 400, "bad_request", err.Error())
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.EnrolmentToken != h.enrolToken {
		hubError(w, 401, "enrolment_token_invalid", "enrolment token unknown or already used")
		return
	}
	h.enrolToken = "" // single use
	h.joins = append(h.joins, req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(agentapi.JoinReply{MachineID: "m-1", AgentToken: h.agentToken, Owner: "alice", AccountID: "acct-1",
		Nomad: h.nomad, HeartbeatInterval: 10 * time.Second, Regions: []agentapi.Region{{Name: "eu-west", PingURL: h.URL + "/ping"}}})
}

func (h *fakeHub) heartbeat(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts = append(h.attempts, time.Now())
	h.authz = append(h.authz, r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") != "Bearer "+h.agentToken {
		hubError(w, 401, "unauthenticated", "agent token unknown")
		return
	}
	if h.failNext > 0 {
		h.failNext--
		hubError(w, 503, "unavailable", "hub is restarting")
		return
	}
	var hb agentapi.Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil || hb.MachineID != "m-1" {
		hubError(w, 400, "bad_request", "not machine m-1")
		return
	}
	h.heartbeats = append(h.heartbeats, hb)
	_ = json.NewEncoder(w).Encode(agentapi.HeartbeatReply{Recheck: len(h.heartbeats) == h.recheckAt})
}

func (h *fakeHub) snapshot() (hbs []agentapi.Heartbeat, attempts []time.Time, authz []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]agentapi.Heartbeat(nil), h.heartbeats...), append([]time.Time(nil), h.attempts...), append([]string(nil), h.authz...)
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.SampleInterval = 30 * time.Millisecond
	cfg.ManageNomad = false
	cfg.Offer = agentapi.Offer{Region: "eu-west", FloorCPU: 30469, ReservedCPUMHz: 100, ReservedMemoryMB: 64}
	cfg.Benchmark = benchmark.Config{CPUTime: 50 * time.Millisecond, MemoryTime: 20 * time.Millisecond, BufferMB: 4}
	cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 160*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return cfg
}

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

// runAgent joins (unless the state exists) and runs an agent until the
// test's end.
func runAgent(t *testing.T, h *fakeHub, cfg Config) *Agent {
	t.Helper()
	if _, _, err := LoadState(cfg.StateDir); errors.Is(err, ErrNotJoined) {
		if _, err := Join(context.Background(), cfg, h.URL, h.enrolToken, Settings{}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

func TestJoin(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t)
	st, err := Join(context.Background(), cfg, h.URL, "enrol-123", Settings{Windows: "22:00-07:00", ManageNomad: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.joins) != 1 {
		t.Fatalf("%d joins", len(h.joins))
	}
	req := h.joins[0]
	if req.Machine.CPUCores <= 0 || req.Machine.MemoryMB <= 0 || req.Benchmark.CPUScore <= 0 || req.Benchmark.MemoryMBps <= 0 ||
		req.Offer != cfg.Offer || req.AgentVersion != Version {
		t.Errorf("join request %+v", req)
	}
	if st.Join.MachineID != "m-1" || st.Join.AgentToken != "" {
		t.Errorf("state %+v: want machine m-1 and no token in it", st.Join)
	}

	fi, err := os.Stat(filepath.Join(cfg.StateDir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, p := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, stateFile)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v: readable by others", p, fi.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(filepath.Join(cfg.StateDir, stateFile))
	if strings.Contains(string(b), h.agentToken) {
		t.Error("state.json holds the agent token")
	}
	loaded, token, err := LoadState(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if token != h.agentToken || loaded.Settings.Windows != "22:00-07:00" || !loaded.Settings.ManageNomad || loaded.Join.Nomad.IntroToken != "eyJ.intro.jwt" {
		t.Errorf("loaded %+v, token %q", loaded, token)
	}

	// Joining again from the same state directory is refused before
	// the hub is asked.
	if _, err := Join(context.Background(), cfg, h.URL, "enrol-123", Settings{}); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf("second join from the same state: %v, want ErrAlreadyJoined", err)
	}
	if len(h.joins) != 1 {
		t.Errorf("the hub saw %d joins", len(h.joins))
	}
	// The enrolment token was single-use: another machine's join with it
	// fails with the hub's coded error, and the first machine's state is
	// untouched.
	other := testConfig(t)
	_, err = Join(context.Background(), other, h.URL, "enrol-123", Settings{})
	var he *HubError
	if !errors.As(err, &he) || he.Status != 401 || he.Code != "enrolment_token_invalid" {
		t.Fatalf("second join: %v, want a 401 enrolment_token_invalid HubError", err)
	}
	if _, token2, err := LoadState(cfg.StateDir); err != nil || token2 != token {
		t.Errorf("state after a failed join: %v, token %q", err, token2)
	}
}

func TestJoinRejectsBadInput(t *testing.T) {
	h := newFakeHub(t)
	for name, f := range map[string]func(*Config) (string, string){
		"BadRegion":     func(c *Config) (string, string) { c.Offer.Region = "EU West"; return h.URL, "enrol-123" },
		"NoToken":       func(c *Config) (string, string) { return h.URL, "" },
		"BadURL":        func(c *Config) (string, string) { return "ftp://hub", "enrol-123" },
		"HugeReserve":   func(c *Config) (string, string) { c.Offer.ReservedMemoryMB = 1 << 40; return h.URL, "enrol-123" },
		"NegativeFloor": func(c *Config) (string, string) { c.Offer.FloorCPU = -1; return h.URL, "enrol-123" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			url, tok := f(&cfg)
			if _, err := Join(context.Background(), cfg, url, tok, Settings{}); err == nil {
				t.Error("Join succeeded")
			}
			if _, _, err := LoadState(cfg.StateDir); !errors.Is(err, ErrNotJoined) {
				t.Errorf("state after a rejected join: %v", err)
			}
		})
	}
	if len(h.joins) != 0 {
		t.Errorf("the hub saw %d joins", len(h.joins))
	}
}

func TestLoadStateRefusesReadableToken(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t)
	if _, err := Join(context.Background(), cfg, h.URL, "enrol-123", Settings{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(cfg.StateDir, tokenFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadState(cfg.StateDir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("LoadState with a 0644 token: %v", err)
	}
	if _, err := New(cfg); err == nil {
		t.Error("New with a 0644 token succeeded")
	}
}

func TestHeartbeats(t *testing.T) {
	h := newFakeHub(t)
	a := runAgent(t, h, testConfig(t))
	waitFor(t, 10*time.Second, "3 heartbeats", func() bool { hbs, _, _ := h.snapshot(); return len(hbs) >= 3 })
	hbs, _, authz := h.snapshot()
	for i, a := range authz {
		if a != "Bearer agent-secret-456" {
			t.Errorf("heartbeat %d: Authorization %q", i, a)
		}
	}
	for i, hb := range hbs {
		m := hb.Metrics
		if m.MemTotalMB <= 0 || m.MemUsedMB > m.MemTotalMB || m.DiskTotMB <= 0 || m.CPUPercent < 0 || m.CPUPercent > 100 || m.SampledAt.IsZero() {
			t.Errorf("heartbeat %d: implausible metrics %+v", i, m)
		}
		if !hb.Available {
			t.Errorf("heartbeat %d: unavailable without windows", i)
		}
		if hb.RTT["eu-west"] < 1 {
			t.Errorf("heartbeat %d: RTT %v, want eu-west measured", i, hb.RTT)
		}
		if hb.Recheck != nil {
			t.Errorf("heartbeat %d: a re-check nobody asked for", i)
		}
	}
	// RTT is measured once a minute, RTTSamples GETs each time.
	h.mu.Lock()
	pings := h.pings
	h.mu.Unlock()
	if pings != 3 {
		t.Errorf("%d pings, want 3 (one measurement)", pings)
	}
	if s := a.Stats(); s.Heartbeats < 3 || s.Failures != 0 || s.FirstHeartbeat.IsZero() {
		t.Errorf("stats %+v", s)
	}
}

func TestHeartbeatWindows(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t)
	// A one-minute window twelve hours from now: closed now.
	start := time.Now().UTC().Add(12 * time.Hour)
	spec := start.Format("15:04") + "-" + start.Add(time.Minute).Format("15:04")
	var err error
	if cfg.Windows, err = windows.Parse(spec, time.UTC); err != nil {
		t.Fatal(err)
	}
	runAgent(t, h, cfg)
	waitFor(t, 10*time.Second, "a heartbeat", func() bool { hbs, _, _ := h.snapshot(); return len(hbs) >= 1 })
	hbs, _, _ := h.snapshot()
	if hbs[0].Available {
		t.Errorf("available outside the window %s", spec)
	}
}

// TestHeartbeatBackoff: while the hub fails, the agent retries with a
// growing wait, then carries on at its interval.
func TestHeartbeatBackoff(t *testing.T) {
	h := newFakeHub(t)
	h.failNext = 4
	cfg := testConfig(t)
	cfg.SampleInterval = 10 * time.Second // only retries come quickly
	a := runAgent(t, h, cfg)
	waitFor(t, 10*time.Second, "a heartbeat after 4 failures", func() bool { hbs, _, _ := h.snapshot(); return len(hbs) >= 1 })
	_, attempts, _ := h.snapshot()
	if len(attempts) != 5 {
		t.Fatalf("%d attempts, want 5", len(attempts))
	}
	// Waits: 20, 40, 80, 160ms, each ±20 %.
	for i, want := range []time.Duration{20, 40, 80, 160} {
		want *= time.Millisecond
		if got := attempts[i+1].Sub(attempts[i]); got < want*8/10 {
			t.Errorf("wait after failure %d: %s, want at least %s", i+1, got, want*8/10)
		}
	}
	s := a.Stats()
	if s.Failures != 4 || s.Heartbeats != 1 || !strings.Contains(s.LastError, "unavailable: hub is restarting") {
		t.Errorf("stats %+v", s)
	}
}

func TestHeartbeatUnauthenticated(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t)
	if _, err := Join(context.Background(), cfg, h.URL, "enrol-123", Settings{}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.agentToken = "revoked"
	h.mu.Unlock()
	a := runAgent(t, h, cfg)
	waitFor(t, 10*time.Second, "2 attempts", func() bool { _, at, _ := h.snapshot(); return len(at) >= 2 })
	if s := a.Stats(); s.Heartbeats != 0 || !strings.Contains(s.LastError, "401: unauthenticated") {
		t.Errorf("stats %+v", s)
	}
}

func TestHeartbeatRecheck(t *testing.T) {
	h := newFakeHub(t)
	h.recheckAt = 2
	a := runAgent(t, h, testConfig(t))
	waitFor(t, 10*time.Second, "4 heartbeats", func() bool { hbs, _, _ := h.snapshot(); return len(hbs) >= 4 })
	hbs, _, _ := h.snapshot()
	for i, hb := range hbs[:4] {
		if (hb.Recheck != nil) != (i == 2) {
			t.Errorf("heartbeat %d: recheck %+v; want one in heartbeat 2 only", i, hb.Recheck)
		}
	}
	if r := hbs[2].Recheck; r == nil || r.CPUScore <= 0 || r.MemoryMBps <= 0 || r.RanAt.IsZero() {
		t.Errorf("re-check %+v", r)
	}
	if a.Stats().Rechecks != 1 {
		t.Errorf("stats %+v", a.Stats())
	}
}

func TestNodeMeta(t *testing.T) {
	st := &State{Join: agentapi.JoinReply{MachineID: "m-1", AccountID: "acct-from-reply",
		Nomad: agentapi.NomadJoin{Meta: map[string]string{agentapi.MetaAccount: "acct-from-hub", agentapi.MetaAgentVersion: "9.9"}}},
		Offer: agentapi.Offer{Region: "eu-west", FloorCPU: 42}}
	m := NodeMeta(st)
	want := map[string]string{agentapi.MetaAccount: "acct-from-hub", agentapi.MetaMachine: "m-1", agentapi.MetaRegion: "eu-west",
		agentapi.MetaFloorCPU: "42", agentapi.MetaAgentVersion: Version}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("meta %s = %q, want %q", k, m[k], v)
		}
	}
	if st.Join.Nomad.Meta[agentapi.MetaAgentVersion] != "9.9" {
		t.Error("NodeMeta changed the reply's map")
	}
}
