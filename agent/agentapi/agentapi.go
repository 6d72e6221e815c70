// Package agentapi is the wire protocol between the contributor agent
// (`spice agent`) and a hub: JSON over HTTP under /api/agent. The hub serves
// it (hub/api) and the agent speaks it (agent); both import these types, and
// this package imports nothing of either, so the agent stays free of the
// hub's dependencies.
//
// # Join
//
//	POST /api/agent/join           JoinRequest → JoinReply (201)
//
// No bearer token: the request carries a single-use enrolment token that an
// operator issued for a contributor (POST /api/enrolments). The hub burns
// the token in the same transaction that registers the machine, so a stolen
// token that was already used is worthless, and one that was not is good
// for exactly one machine. The reply carries the machine's own agent token
// (shown once, stored hashed) and what the Nomad client needs to join the
// hub's cluster, including a Nomad client introduction token (`nomad node
// intro`, Nomad 1.11) scoped to the machine's node name and the hub's node
// pool.
//
// # Heartbeat
//
//	POST /api/agent/heartbeat      Heartbeat → HeartbeatReply (200)
//
// Authenticated with the agent token (Authorization: Bearer). The hub
// accepts a heartbeat only for the machine the token was issued to.
//
// Amounts are integer micro-Spice (µSP); sizes are MB (10^6 bytes is not
// used: 1 MB = 1024 × 1024 bytes, as in Nomad's resources).
package agentapi

import (
	"fmt"
	"regexp"
	"time"
)

// Meta keys the agent puts on its Nomad client node. The hub's matching
// constrains renters' jobs on them.
const (
	MetaAccount      = "spiceroute_contributor_account" // the contributor's Spice account ID (earnings)
	MetaMachine      = "spiceroute_machine"             // the machine's ID at the hub
	MetaRegion       = "spiceroute_region"              // the region the contributor says it is in
	MetaFloorCPU     = "spiceroute_floor_cpu_core_hour" // the price floor, µSP per core-hour
	MetaAgentVersion = "spiceroute_agent_version"
	// MetaRTTPrefix + region is the measured round-trip time to that
	// region's hub, in whole milliseconds.
	MetaRTTPrefix = "spiceroute_rtt_ms_"
)

// Machine describes the contributor's machine as the agent found it.
type Machine struct {
	Hostname string `json:"hostname"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUCores int    `json:"cpu_cores"`
	// CPUMHz is the total compute, cores × clock, as Nomad counts it.
	CPUMHz   int64 `json:"cpu_mhz"`
	MemoryMB int64 `json:"memory_mb"`
	DiskMB   int64 `json:"disk_mb"`
}

// Benchmark is the short benchmark the agent runs at join and again when
// the hub asks (HeartbeatReply.Recheck). The hub compares re-checks with the
// join result (reputation: benchmark drift).
type Benchmark struct {
	// CPUScore is single-core work units per second (higher is faster).
	CPUScore float64 `json:"cpu_score"`
	// MemoryMBps is memory copy bandwidth in MB/s.
	MemoryMBps float64 `json:"memory_mbps"`
	// Duration is how long the benchmark took.
	Duration time.Duration `json:"duration_ns"`
	RanAt    time.Time     `json:"ran_at"`
}

// Offer is what the contributor offers: its price floor, its region and
// what it keeps for itself.
type Offer struct {
	// Region is where the machine is, e.g. "eu-west". Required.
	Region string `json:"region"`
	// FloorCPU is the lowest price the contributor accepts, µSP per
	// core-hour. Jobs priced below it are never placed on the machine.
	FloorCPU int64 `json:"floor_cpu_core_hour"`
	// ReservedCPUMHz and ReservedMemoryMB are kept for the owner (Nomad
	// client `reserved`).
	ReservedCPUMHz   int64 `json:"reserved_cpu_mhz"`
	ReservedMemoryMB int64 `json:"reserved_memory_mb"`
}

// JoinRequest registers a machine with the hub.
type JoinRequest struct {
	EnrolmentToken string    `json:"enrolment_token"`
	Machine        Machine   `json:"machine"`
	Benchmark      Benchmark `json:"benchmark"`
	Offer          Offer     `json:"offer"`
	AgentVersion   string    `json:"agent_version"`
}

// NomadJoin is what the agent's Nomad client needs to join the hub's
// cluster.
type NomadJoin struct {
	// Servers are the Nomad servers' RPC addresses (host:port).
	Servers []string `json:"servers"`
	// IntroToken is the Nomad client introduction token (a JWT); the agent
	// hands it to the client as NOMAD_CLIENT_INTRO_TOKEN.
	IntroToken string `json:"intro_token"`
	// NodeName is the name the client must register with (the intro token
	// is scoped to it).
	NodeName   string `json:"node_name"`
	NodePool   string `json:"node_pool"`
	Datacenter string `json:"datacenter"`
	// Meta is the node metadata the client must carry (the Meta* keys).
	Meta map[string]string `json:"meta"`
}

// Region is a region the hub knows, with an address the agent measures its
// round-trip time to.
type Region struct {
	Name    string `json:"name"`
	PingURL string `json:"ping_url"`
}

// JoinReply answers a join.
type JoinReply struct {
	MachineID string `json:"machine_id"`
	// AgentToken authenticates the agent's later requests. Shown once.
	AgentToken string `json:"agent_token"`
	// Owner is the contributor the enrolment token was issued for, and
	// AccountID its Spice account, which earns for the machine's work.
	Owner     string    `json:"owner"`
	AccountID string    `json:"account_id"`
	Nomad     NomadJoin `json:"nomad"`
	// HeartbeatInterval is how often the hub wants a heartbeat.
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
	Regions           []Region      `json:"regions"`
}

// Metrics is one sample of the host, taken by agent/hostmetrics.
type Metrics struct {
	SampledAt  time.Time `json:"sampled_at"`
	CPUPercent float64   `json:"cpu_percent"` // all cores, 0–100
	Load1      float64   `json:"load1"`
	Load5      float64   `json:"load5"`
	Load15     float64   `json:"load15"`
	MemUsedMB  int64     `json:"mem_used_mb"`
	MemTotalMB int64     `json:"mem_total_mb"`
	DiskUsedMB int64     `json:"disk_used_mb"`
	DiskTotMB  int64     `json:"disk_total_mb"`
	NetRxBytes uint64    `json:"net_rx_bytes"` // since boot, all interfaces but loopback
	NetTxBytes uint64    `json:"net_tx_bytes"`
	// IdleSeconds is how long the machine's owner has not used it (no
	// keyboard or mouse input on a desktop; 0 when unknown).
	IdleSeconds int64 `json:"idle_seconds"`
}

// Heartbeat is the agent's periodic report.
type Heartbeat struct {
	MachineID string  `json:"machine_id"`
	Metrics   Metrics `json:"metrics"`
	// RTT is the measured round-trip time to each region, in milliseconds.
	RTT map[string]int64 `json:"rtt_ms,omitempty"`
	// Available is false outside the owner's availability windows: the hub
	// then drains the machine's node and makes it ineligible for new work.
	Available bool `json:"available"`
	// Recheck is a benchmark re-run, when the hub asked for one.
	Recheck *Benchmark `json:"recheck,omitempty"`
}

// HeartbeatReply answers a heartbeat.
type HeartbeatReply struct {
	// Next is when the hub wants the next heartbeat, from now.
	Next time.Duration `json:"next_ns"`
	// Recheck asks the agent to re-run its benchmark and send the result
	// with the next heartbeat.
	Recheck bool `json:"recheck"`
}

// regionName is what a region name may be: lower-case words joined by
// hyphens, as in Nomad's own region and datacenter names.
var regionName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidRegion checks a region name.
func ValidRegion(r string) error {
	if !regionName.MatchString(r) {
		return fmt.Errorf("region %q: want lower-case letters, digits and hyphens, starting with a letter (e.g. eu-west)", r)
	}
	return nil
}

// NodeMeta is the metadata a contributor machine's Nomad client carries:
// account and floor always, the others when not empty.
func NodeMeta(account, machine, region string, floorCPU int64, agentVersion string) map[string]string {
	m := map[string]string{MetaAccount: account, MetaFloorCPU: fmt.Sprint(floorCPU)}
	for k, v := range map[string]string{MetaMachine: machine, MetaRegion: region, MetaAgentVersion: agentVersion} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}
