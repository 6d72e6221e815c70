// Package contrib is the hub's side of contributors' machines: single-use
// enrolment tokens, the join of a machine's agent (agent/agentapi), its
// heartbeats (host metrics, round-trip times, availability) and the
// reputation the hub computes from what it observes.
//
// # Joining
//
// An operator issues an enrolment token for a contributor (Enrol). The
// contributor's agent presents it once (Join): the hub checks it, finds or
// opens the contributor's Spice account, asks Nomad for a client
// introduction token scoped to the machine's node name and the hub's node
// pool, and then, in one database transaction, burns the enrolment token,
// registers the machine and stores the hash of the machine's own agent
// token. A token that was used, expired or never existed gets the same
// answer, so probing learns nothing.
//
// Agent tokens are API tokens of role "machine" whose principal is the
// machine ("machine-<id>"): they own no account, so a token stolen from a
// machine can move no Spice; the API lets them reach /api/agent/ only, and
// a heartbeat is accepted only for the token's own machine.
package contrib

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Codes of errors contributors and agents see.
const (
	// CodeEnrolmentInvalid: the enrolment token is unknown, used or expired.
	CodeEnrolmentInvalid coded.Code = "enrolment_invalid"
	// CodeInvalid: a field of a request is out of range.
	CodeInvalid coded.Code = "invalid"
	// CodeForbidden: an agent reported for a machine that is not its own.
	CodeForbidden coded.Code = "forbidden"
	// CodeNotFound: no such machine (or not the caller's).
	CodeNotFound coded.Code = "not_found"
)

// Machine is a contributor's machine as the hub knows it.
type Machine struct {
	ID       ledger.ID `json:"id"`
	Owner    string    `json:"owner"`
	Account  ledger.ID `json:"account"`
	NodeName string    `json:"node_name"`
	// NodeID is the machine's Nomad node, once its client registered.
	NodeID        string              `json:"node_id,omitempty"`
	Region        string              `json:"region"`
	FloorCPU      ledger.Amount       `json:"floor_cpu_core_hour"`
	Host          agentapi.Machine    `json:"host"`
	Offer         agentapi.Offer      `json:"offer"`
	AgentVersion  string              `json:"agent_version"`
	JoinBenchmark agentapi.Benchmark  `json:"join_benchmark"`
	LastBenchmark *agentapi.Benchmark `json:"last_benchmark,omitempty"`
	JoinedAt      time.Time           `json:"joined_at"`
	LastHeartbeat time.Time           `json:"last_heartbeat,omitempty"`
	Metrics       *agentapi.Metrics   `json:"metrics,omitempty"`
	// RTT are the round-trip times to regions last published as the node's
	// meta (agentapi.MetaRTTPrefix).
	RTT map[string]int64 `json:"rtt_ms,omitempty"`
	// Available is what the agent last said of its owner's windows.
	Available bool `json:"available"`
	// Excluded is set while the machine's reputation is under the hub's
	// threshold: its node gets no new work.
	Excluded bool `json:"excluded"`
}

// Principal is the machine's API principal, the one its agent token
// authenticates as.
func (m *Machine) Principal() auth.Principal {
	return auth.Principal{Name: MachinePrincipalPrefix + m.ID.String(), Role: auth.RoleMachine}
}

// MachinePrincipalPrefix starts the principal name of every machine.
const MachinePrincipalPrefix = "machine-"

// MachineOf returns the machine a principal is, if it is one.
func MachineOf(p auth.Principal) (ledger.ID, bool) {
	if p.Role != auth.RoleMachine || !strings.HasPrefix(p.Name, MachinePrincipalPrefix) {
		return ledger.ID{}, false
	}
	id, err := ledger.ParseID(strings.TrimPrefix(p.Name, MachinePrincipalPrefix))
	return id, err == nil
}

// Enrolment is an issued enrolment token, stored by its hash.
type Enrolment struct {
	Hash      [32]byte
	Owner     string
	CreatedBy string
	ExpiresAt time.Time
}

// Store keeps enrolments and machines (*postgres.Store). Safe for
// concurrent use.
type Store interface {
	CreateEnrolment(ctx context.Context, e Enrolment) error
	// EnrolmentOwner returns the owner of an unused, unexpired enrolment,
	// or a CodeEnrolmentInvalid error.
	EnrolmentOwner(ctx context.Context, hash [32]byte, now time.Time) (string, error)
	// Join burns the enrolment, registers m and stores the agent token's
	// hash, in one transaction; CodeEnrolmentInvalid if the enrolment was
	// used (or expired) in the meantime.
	Join(ctx context.Context, enrolment [32]byte, m *Machine, agentToken [32]byte, now time.Time) error
	Machine(ctx context.Context, id ledger.ID) (*Machine, error)
	// Machines lists the machines of owner, or every machine for "".
	Machines(ctx context.Context, owner string) ([]*Machine, error)
	// Heartbeat records a heartbeat: the machine's latest metrics and
	// availability, and one beat in the machine's uptime record.
	Heartbeat(ctx context.Context, id ledger.ID, hb agentapi.Heartbeat, at time.Time) error
	SetNodeID(ctx context.Context, id ledger.ID, nodeID string) error
	SetExcluded(ctx context.Context, id ledger.ID, excluded bool) error
	// SetRTT records the round-trip times published as the node's meta.
	SetRTT(ctx context.Context, id ledger.ID, rtt map[string]int64) error
	RecordBenchmark(ctx context.Context, id ledger.ID, b agentapi.Benchmark) error
}

// Node is a machine's Nomad client node, as the hub sees it.
type Node struct {
	ID       string
	Status   string // Nomad's: ready, down, initializing, disconnected
	Eligible bool
	Draining bool
}

// Nomad is what the hub asks of its Nomad cluster for machines
// (*nomad.Scheduler through an adapter). Safe for concurrent use.
type Nomad interface {
	IntroToken(ctx context.Context, nodeName string, ttl time.Duration) (string, error)
	NodeByName(ctx context.Context, name string) (Node, bool, error)
	SetAvailable(ctx context.Context, nodeID string, available bool) error
	SetEligible(ctx context.Context, nodeID string, eligible bool) error
	// ApplyNodeMeta sets dynamic node metadata.
	ApplyNodeMeta(ctx context.Context, nodeID string, meta map[string]string) error
}

// Config configures the contributors' side of a hub.
type Config struct {
	// NomadServers are the Nomad servers' RPC addresses agents join.
	NomadServers []string
	// NodePool is the hub's node pool and Datacenter its machines' Nomad
	// datacenter (default "dc1").
	NodePool, Datacenter string
	// Regions are the regions agents measure their round-trip times to.
	Regions []agentapi.Region
	// EnrolmentTTL is how long an enrolment token is good for (default
	// 24h); IntroTTL how long the Nomad introduction token is (default
	// 30m).
	EnrolmentTTL, IntroTTL time.Duration
	// HeartbeatInterval is how often agents report (default 10s).
	HeartbeatInterval time.Duration
	// RecheckEvery is how often the hub asks a machine to re-run its
	// benchmark (default 24h).
	RecheckEvery time.Duration
	// MinScore is the reputation under which a machine gets no new work
	// (default DefaultMinScore).
	MinScore int
}

func (c Config) withDefaults() Config {
	if c.Datacenter == "" {
		c.Datacenter = "dc1"
	}
	if c.EnrolmentTTL <= 0 {
		c.EnrolmentTTL = 24 * time.Hour
	}
	if c.IntroTTL <= 0 {
		c.IntroTTL = 30 * time.Minute
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.MinScore <= 0 {
		c.MinScore = DefaultMinScore
	}
	if c.RecheckEvery <= 0 {
		c.RecheckEvery = 24 * time.Hour
	}
	return c
}

// Service registers and follows contributors' machines. Safe for
// concurrent use.
type Service struct {
	Store Store
	Nomad Nomad
	// Account returns the owner's contributor account, opening one if the
	// owner has none.
	Account func(ctx context.Context, owner string) (ledger.ID, error)
	Config  Config
	Logger  *slog.Logger
	Now     func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) cfg() Config { return s.Config.withDefaults() }

// EnrolmentPrefix starts every enrolment token.
const EnrolmentPrefix = "spiceenrol_"

// Enrol issues a single-use enrolment token for owner's next machine,
// valid for ttl (0: Config.EnrolmentTTL; at most 30 days). The secret is
// returned once; only its hash is kept.
func (s *Service) Enrol(ctx context.Context, by, owner string, ttl time.Duration) (secret string, expires time.Time, err error) {
	if err := auth.ValidName(owner); err != nil {
		return "", time.Time{}, coded.Errorf(CodeInvalid, "owner: %v", err)
	}
	if ttl == 0 {
		ttl = s.cfg().EnrolmentTTL
	}
	if ttl < time.Minute || ttl > 30*24*time.Hour {
		return "", time.Time{}, coded.Errorf(CodeInvalid, "ttl %s: want between 1m and 720h", ttl)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("contrib: %w", err)
	}
	secret = EnrolmentPrefix + hex.EncodeToString(b[:])
	expires = s.now().Add(ttl).UTC()
	if err := s.Store.CreateEnrolment(ctx, Enrolment{Hash: auth.HashToken(secret), Owner: owner, CreatedBy: by, ExpiresAt: expires}); err != nil {
		return "", time.Time{}, err
	}
	return secret, expires, nil
}

// MaxFloor is the highest price floor a machine may ask, µSP per
// core-hour (1000 SP).
const MaxFloor = 1000 * ledger.MicroPerSpice

// Validate checks a join request's fields.
func Validate(req *agentapi.JoinRequest) error {
	m := req.Machine
	switch {
	case req.EnrolmentToken == "":
		return coded.New(CodeEnrolmentInvalid, "no enrolment token")
	case m.CPUCores < 1 || m.CPUCores > 4096:
		return coded.Errorf(CodeInvalid, "machine: %d CPU cores is out of range", m.CPUCores)
	case m.CPUMHz < 1 || m.CPUMHz > 4096*10_000:
		return coded.Errorf(CodeInvalid, "machine: %d MHz of CPU is out of range", m.CPUMHz)
	case m.MemoryMB < 1 || m.MemoryMB > 1<<32:
		return coded.Errorf(CodeInvalid, "machine: %d MB of memory is out of range", m.MemoryMB)
	case m.DiskMB < 0 || m.DiskMB > 1<<40:
		return coded.Errorf(CodeInvalid, "machine: %d MB of disk is out of range", m.DiskMB)
	case !printable(m.Hostname, 253) || !printable(m.OS, 64) || !printable(m.Arch, 64):
		return coded.New(CodeInvalid, "machine: hostname, os and arch must be 1 to 253 printable characters")
	case !printable(req.AgentVersion, 64):
		return coded.New(CodeInvalid, "agent_version must be 1 to 64 printable characters")
	case req.Offer.FloorCPU < 0 || ledger.Amount(req.Offer.FloorCPU) > MaxFloor:
		return coded.Errorf(CodeInvalid, "offer: floor %d µSP per core-hour is outside 0 to %s", req.Offer.FloorCPU, MaxFloor)
	case req.Offer.ReservedCPUMHz < 0 || req.Offer.ReservedCPUMHz >= m.CPUMHz:
		return coded.Errorf(CodeInvalid, "offer: reserving %d of %d MHz leaves nothing to rent", req.Offer.ReservedCPUMHz, m.CPUMHz)
	case req.Offer.ReservedMemoryMB < 0 || req.Offer.ReservedMemoryMB >= m.MemoryMB:
		return coded.Errorf(CodeInvalid, "offer: reserving %d of %d MB of memory leaves nothing to rent", req.Offer.ReservedMemoryMB, m.MemoryMB)
	}
	if err := agentapi.ValidRegion(req.Offer.Region); err != nil {
		return coded.Errorf(CodeInvalid, "offer: %v", err)
	}
	return validBenchmark(req.Benchmark)
}

func validBenchmark(b agentapi.Benchmark) error {
	if !(b.CPUScore > 0 && b.CPUScore < 1e15) || !(b.MemoryMBps > 0 && b.MemoryMBps < 1e9) {
		return coded.Errorf(CodeInvalid, "benchmark: scores must be positive and finite (cpu %g, memory %g MB/s)", b.CPUScore, b.MemoryMBps)
	}
	return nil
}

func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Join registers a machine presented with an enrolment token.
func (s *Service) Join(ctx context.Context, req agentapi.JoinRequest) (*agentapi.JoinReply, error) {
	if err := Validate(&req); err != nil {
		return nil, err
	}
	cfg := s.cfg()
	now := s.now()
	enrol := auth.HashToken(req.EnrolmentToken)
	owner, err := s.Store.EnrolmentOwner(ctx, enrol, now)
	if err != nil {
		return nil, err
	}
	account, err := s.Account(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("contrib: account of %s: %w", owner, err)
	}
	m := &Machine{ID: ledger.NewID(), Owner: owner, Account: account, Region: req.Offer.Region, FloorCPU: ledger.Amount(req.Offer.FloorCPU),
		Host: req.Machine, Offer: req.Offer, AgentVersion: req.AgentVersion, JoinBenchmark: req.Benchmark, Available: true, JoinedAt: now}
	m.NodeName = NodeName(owner, req.Machine.Hostname, m.ID)
	// The introduction token first: it is worthless unused, whereas the
	// enrolment token, once burnt, cannot be presented again.
	intro, err := s.Nomad.IntroToken(ctx, m.NodeName, cfg.IntroTTL)
	if err != nil {
		return nil, fmt.Errorf("contrib: %w", err)
	}
	secret, hash := auth.NewToken()
	if err := s.Store.Join(ctx, enrol, m, hash, now); err != nil {
		return nil, err
	}
	s.log().Info("contrib: machine joined", "machine", m.ID, "owner", owner, "node", m.NodeName, "region", m.Region, "floor", m.FloorCPU)
	return &agentapi.JoinReply{
		MachineID: m.ID.String(), AgentToken: secret, Owner: owner, AccountID: account.String(),
		Nomad: agentapi.NomadJoin{Servers: cfg.NomadServers, IntroToken: intro, NodeName: m.NodeName, NodePool: cfg.NodePool,
			Datacenter: cfg.Datacenter, Meta: NodeMeta(m)},
		HeartbeatInterval: cfg.HeartbeatInterval,
		Regions:           cfg.Regions,
	}, nil
}

// NodeName is a machine's Nomad node name: its owner, its host name made
// safe, and the start of its ID, so that two machines never share one.
func NodeName(owner, hostname string, id ledger.ID) string {
	var b strings.Builder
	for _, r := range strings.ToLower(hostname) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 24 {
			break
		}
	}
	host := strings.Trim(b.String(), "-")
	if host == "" {
		host = "host"
	}
	return fmt.Sprintf("%s-%s-%s", owner, host, hex.EncodeToString(id[:4]))
}

// NodeMeta is the metadata a machine's Nomad client carries.
func NodeMeta(m *Machine) map[string]string {
	return agentapi.NodeMeta(m.Account.String(), m.ID.String(), m.Region, int64(m.FloorCPU), m.AgentVersion)
}

// Heartbeat records an agent's report for its machine and follows it up:
// it learns the machine's Nomad node, drains or re-enables the node when
// the owner's availability changed, and asks for a benchmark re-check when
// one is due.
func (s *Service) Heartbeat(ctx context.Context, caller auth.Principal, hb agentapi.Heartbeat) (*agentapi.HeartbeatReply, error) {
	id, ok := MachineOf(caller)
	if !ok {
		return nil, coded.New(CodeForbidden, "heartbeats need the machine's agent token")
	}
	if hb.MachineID != id.String() {
		return nil, coded.Errorf(CodeForbidden, "this agent token is for machine %s, not %q", id, hb.MachineID)
	}
	if err := validHeartbeat(&hb); err != nil {
		return nil, err
	}
	if hb.Recheck != nil {
		if err := validBenchmark(*hb.Recheck); err != nil {
			return nil, err
		}
	}
	m, err := s.Store.Machine(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if err := s.Store.Heartbeat(ctx, id, hb, now); err != nil {
		return nil, err
	}
	if hb.Recheck != nil {
		if err := s.Store.RecordBenchmark(ctx, id, *hb.Recheck); err != nil {
			return nil, err
		}
		m.LastBenchmark = hb.Recheck
	}
	if err := s.followNode(ctx, m, hb.Available, hb.RTT); err != nil {
		// The agent's report is recorded; the node catches up next time.
		s.log().Warn("contrib: following the machine's node failed", "machine", id, "err", err)
	}
	cfg := s.cfg()
	last := m.JoinBenchmark.RanAt
	if m.LastBenchmark != nil {
		last = m.LastBenchmark.RanAt
	}
	return &agentapi.HeartbeatReply{Next: cfg.HeartbeatInterval, Recheck: now.Sub(last) >= cfg.RecheckEvery}, nil
}

// followNode records the machine's node once it registered and makes the
// node's eligibility follow the owner's availability.
func (s *Service) followNode(ctx context.Context, m *Machine, available bool, newRTT map[string]int64) error {
	n, ok, err := s.Nomad.NodeByName(ctx, m.NodeName)
	if err != nil || !ok {
		return err
	}
	if n.ID != m.NodeID {
		if err := s.Store.SetNodeID(ctx, m.ID, n.ID); err != nil {
			return err
		}
		m.NodeID = n.ID
	}
	if n.Status != "ready" {
		return nil
	}
	if rtt := rttMeta(m.RTT, newRTT); rtt != nil {
		// Published for matching's affinities, and recorded as published
		// only once Nomad has them: a failed publication is retried at
		// the next heartbeat.
		if err := s.Nomad.ApplyNodeMeta(ctx, n.ID, rtt); err != nil {
			return err
		}
		published := maps.Clone(m.RTT)
		if published == nil {
			published = map[string]int64{}
		}
		for region, ms := range newRTT {
			if _, ok := rtt[agentapi.MetaRTTPrefix+region]; ok {
				published[region] = ms
			}
		}
		if err := s.Store.SetRTT(ctx, m.ID, published); err != nil {
			return err
		}
	}
	switch {
	case !available && !n.Draining && n.Eligible:
		s.log().Info("contrib: availability window closed; draining", "machine", m.ID, "node", n.ID)
		return s.Nomad.SetAvailable(ctx, n.ID, false)
	case available && !m.Excluded && (n.Draining || !n.Eligible):
		s.log().Info("contrib: availability window open; node eligible", "machine", m.ID, "node", n.ID)
		return s.Nomad.SetAvailable(ctx, n.ID, true)
	}
	return nil
}

// rttMeta is the node meta to publish for newly measured round-trip times,
// or nil when none moved by more than RTTChange from what was published.
func rttMeta(old, now map[string]int64) map[string]string {
	var out map[string]string
	for region, ms := range now {
		prev, ok := old[region]
		if ok && abs(ms-prev)*100 <= RTTChangePercent*max(prev, 1) && ms/NearRTTStep == prev/NearRTTStep {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[agentapi.MetaRTTPrefix+region] = fmt.Sprint(ms)
	}
	return out
}

// A measured round-trip time is published again when it moved by more than
// RTTChangePercent or crossed a multiple of NearRTTStep milliseconds.
const (
	RTTChangePercent = 20
	NearRTTStep      = 10
)

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func validHeartbeat(hb *agentapi.Heartbeat) error {
	x := hb.Metrics
	switch {
	case !(x.CPUPercent >= 0 && x.CPUPercent <= 100):
		return coded.Errorf(CodeInvalid, "metrics: cpu_percent %g is outside 0 to 100", x.CPUPercent)
	case !(x.Load1 >= 0 && x.Load5 >= 0 && x.Load15 >= 0 && x.Load1 < 1e6 && x.Load5 < 1e6 && x.Load15 < 1e6):
		return coded.New(CodeInvalid, "metrics: load averages must be between 0 and a million")
	case x.MemUsedMB < 0 || x.MemTotalMB < 0 || x.MemUsedMB > x.MemTotalMB:
		return coded.Errorf(CodeInvalid, "metrics: memory used %d MB of %d", x.MemUsedMB, x.MemTotalMB)
	case x.DiskUsedMB < 0 || x.DiskTotMB < 0 || x.DiskUsedMB > x.DiskTotMB:
		return coded.Errorf(CodeInvalid, "metrics: disk used %d MB of %d", x.DiskUsedMB, x.DiskTotMB)
	case x.IdleSeconds < 0:
		return coded.New(CodeInvalid, "metrics: idle_seconds is negative")
	case len(hb.RTT) > 64:
		return coded.Errorf(CodeInvalid, "rtt_ms: %d regions; at most 64", len(hb.RTT))
	}
	for r, ms := range hb.RTT {
		if err := agentapi.ValidRegion(r); err != nil {
			return coded.Errorf(CodeInvalid, "rtt_ms: %v", err)
		}
		if ms < 0 || ms > 600_000 {
			return coded.Errorf(CodeInvalid, "rtt_ms: %d ms to %s is out of range", ms, r)
		}
	}
	return nil
}

// Machines lists owner's machines ("" for every machine, operators only:
// the API checks).
func (s *Service) Machines(ctx context.Context, owner string) ([]*Machine, error) {
	return s.Store.Machines(ctx, owner)
}

// ParseRegions parses the regions agents measure their round-trip times
// to, as `spice hub -regions` takes them: "name=url,name=url", e.g.
// "eu-west=https://hub.eu.example/healthz".
func ParseRegions(s string) ([]agentapi.Region, error) {
	var out []agentapi.Region
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, u, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("region %q: want name=url", part)
		}
		if err := agentapi.ValidRegion(name); err != nil {
			return nil, err
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("region %s: %q is not an http(s) URL", name, u)
		}
		if seen[name] {
			return nil, fmt.Errorf("region %s named twice", name)
		}
		seen[name] = true
		out = append(out, agentapi.Region{Name: name, PingURL: u})
	}
	return out, nil
}
