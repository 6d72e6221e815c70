package nomadclient

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenConfig is host-independent: its chroot is given.
func goldenConfig() Config {
	return Config{
		Name:       "contrib-7f3a",
		Servers:    []string{"hub.example.org:4647", "10.0.0.2:4647"},
		NodePool:   "spiceroute",
		Datacenter: "eu-west-1",
		Meta: map[string]string{
			agentapi.MetaAccount:      "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
			agentapi.MetaRegion:       "eu-west",
			agentapi.MetaFloorCPU:     "30469",
			agentapi.MetaAgentVersion: "0.1.0",
		},
		DataDir:          "/var/lib/spiceroute-agent/nomad",
		HTTPPort:         4656,
		ReservedCPUMHz:   500,
		ReservedMemoryMB: 1024,
		ChrootEnv:        map[string]string{"/bin": "/bin", "/lib64": "/lib64", "/usr/bin": "/usr/bin"},
		LogFile:          "/var/lib/spiceroute-agent/nomad.log",
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}

func TestHCLGolden(t *testing.T) {
	hcl, err := goldenConfig().HCL()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "client.hcl", hcl)
	for _, must := range []string{
		`"fingerprint.denylist" = "` + strings.Join(nomadagent.DeniedFingerprinters, ",") + `"`,
		"plugin \"raw_exec\" {\n  config {\n    enabled = false",
		"reserved {\n    cpu    = 500\n    memory = 1024\n  }",
		`servers   = ["hub.example.org:4647", "10.0.0.2:4647"]`,
		`node_pool = "spiceroute"`,
		"http = \"127.0.0.1\"",
	} {
		if !strings.Contains(hcl, must) {
			t.Errorf("configuration lacks %q", must)
		}
	}
	if strings.Contains(hcl, "intro") && strings.Contains(hcl, "eyJ") {
		t.Error("configuration carries a token")
	}
}

func TestUnitsGolden(t *testing.T) {
	u := Unit{NomadBinary: "/usr/local/bin/nomad", ConfigPath: "/etc/spiceroute/nomad-client.hcl",
		EnvFile: "/etc/spiceroute/nomad-client.env", NodeName: "contrib-7f3a"}
	golden(t, "nomad-spiceroute.service", u.NomadUnit())
	golden(t, "spiceroute-agent.service", AgentUnit("/usr/local/bin/spice", "/var/lib/spiceroute-agent"))
	if got, want := IntroEnvFile("eyJhbGciOi.x.y"), "NOMAD_CLIENT_INTRO_TOKEN=eyJhbGciOi.x.y\n"; got != want {
		t.Errorf("IntroEnvFile = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"NoName":           func(c *Config) { c.Name = "" },
		"NoServers":        func(c *Config) { c.Servers = nil },
		"QuoteInServer":    func(c *Config) { c.Servers = []string{`a" b`} },
		"RelativeDataDir":  func(c *Config) { c.DataDir = "nomad" },
		"PortOutOfRange":   func(c *Config) { c.HTTPPort = 70000 },
		"NegativeReserved": func(c *Config) { c.ReservedMemoryMB = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := goldenConfig()
			mut(&c)
			if _, err := c.HCL(); err == nil {
				t.Error("HCL accepted an invalid config")
			}
		})
	}
}

func TestFromJoin(t *testing.T) {
	j := agentapi.NomadJoin{Servers: []string{"h:4647"}, NodeName: "n1", NodePool: "p", Datacenter: "dc", Meta: map[string]string{"k": "v"}}
	c := FromJoin(j, agentapi.Offer{ReservedCPUMHz: 100, ReservedMemoryMB: 200}, "/d", 5000)
	if c.Name != "n1" || c.NodePool != "p" || c.Datacenter != "dc" || c.Meta["k"] != "v" || c.ReservedCPUMHz != 100 ||
		c.ReservedMemoryMB != 200 || c.DataDir != "/d" || c.HTTPPort != 5000 || c.Servers[0] != "h:4647" {
		t.Errorf("FromJoin = %+v", c)
	}
	j.Meta["k"], j.Servers[0] = "changed", "changed"
	if c.Meta["k"] != "v" || c.Servers[0] != "h:4647" {
		t.Error("FromJoin shares the reply's map or slice")
	}
}

// nomadBinary is the real nomad, as nomadtest finds it.
func nomadBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(nomadagent.BinEnv); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "bin", "nomad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no nomad binary at %s (%v): run `make tools`, or set %s", p, err, nomadagent.BinEnv)
	}
	return p
}

// TestHCLValidatesWithNomad: Nomad itself accepts the rendered
// configuration, with this host's lean chroot.
func TestHCLValidatesWithNomad(t *testing.T) {
	bin := nomadBinary(t)
	c := goldenConfig()
	c.ChrootEnv = nil // this host's nomadagent.LeanChrootEnv
	c.DataDir = t.TempDir()
	hcl, err := c.HCL()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "config", "validate", path)
	cmd.Env = nomadagent.Env()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Configuration is valid") {
		t.Fatalf("nomad config validate: %v\n%s\n--- config ---\n%s", err, out, hcl)
	}
	// And it is not a validator that accepts anything.
	bad := strings.Replace(hcl, "reserved {", "reserved {\n    bogus = 1", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "config", "validate", path)
	cmd.Env = nomadagent.Env()
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("nomad config validate accepted an unknown key:\n%s", out)
	}
}
