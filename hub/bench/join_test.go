package bench_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/bench"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// TestJoin runs `spice bench join -runs 1` in process against a real stack
// (PostgreSQL, the hub's Nomad server, a hub) with the real `spice agent
// join` and `nomad agent`, and checks outcomes only: both sides' nodes
// became ready with a positive time, the table was printed, and nothing is
// left running or mounted. It asserts no time: that is the benchmark's to
// print.
func TestJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, a Nomad server and two Nomad clients")
	}
	tmp, err := os.MkdirTemp("", "bench-join-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	var out bytes.Buffer
	res, err := bench.Join(context.Background(), bench.JoinConfig{SpiceBin: spiceBin(t), NomadBin: nomadBin(), Runs: 1, TempDir: tmp,
		PolicyFile: "../../policies/admission.hcl"}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Agent) != 1 || res.Agent[0] <= 0 || len(res.Nomad) != 1 || res.Nomad[0] <= 0 {
		t.Errorf("durations: agent %v, nomad %v; want one positive each", res.Agent, res.Nomad)
	}
	if len(res.AgentNodes) != 1 || res.AgentNodes[0] == "" || len(res.NomadNodes) != 1 || res.NomadNodes[0] == "" {
		t.Errorf("nodes that became ready: agent %q, nomad %q", res.AgentNodes, res.NomadNodes)
	}
	if res.Ratio <= 0 {
		t.Errorf("ratio %g", res.Ratio)
	}
	for _, want := range []string{"spice agent join → node ready", "nomad agent (client, intro token) → node ready", "agent / nomad = "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output has no %q", want)
		}
	}

	if ps := nomadagent.Descendants(os.Getpid()); len(ps) > 0 {
		t.Errorf("processes left running below the test: %v", ps)
	}
	if ps := nomadagent.ProcessesUnder(tmp); len(ps) > 0 {
		t.Errorf("processes left running in %s:\n%s", tmp, strings.Join(ps, "\n"))
	}
	if ms := mountsUnder(tmp); len(ms) > 0 {
		t.Errorf("mounts left under %s: %q", tmp, ms)
	}
}

// nomadBin is $SPICE_NOMAD_BIN (set by `make test`), else the one `make
// tools` builds.
func nomadBin() string {
	if p := os.Getenv(nomadagent.BinEnv); p != "" {
		return p
	}
	return "../../bin/nomad"
}

// spiceBin is $SPICE_BIN (set by `make test`), else one built for the test.
func spiceBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SPICE_BIN"); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "spice")
	if out, err := exec.Command("go", "build", "-o", p, "github.com/spiceroute/spiceroute").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

// mountsUnder lists the mount points at or below dir (proc(5) mountinfo,
// field 5).
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
