// Package nomadclient is the contributor machine's Nomad client: the agent
// configuration that joins it to a hub's cluster (Config.HCL), a systemd
// unit for operators who run Nomad themselves (Unit), and a Supervisor that
// runs `nomad agent -config ...` as a child of the SpiceRoute agent.
//
// The client is client-only (no server), and is set up like
// scheduler/nomadagent's dev agent where it matters on a contributor's
// machine: the cloud fingerprinters are denied (nomadagent.
// DeniedFingerprinters), raw_exec is disabled (it would run renters' tasks
// unisolated on the owner's machine), the exec driver's chroot is the lean
// one (nomadagent.LeanChrootEnv: no secrets of /etc, fast to build), and
// its HTTP API listens on loopback only. ACLs are enabled, as on the hub's
// servers.
//
// The Nomad client introduction token (Nomad 1.11: `nomad node intro
// create`) is never written into the configuration: the Supervisor passes
// it in the environment as NOMAD_CLIENT_INTRO_TOKEN, and the systemd unit
// reads it from an EnvironmentFile. The client needs it only for its first
// registration; afterwards it authenticates with the node identity it
// keeps in its data directory.
//
// A client-only agent listens on its HTTP port alone (it dials the
// servers' RPC port and needs no RPC or Serf port of its own), so two
// agents on one machine need only distinct data directories and HTTP ports.
package nomadclient

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// IntroTokenEnv is the environment variable the Nomad agent reads its client
// introduction token from.
const IntroTokenEnv = "NOMAD_CLIENT_INTRO_TOKEN"

// DefaultHTTPPort is the client's HTTP port unless Config says otherwise.
// It is not Nomad's 4646, so a contributor's own Nomad keeps that.
const DefaultHTTPPort = 4656

// Config is a Nomad client agent configuration.
type Config struct {
	// Name is the node's name; the introduction token is scoped to it.
	// Required.
	Name string
	// Servers are the hub's Nomad servers' RPC addresses (host:port).
	// Required.
	Servers []string
	// NodePool is the node's pool; the introduction token is scoped to it.
	// Empty leaves Nomad's "default".
	NodePool string
	// Datacenter is the node's datacenter; empty leaves Nomad's "dc1".
	Datacenter string
	// Meta is the node's metadata (agentapi.Meta* keys).
	Meta map[string]string
	// DataDir is the agent's data_dir, an absolute path; the allocations
	// live in DataDir/alloc. Required.
	DataDir string
	// HTTPAddr and HTTPPort are where the agent's HTTP API listens
	// (default 127.0.0.1 and DefaultHTTPPort).
	HTTPAddr string
	HTTPPort int
	// ReservedCPUMHz and ReservedMemoryMB are kept for the owner (client
	// `reserved`): Nomad never places work on them.
	ReservedCPUMHz   int64
	ReservedMemoryMB int64
	// ChrootEnv is the exec driver's chroot; nil means
	// nomadagent.LeanChrootEnv().
	ChrootEnv map[string]string
	// LogLevel is the agent's log level (default INFO).
	LogLevel string
	// LogFile, when set, is where the agent writes its log, rotated at
	// 10 MB with 3 old files kept.
	LogFile string
}

// FromJoin is the client configuration for a hub's join reply, with the
// owner's reservations from offer.
func FromJoin(j agentapi.NomadJoin, offer agentapi.Offer, dataDir string, httpPort int) Config {
	return Config{
		Name:             j.NodeName,
		Servers:          slices.Clone(j.Servers),
		NodePool:         j.NodePool,
		Datacenter:       j.Datacenter,
		Meta:             maps.Clone(j.Meta),
		DataDir:          dataDir,
		HTTPPort:         httpPort,
		ReservedCPUMHz:   offer.ReservedCPUMHz,
		ReservedMemoryMB: offer.ReservedMemoryMB,
	}
}

// AllocDir is where the client keeps its allocations.
func (c Config) AllocDir() string { return filepath.Join(c.DataDir, "alloc") }

// Validate checks what Nomad would only find at start.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("no node name"))
	}
	if len(c.Servers) == 0 {
		errs = append(errs, errors.New("no Nomad servers to join"))
	}
	for _, s := range c.Servers {
		if s == "" || strings.ContainsAny(s, "\"\\\n ") {
			errs = append(errs, fmt.Errorf("server address %q", s))
		}
	}
	if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data dir %q is not an absolute path", c.DataDir))
	}
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("HTTP port %d", c.HTTPPort))
	}
	if c.ReservedCPUMHz < 0 || c.ReservedMemoryMB < 0 {
		errs = append(errs, errors.New("negative reservation"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nomadclient: config: %w", err)
	}
	return nil
}

// HCL renders the agent configuration file.
func (c Config) HCL() (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1"
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = DefaultHTTPPort
	}
	if c.LogLevel == "" {
		c.LogLevel = "INFO"
	}
	if c.ChrootEnv == nil {
		c.ChrootEnv = nomadagent.LeanChrootEnv()
	}
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("# Nomad client of a SpiceRoute contributor machine, written by `spice agent`\n")
	b.WriteString("# (agent/nomadclient). The client introduction token is not in this file:\n")
	fmt.Fprintf(&b, "# it comes from the environment (%s).\n", IntroTokenEnv)
	fmt.Fprintf(&b, "name                 = %s\n", q(c.Name))
	if c.Datacenter != "" {
		fmt.Fprintf(&b, "datacenter           = %s\n", q(c.Datacenter))
	}
	fmt.Fprintf(&b, "data_dir             = %s\n", q(c.DataDir))
	fmt.Fprintf(&b, "log_level            = %s\n", q(c.LogLevel))
	if c.LogFile != "" {
		fmt.Fprintf(&b, "log_file             = %s\n", q(c.LogFile))
		b.WriteString("log_rotate_bytes     = 10485760\nlog_rotate_max_files = 3\n")
	}
	b.WriteString("disable_update_check = true\n\n")
	fmt.Fprintf(&b, "addresses {\n  http = %s\n}\n\n", q(c.HTTPAddr))
	// Nomad refuses to default an advertised address to loopback; the
	// client's HTTP API is for this machine only (renters reach their
	// allocations' logs through the servers).
	fmt.Fprintf(&b, "advertise {\n  http = %s\n}\n\n", q(c.HTTPAddr))
	fmt.Fprintf(&b, "ports {\n  http = %d\n}\n\n", c.HTTPPort)
	b.WriteString("acl {\n  enabled = true\n}\n\n")
	b.WriteString("server {\n  enabled = false\n}\n\n")
	b.WriteString("client {\n  enabled   = true\n")
	servers := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		servers[i] = q(s)
	}
	fmt.Fprintf(&b, "  servers   = [%s]\n", strings.Join(servers, ", "))
	if c.NodePool != "" {
		fmt.Fprintf(&b, "  node_pool = %s\n", q(c.NodePool))
	}
	fmt.Fprintf(&b, "  alloc_dir = %s\n\n", q(c.AllocDir()))
	fmt.Fprintf(&b, "  options = {\n    \"fingerprint.denylist\" = %s\n  }\n\n",
		q(strings.Join(nomadagent.DeniedFingerprinters, ",")))
	fmt.Fprintf(&b, "  reserved {\n    cpu    = %d\n    memory = %d\n  }\n", c.ReservedCPUMHz, c.ReservedMemoryMB)
	b.WriteString(mapBlock("meta", c.Meta))
	b.WriteString(mapBlock("chroot_env", c.ChrootEnv))
	b.WriteString("}\n\n")
	b.WriteString("# Renters' tasks never run unisolated on the owner's machine.\nplugin \"raw_exec\" {\n  config {\n    enabled = false\n  }\n}\n")
	return b.String(), nil
}

// mapBlock renders a client block of string pairs, keys sorted.
func mapBlock(name string, m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s {\n", name)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "    %s = %s\n", strconv.Quote(k), strconv.Quote(m[k]))
	}
	b.WriteString("  }\n")
	return b.String()
}

// IntroEnvFile is the content of a systemd EnvironmentFile carrying the
// introduction token. Keep it readable by root only (0600).
func IntroEnvFile(token string) string {
	return IntroTokenEnv + "=" + token + "\n"
}

// Unit describes the systemd units for operators who run the Nomad client
// themselves (`spice agent join -print-config`).
type Unit struct {
	NomadBinary string // absolute path of nomad
	ConfigPath  string // the file Config.HCL was written to
	EnvFile     string // the file IntroEnvFile was written to (0600)
	NodeName    string
}

// NomadUnit is a systemd unit running the Nomad client, after HashiCorp's
// own (dist/systemd/nomad.service): SIGINT to stop, only the agent killed
// by systemd (its executors end their tasks), cgroup delegation for the
// task drivers.
func (u Unit) NomadUnit() string {
	return fmt.Sprintf(`[Unit]
Description=Nomad client of SpiceRoute node %[1]s
Documentation=https://developer.hashicorp.com/nomad/docs
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=%[2]s
ExecStart=%[3]s agent -config %[4]s
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
KillSignal=SIGINT
LimitNOFILE=65536
LimitNPROC=infinity
Restart=on-failure
RestartSec=2
TasksMax=infinity
OOMScoreAdjust=-1000
Delegate=yes

[Install]
WantedBy=multi-user.target
`, u.NodeName, u.EnvFile, u.NomadBinary, u.ConfigPath)
}

// AgentUnit is a systemd unit running `spice agent run` beside a Nomad
// client that NomadUnit runs: heartbeats, metrics and availability only.
func AgentUnit(spiceBinary, stateDir string) string {
	return fmt.Sprintf(`[Unit]
Description=SpiceRoute contributor agent (heartbeats; Nomad runs in nomad-spiceroute.service)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=%s agent run -state-dir %s -manage-nomad=false
Restart=on-failure
RestartSec=5
MemoryMax=64M

[Install]
WantedBy=multi-user.target
`, spiceBinary, stateDir)
}
