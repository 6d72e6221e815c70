package hub_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyBoundaries keeps the layout honest: domain packages import
// no external system's library; only the package for that system does.
func TestDependencyBoundaries(t *testing.T) {
	forbidden := map[string][]string{
		"github.com/spiceroute/spiceroute/hub/ledger":    {"github.com/jackc/", "github.com/labstack/", "github.com/prometheus/"},
		"github.com/spiceroute/spiceroute/hub/translog":  {"github.com/jackc/", "github.com/labstack/", "github.com/spiceroute/spiceroute/hub/ledger"},
		"github.com/spiceroute/spiceroute/hub/coded":     {"github.com/jackc/", "github.com/labstack/", "github.com/spiceroute/spiceroute/hub/ledger"},
		"github.com/spiceroute/spiceroute/hub/auth":      {"github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/audit":     {"github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/client":    {"github.com/jackc/", "github.com/spiceroute/spiceroute/hub/postgres"},
		"github.com/spiceroute/spiceroute/hub/admission": {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/market":    {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/settle":    {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/invoice":   {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/meter":     {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/payout":    {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/hub/contrib":   {"github.com/hashicorp/nomad", "github.com/jackc/", "github.com/labstack/"},
		// The contributor agent runs on contributors' machines: nothing of the
		// hub, its database or its web framework; gopsutil only in hostmetrics.
		"github.com/spiceroute/spiceroute/agent":             {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/agent/agentapi":    {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/", "github.com/shirou/"},
		"github.com/spiceroute/spiceroute/agent/hostmetrics": {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/"},
		"github.com/spiceroute/spiceroute/agent/benchmark":   {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/", "github.com/shirou/"},
		"github.com/spiceroute/spiceroute/agent/energy":      {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/", "github.com/shirou/"},
		"github.com/spiceroute/spiceroute/agent/windows":     {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/", "github.com/shirou/"},
		"github.com/spiceroute/spiceroute/agent/nomadclient": {"github.com/spiceroute/spiceroute/hub", "github.com/jackc/", "github.com/labstack/", "github.com/shirou/"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list -deps %s listed %d packages", pkg, len(deps))
		}
		for _, d := range deps {
			for _, b := range bad {
				if strings.HasPrefix(d, b) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
