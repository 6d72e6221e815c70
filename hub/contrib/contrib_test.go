package contrib_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/hubtest"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// do sends a JSON request to the hub and decodes a JSON reply into out
// (if not nil); it returns the status and the raw body.
func do(t *testing.T, h *hubtest.Hub, method, path, token string, body, out any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

func joinRequest(token string) agentapi.JoinRequest {
	return agentapi.JoinRequest{
		EnrolmentToken: token,
		Machine:        agentapi.Machine{Hostname: "Dave's Box.local", OS: "linux", Arch: "amd64", CPUCores: 4, CPUMHz: 12000, MemoryMB: 8192, DiskMB: 100_000},
		Benchmark:      agentapi.Benchmark{CPUScore: 1000, MemoryMBps: 5000, Duration: time.Second, RanAt: time.Now()},
		Offer:          agentapi.Offer{Region: "eu-west", FloorCPU: 30_000, ReservedCPUMHz: 1000, ReservedMemoryMB: 1024},
		AgentVersion:   "test",
	}
}

// TestJoinAndHeartbeat walks a machine through the agent protocol against a
// real hub and Nomad: the operator enrols dave, the machine joins with the
// token and gets a Nomad introduction token and its own agent token, the
// enrolment cannot be used twice, heartbeats land only for the machine's
// own ID, and the agent token reaches nothing but the agent protocol.
func TestJoinAndHeartbeat(t *testing.T) {
	h := hubtest.StartWithNomad(t)
	op := h.Token(t, "olive", auth.RoleOperator)
	dave := h.Token(t, "dave", auth.RoleContributor)

	// Only operators enrol.
	if code, body := do(t, h, "POST", "/api/enrolments", dave, map[string]string{"owner": "dave"}, nil); code != http.StatusForbidden {
		t.Fatalf("a contributor enrolled itself: %d %s", code, body)
	}
	var enrol struct{ Token string }
	if code, body := do(t, h, "POST", "/api/enrolments", op, map[string]string{"owner": "dave"}, &enrol); code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", code, body)
	}

	t.Run("InvalidMachineRefused", func(t *testing.T) {
		req := joinRequest(enrol.Token)
		req.Offer.Region = "EU West"
		if code, body := do(t, h, "POST", "/api/agent/join", "", req, nil); code != http.StatusBadRequest || !strings.Contains(body, "region") {
			t.Fatalf("bad region: %d %s", code, body)
		}
	})

	var join agentapi.JoinReply
	if code, body := do(t, h, "POST", "/api/agent/join", "", joinRequest(enrol.Token), &join); code != http.StatusCreated {
		t.Fatalf("join: %d %s", code, body)
	}
	if parts := strings.Split(join.Nomad.IntroToken, "."); len(parts) != 3 {
		t.Errorf("intro token %q is not a JWT", join.Nomad.IntroToken)
	}
	if join.Owner != "dave" || join.Nomad.NodePool != "spiceroute" || !strings.HasPrefix(join.Nomad.NodeName, "dave-dave-s-box-local-") {
		t.Errorf("join reply: %+v", join)
	}
	meta := join.Nomad.Meta
	if meta[agentapi.MetaFloorCPU] != "30000" || meta[agentapi.MetaRegion] != "eu-west" || meta[agentapi.MetaAccount] != join.AccountID || meta[agentapi.MetaMachine] != join.MachineID {
		t.Errorf("node meta: %v", meta)
	}
	// dave got a contributor account, which earns for the machine.
	acct, err := ledger.ParseID(join.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := h.Store.Account(t.Context(), acct); err != nil || a.Owner != "dave" || a.Kind != ledger.KindContributor {
		t.Fatalf("account: %+v %v", a, err)
	}

	t.Run("EnrolmentIsSingleUse", func(t *testing.T) {
		code, body := do(t, h, "POST", "/api/agent/join", "", joinRequest(enrol.Token), nil)
		if code != http.StatusForbidden || !strings.Contains(body, string(contrib.CodeEnrolmentInvalid)) {
			t.Fatalf("second join with the same token: %d %s", code, body)
		}
		code, body = do(t, h, "POST", "/api/agent/join", "", joinRequest(contrib.EnrolmentPrefix+"00"), nil)
		if code != http.StatusForbidden {
			t.Fatalf("made-up token: %d %s", code, body)
		}
		ms, err := h.Store.Machines(t.Context(), "dave")
		if err != nil || len(ms) != 1 {
			t.Fatalf("dave has %d machines, want 1 (%v)", len(ms), err)
		}
	})

	hb := agentapi.Heartbeat{MachineID: join.MachineID, Available: true, RTT: map[string]int64{"eu-west": 12},
		Metrics: agentapi.Metrics{SampledAt: time.Now(), CPUPercent: 12.5, Load1: 0.5, MemUsedMB: 2000, MemTotalMB: 8192, DiskUsedMB: 10, DiskTotMB: 100}}
	t.Run("Heartbeat", func(t *testing.T) {
		var reply agentapi.HeartbeatReply
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, hb, &reply); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
		if reply.Next <= 0 || reply.Recheck {
			t.Errorf("reply: %+v", reply)
		}
		id, _ := ledger.ParseID(join.MachineID)
		m, err := h.Store.Machine(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		// The round-trip times wait for the machine's node (not there yet).
		if m.Metrics == nil || m.Metrics.CPUPercent != 12.5 || len(m.RTT) != 0 || m.LastHeartbeat.IsZero() {
			t.Errorf("stored machine: %+v", m)
		}
		if beats, err := h.Store.Uptime(t.Context(), id, time.Now().Add(-time.Hour)); err != nil || beats != 1 {
			t.Errorf("uptime beats %d, %v; want 1", beats, err)
		}
	})

	t.Run("HeartbeatForAnotherMachineForbidden", func(t *testing.T) {
		other := hb
		other.MachineID = ledger.NewID().String()
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, other, nil); code != http.StatusForbidden {
			t.Fatalf("heartbeat for another machine: %d %s", code, body)
		}
		// A contributor's own API token is not a machine's.
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", dave, hb, nil); code != http.StatusForbidden {
			t.Fatalf("heartbeat with a contributor token: %d %s", code, body)
		}
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", "", hb, nil); code != http.StatusUnauthorized {
			t.Fatalf("heartbeat without a token: %d %s", code, body)
		}
	})

	t.Run("BadMetricsRefused", func(t *testing.T) {
		bad := hb
		bad.Metrics.MemUsedMB = bad.Metrics.MemTotalMB + 1
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, bad, nil); code != http.StatusBadRequest {
			t.Fatalf("memory used above total: %d %s", code, body)
		}
	})

	t.Run("AgentTokenReachesOnlyTheAgentProtocol", func(t *testing.T) {
		for _, path := range []string{"/api/whoami", "/api/accounts", "/api/accounts/" + join.AccountID, "/api/machines"} {
			if code, body := do(t, h, "GET", path, join.AgentToken, nil, nil); code != http.StatusForbidden {
				t.Errorf("GET %s with an agent token: %d %s", path, code, body)
			}
		}
		transfer := map[string]any{"id": ledger.NewID().String(), "debit_account_id": join.AccountID, "credit_account_id": ledger.NewID().String(), "amount": 1}
		if code, body := do(t, h, "POST", "/api/transfers", join.AgentToken, transfer, nil); code != http.StatusForbidden {
			t.Errorf("transfer with an agent token: %d %s", code, body)
		}
	})

	// A benchmark re-check that comes back 30 % slower than at join is
	// stored and costs the machine reputation (drift beyond the 10 %
	// tolerance: 20 × 20 % / 40 % = 10 points).
	t.Run("SlowerRecheckLowersReputation", func(t *testing.T) {
		slow := hb
		slow.Recheck = &agentapi.Benchmark{CPUScore: 700, MemoryMBps: 5000, Duration: time.Second, RanAt: time.Now()}
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, slow, nil); code != http.StatusOK {
			t.Fatalf("heartbeat with a re-check: %d %s", code, body)
		}
		var m contrib.Reputation
		var got struct {
			Reputation *contrib.Reputation `json:"reputation"`
		}
		got.Reputation = &m
		if code, body := do(t, h, "GET", "/api/machines/"+join.MachineID, dave, nil, &got); code != http.StatusOK {
			t.Fatalf("machine: %d %s", code, body)
		}
		if m.SlowdownBP != 3000 || m.Score != 90 || !strings.Contains(strings.Join(m.Reasons, ";"), "30.00% slower than at join") {
			t.Fatalf("reputation after a 30%% slower re-check: %+v", m)
		}
		// The next heartbeat carries no re-check; the slower result stands.
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, hb, nil); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
	})

	t.Run("MachinesWithReputation", func(t *testing.T) {
		var list struct {
			Machines []struct {
				ID         string             `json:"id"`
				Region     string             `json:"region"`
				Reputation contrib.Reputation `json:"reputation"`
			} `json:"machines"`
		}
		if code, body := do(t, h, "GET", "/api/machines", dave, nil, &list); code != http.StatusOK || len(list.Machines) != 1 {
			t.Fatalf("dave's machines: %d %s", code, body)
		}
		if m := list.Machines[0]; m.ID != join.MachineID || m.Reputation.Score != 90 || !m.Reputation.Eligible {
			t.Errorf("machine: %+v", m)
		}
		carol := h.Token(t, "carol", auth.RoleContributor)
		if code, body := do(t, h, "GET", "/api/machines/"+join.MachineID, carol, nil, nil); code != http.StatusNotFound {
			t.Errorf("carol sees dave's machine: %d %s", code, body)
		}
		if code, body := do(t, h, "GET", "/api/machines?owner=dave", carol, nil, nil); code != http.StatusForbidden {
			t.Errorf("carol lists dave's machines: %d %s", code, body)
		}
	})
}

// TestClosedWindowDrainsTheNode: a heartbeat saying the owner's window is
// closed drains the machine's Nomad node and makes it ineligible; the next
// saying it is open makes it eligible again. The machine is joined through
// the API and then given the test agent's node (the hub follows nodes by
// the name it assigned at join).
func TestClosedWindowDrainsTheNode(t *testing.T) {
	h := hubtest.StartWithNomad(t)
	op := h.Token(t, "olive", auth.RoleOperator)
	var enrol struct{ Token string }
	if code, body := do(t, h, "POST", "/api/enrolments", op, map[string]string{"owner": "dave"}, &enrol); code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", code, body)
	}
	var join agentapi.JoinReply
	if code, body := do(t, h, "POST", "/api/agent/join", "", joinRequest(enrol.Token), &join); code != http.StatusCreated {
		t.Fatalf("join: %d %s", code, body)
	}
	nodes, _, err := h.Nomad.Client.Nodes().List(nil)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	node := nodes[0]
	if _, err := h.Store.Pool().Exec(t.Context(), `UPDATE machines SET node_name = $1`, node.Name); err != nil {
		t.Fatal(err)
	}
	beat := func(available bool) {
		t.Helper()
		hb := agentapi.Heartbeat{MachineID: join.MachineID, Available: available, RTT: map[string]int64{"eu-west": 12},
			Metrics: agentapi.Metrics{SampledAt: time.Now(), MemUsedMB: 1, MemTotalMB: 2, DiskUsedMB: 1, DiskTotMB: 2}}
		if code, body := do(t, h, "POST", "/api/agent/heartbeat", join.AgentToken, hb, nil); code != http.StatusOK {
			t.Fatalf("heartbeat: %d %s", code, body)
		}
	}
	state := func() (draining bool, eligibility string) {
		t.Helper()
		n, _, err := h.Nomad.Client.Nodes().Info(node.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n.DrainStrategy != nil, n.SchedulingEligibility
	}
	beat(false)
	// With nothing running on it, the drain completes at once: the node
	// stays ineligible.
	if _, e := state(); e != "ineligible" {
		t.Fatalf("after a closed-window heartbeat the node is %s", e)
	}
	beat(true)
	if d, e := state(); d || e != "eligible" {
		t.Fatalf("after an open-window heartbeat: draining %t, %s", d, e)
	}

	// The round-trip time the agent measured is the node's meta, for
	// matching's affinities, and recorded as published.
	meta, err := h.Nomad.Client.Nodes().Meta().Read(node.ID, nil)
	if err != nil || meta.Meta[agentapi.MetaRTTPrefix+"eu-west"] != "12" {
		t.Fatalf("node meta %v, %v: want %s12 = 12", meta, err, agentapi.MetaRTTPrefix)
	}
	id, _ := ledger.ParseID(join.MachineID)
	if m, err := h.Store.Machine(t.Context(), id); err != nil || m.RTT["eu-west"] != 12 {
		t.Fatalf("stored machine RTT %v, %v", m, err)
	}
}
