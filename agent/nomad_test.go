package agent

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/agent/nomadclient"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// TestRunJoinsNomadCluster: two agents on this machine join a real Nomad
// server, each with its own introduction token, state directory and HTTP
// port, and their nodes become ready in the hub's pool with the agent's
// metadata and the owner's reservation. Each client listens on its HTTP
// port only.
//
// The server's client_introduction enforcement is "warn", not "strict":
// the dev agent's own in-process client has no introduction token and
// would be refused. Under "warn" a node without a token registers with a
// logged warning, and one with a token that does not match is refused; so
// the agents' nodes registering without a warning shows their tokens were
// presented and matched.
func TestRunJoinsNomadCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the Nomad dev agent's exec driver needs root")
	}
	srv := nomadtest.NewTestServer(t, nomadtest.WithHCL("server {\n  client_introduction {\n    enforcement = \"warn\"\n  }\n}\n"))
	const pool = "spiceroute-test"
	if _, err := srv.Client.NodePools().Register(&api.NodePool{Name: pool}, nil); err != nil {
		t.Fatal(err)
	}
	type machine struct {
		name  string
		agent *Agent
		port  int
	}
	var machines []*machine
	for _, name := range []string{"contrib-a", "contrib-b"} {
		intro, _, err := srv.Client.ACLIdentity().CreateClientIntroductionToken(
			&api.ACLIdentityClientIntroductionTokenRequest{NodeName: name, NodePool: pool, TTL: 10 * time.Minute}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := newFakeHub(t)
		h.nomad = agentapi.NomadJoin{Servers: []string{fmt.Sprintf("127.0.0.1:%d", srv.RPCPort)}, IntroToken: intro.JWT,
			NodeName: name, NodePool: pool, Meta: map[string]string{agentapi.MetaAccount: "acct-" + name}}
		cfg := testConfig(t)
		cfg.SampleInterval = time.Second
		cfg.ManageNomad = true
		cfg.NomadBinary = nomadBin(t)
		cfg.NomadHTTPPort = freePort(t)
		machines = append(machines, &machine{name: name, agent: runAgent(t, h, cfg), port: cfg.NomadHTTPPort})
		t.Cleanup(func() {
			if t.Failed() {
				for _, f := range []string{"nomad.log", "nomad-stderr.log", "nomad-client.hcl"} {
					b, _ := os.ReadFile(filepath.Join(cfg.StateDir, f))
					if len(b) > 8000 {
						b = b[len(b)-8000:]
					}
					t.Logf("%s %s:\n%s", name, f, b)
				}
			}
		})
	}

	for _, m := range machines {
		var node *api.Node
		waitFor(t, 90*time.Second, m.name+" ready", func() bool {
			stubs, _, err := srv.Client.Nodes().List(&api.QueryOptions{Filter: fmt.Sprintf("Name == %q", m.name)})
			if err != nil || len(stubs) != 1 || stubs[0].Status != api.NodeStatusReady {
				return false
			}
			node, _, err = srv.Client.Nodes().Info(stubs[0].ID, nil)
			return err == nil
		})
		if node.NodePool != pool || node.Meta[agentapi.MetaAccount] != "acct-"+m.name || node.Meta[agentapi.MetaAgentVersion] != Version ||
			node.Meta[agentapi.MetaMachine] != "m-1" || node.Meta[agentapi.MetaFloorCPU] != "30469" {
			t.Errorf("%s: pool %s, meta %v", m.name, node.NodePool, node.Meta)
		}
		if r := node.ReservedResources; r == nil || r.Cpu.CpuShares != 100 || r.Memory.MemoryMB != 64 {
			t.Errorf("%s: reserved %+v, want 100 MHz and 64 MB", m.name, node.ReservedResources)
		}
		if d := node.Drivers["raw_exec"]; d != nil && d.Detected {
			t.Errorf("%s: raw_exec detected", m.name)
		}
		pid := m.agent.nomad.(*nomadclient.Supervisor).PID()
		if ports := listeningPorts(t, pid); !slices.Equal(ports, []int{m.port}) {
			t.Errorf("%s: nomad client %d listens on %v, want only its HTTP port %d", m.name, pid, ports, m.port)
		}
	}
	log, err := os.ReadFile(srv.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var devWarned bool
	for _, line := range strings.Split(string(log), "\n") {
		if !strings.Contains(line, "introduction") {
			continue
		}
		if strings.Contains(line, "node_name=nomad-dev-") {
			devWarned = true
		}
		for _, m := range machines {
			if strings.Contains(line, "node_name="+m.name) {
				t.Errorf("server log: %s", line)
			}
		}
	}
	if !devWarned {
		t.Error("the server did not warn about its own client registering without an introduction token: enforcement not in effect?")
	}
}

func nomadBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(nomadtest.BinEnv); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "bin", "nomad"))
	if err != nil {
		t.Fatal(err)
	}
	return p
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

// listeningPorts are the TCP ports process pid listens on (proc(5):
// /proc/net/tcp{,6} rows in state 0A, LISTEN, whose socket inode is one of
// the process's descriptors).
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && !slices.Contains(ports, int(p)) {
				ports = append(ports, int(p))
			}
		}
		file.Close()
	}
	slices.Sort(ports)
	return ports
}
