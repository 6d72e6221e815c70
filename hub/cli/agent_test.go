package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

func TestAgentFloor(t *testing.T) {
	out := spice(t, nil, "agent", "floor", "-watts", "65", "-cores", "8", "-kwh-price", "0.30", "-rate", "10").ok(t)
	contains(t, out, "Proposed floor     0.030469 SP per core-hour", "Join with: -floor 0.030469")
	// EUR per SP is the inverse rate: 0.1 EUR per SP is 10 SP per EUR.
	out = spice(t, nil, "agent", "floor", "-watts", "65", "-cores", "8", "-kwh-price", "0.30", "-eur-per-sp", "0.1", "-json").ok(t)
	contains(t, out, `"floor_cpu_core_hour":30469`, `"power_cost_core_hour":24375`)
	spice(t, nil, "agent", "floor", "-kwh-price", "0.30").fails(t, 1, "exchange rate")
	spice(t, nil, "agent", "floor", "-rate", "10").fails(t, 2, "-kwh-price is required")
}

// TestAgentJoinPrintConfig joins a hub's agent API (a stand-in speaking
// agentapi) and prints the Nomad client configuration and units instead of
// running Nomad.
func TestAgentJoinPrintConfig(t *testing.T) {
	var got agentapi.JoinRequest
	used := false // the enrolment token is single-use
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.JoinRequest
		if r.URL.Path != "/api/agent/join" || json.NewDecoder(r.Body).Decode(&req) != nil || req.EnrolmentToken != "enrol-1" || used {
			http.Error(w, `{"error":{"code":"enrolment_token_invalid","message":"no"}}`, 401)
			return
		}
		got, used = req, true
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(agentapi.JoinReply{MachineID: "m-9", AgentToken: "tok", AccountID: "acct-9",
			Nomad: agentapi.NomadJoin{Servers: []string{"10.1.2.3:4647"}, IntroToken: "jwt-intro", NodeName: "node-9", NodePool: "spiceroute"}})
	}))
	defer hub.Close()
	dir := filepath.Join(t.TempDir(), "state")
	out := spice(t, nil, "agent", "join", hub.URL, "-token", "enrol-1", "-region", "eu-west", "-floor", "0.05",
		"-reserve-memory", "256", "-window", "22:00-07:00", "-tz", "Europe/Berlin", "-state-dir", dir, "-print-config").ok(t)
	contains(t, out, `servers   = ["10.1.2.3:4647"]`, `node_pool = "spiceroute"`, `"spiceroute_floor_cpu_core_hour" = "50000"`,
		"memory = 256", "nomad-spiceroute.service", "EnvironmentFile="+filepath.Join(dir, "nomad-client.env"),
		"agent run -state-dir "+dir+" -manage-nomad=false")
	if got.Offer.FloorCPU != 50000 || got.Offer.Region != "eu-west" || got.Offer.ReservedMemoryMB != 256 {
		t.Errorf("offer %+v", got.Offer)
	}
	env, err := os.ReadFile(filepath.Join(dir, "nomad-client.env"))
	if err != nil || string(env) != "NOMAD_CLIENT_INTRO_TOKEN=jwt-intro\n" {
		t.Errorf("env file %q, %v", env, err)
	}
	// The enrolment token is spent: another machine joining with it gets
	// the hub's error.
	dir2 := filepath.Join(t.TempDir(), "state")
	spice(t, nil, "agent", "join", hub.URL, "-token", "enrol-1", "-region", "eu-west", "-floor", "0.05", "-state-dir", dir2, "-print-config").
		fails(t, 1, "enrolment_token_invalid")
	// And this machine has joined already.
	spice(t, nil, "agent", "join", hub.URL, "-token", "enrol-2", "-region", "eu-west", "-floor", "0.05", "-state-dir", dir, "-print-config").
		fails(t, 1, "already joined")
	spice(t, nil, "agent", "join", hub.URL, "-token", "enrol-1", "-region", "eu-west", "-floor", "0.0000001", "-state-dir", dir, "-print-config").
		fails(t, 1, "at most 6 decimals")
	spice(t, nil, "agent", "join", hub.URL, "-region", "eu-west").fails(t, 2, "-token")
}
