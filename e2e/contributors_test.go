package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// agentProc is a `spice agent join` process: a contributor's machine, with
// the Nomad client the agent starts and supervises.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	dir  string
	log  *os.File
	done chan struct{}
}

// startAgent enrols owner and joins a machine for it with `spice agent
// join`, in region at floor (SP per core-hour).
func startAgent(t *testing.T, hubURL string, op *client.Client, owner, region, floor string, extra ...string) *agentProc {
	t.Helper()
	enrol, err := op.Enrol(context.Background(), owner, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{name: owner, dir: dir, log: logf, done: make(chan struct{})}
	args := append([]string{"agent", "join", hubURL, "-token", enrol.Token, "-region", region, "-floor", floor,
		"-state-dir", filepath.Join(dir, "state"), "-nomad", nomadBin(t), "-nomad-http-port", fmt.Sprint(freePort(t)), "-interval", "1s"}, extra...)
	a.cmd = exec.Command(spiceBin(t), args...)
	a.cmd.Env = nomadagent.Env()
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("agent %s log tail:\n%s", owner, b)
		}
		logf.Close()
	})
	return a
}

// stop ends the agent as its owner would (SIGTERM: it stops its Nomad
// client), or kills it and everything it started if it does not go.
func (a *agentProc) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	below := nomadagent.Descendants(a.cmd.Process.Pid)
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(45 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
	below.Kill(10 * time.Second)
}

// vanish is the machine going away at once: the agent, its Nomad client
// and the tasks it runs are killed.
func (a *agentProc) vanish(t *testing.T) {
	t.Helper()
	below := nomadagent.Descendants(a.cmd.Process.Pid)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	for _, err := range below.Kill(10 * time.Second) {
		t.Error(err)
	}
	// What a machine that vanished leaves on this host (the tasks' mounts
	// and cgroups) is cleaned up as its client would have.
	allocs, _ := filepath.Glob(filepath.Join(a.dir, "state", "nomad", "alloc", "*"))
	for i := range allocs {
		allocs[i] = filepath.Base(allocs[i])
	}
	for _, err := range nomadagent.CleanupHost(a.dir, allocs) {
		t.Error(err)
	}
}

func nomadBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(nomadagent.BinEnv); p != "" {
		return p
	}
	p, err := filepath.Abs("../bin/nomad")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// contribJob is a small exec job that runs for secs seconds, with the
// given meta.
func contribJob(id string, secs int, meta map[string]string) string {
	var m strings.Builder
	for k, v := range meta {
		fmt.Fprintf(&m, "    %s = %q\n", k, v)
	}
	return fmt.Sprintf(`job %q {
  type = "batch"
  meta {
%s  }
  group "g" {
    reschedule {
      attempts  = 3
      interval  = "10m"
      delay     = "5s"
      unlimited = false
    }
    task "t" {
      driver = "exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo running on ${node.unique.name}; sleep %d"]
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`, id, m.String(), secs)
}

// TestTwoContributorsMatchingAndAMachineThatVanishes: two contributors join
// a hub (real `spice hub`, real Nomad server and clients, real PostgreSQL)
// with `spice agent join`, in different regions at different floors.
//   - A job whose maximum price only the cheaper machine meets lands there
//     and pays that machine's floor.
//   - A job preferring the other region lands there.
//   - A job cheaper than any floor is refused, with the cheapest floor in
//     the reason.
//   - The machine running a job vanishes (agent, Nomad client and task
//     killed): its node goes down, the lost allocation is not charged, the
//     job reruns on the other machine, and the vanished contributor's
//     reputation drops.
//
// Then the books balance and `spice ledger verify` passes.
func TestTwoContributorsMatchingAndAMachineThatVanishes(t *testing.T) {
	ctx := context.Background()
	// A server alone: contributors' clients join it with introduction
	// tokens. Nodes that miss heartbeats for a few seconds are down.
	srv := nomadtest.NewTestServer(t, nomadtest.WithServerOnly(),
		nomadtest.WithHCL("server {\n  heartbeat_grace = \"3s\"\n  min_heartbeat_ttl = \"2s\"\n}\n"))
	tokenFile := filepath.Join(t.TempDir(), "nomad.token")
	if err := os.WriteFile(tokenFile, []byte(srv.ManagementToken), 0o600); err != nil {
		t.Fatal(err)
	}
	const hubName = "market.e2e.spiceroute.local"
	dbURL := pgtest.NewDB(t)
	ping := srv.Addr + "/v1/status/leader"
	h := startHubProc(t, hubName, dbURL, "-nomad", srv.Addr, "-nomad-token-file", tokenFile, "-policy", "../policies/admission.hcl",
		"-settle-interval", "1s", "-price-interval", "0", "-nomad-servers", fmt.Sprintf("127.0.0.1:%d", srv.RPCPort),
		"-regions", "eu-west="+ping+",us-east="+ping)
	opToken, err := run(t, nil, "hub", "token", "-database", dbURL, "-principal", "op", "-role", "operator")
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(h.url, strings.TrimSpace(opToken))
	// The hub's CPU price is under both floors: each machine is paid its own.
	if _, err := op.SetPrices(ctx, e2ePrices); err != nil {
		t.Fatal(err)
	}

	dave := startAgent(t, h.url, op, "dave", "eu-west", "40")
	erin := startAgent(t, h.url, op, "erin", "us-east", "90")
	machines := map[string]api.MachineReply{}
	waitFor(t, "both machines' Nomad nodes ready", 3*time.Minute, func() bool {
		ms, err := op.Machines(ctx, "")
		if err != nil || len(ms) != 2 {
			return false
		}
		for _, m := range ms {
			n, _, err := srv.Client.Nodes().Info(m.NodeID, nil)
			if m.NodeID == "" || err != nil || n.Status != nomadapi.NodeStatusReady || n.NodePool != "spiceroute" {
				return false
			}
			machines[m.Owner] = m
		}
		return true
	})
	nodeOwner := map[string]string{machines["dave"].NodeID: "dave", machines["erin"].NodeID: "erin"}

	alice := ledger.NewID()
	if r, err := op.CreateAccount(ctx, ledger.Account{ID: alice, Owner: "alice", Kind: ledger.KindRenter}); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	const funds = 500 * ledger.MicroPerSpice
	iss := hub.SystemAccountID(hubName, ledger.KindIssuance)
	if r, err := op.CreateTransfer(ctx, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: iss, CreditAccountID: alice, Amount: funds}); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	tok, err := op.CreateToken(ctx, "alice", auth.RoleRenter, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	renter := client.New(h.url, tok.Secret)

	// finished waits for a job's allocations to end and returns them, the
	// one that completed last.
	finished := func(id string) []*nomadapi.Allocation {
		t.Helper()
		var out []*nomadapi.Allocation
		waitFor(t, "job "+id+" to complete", 3*time.Minute, func() bool {
			stubs, _, err := srv.Client.Jobs().Allocations(id, true, &nomadapi.QueryOptions{Namespace: "renter-alice"})
			if err != nil || len(stubs) == 0 {
				return false
			}
			out = out[:0]
			complete := false
			for _, s := range stubs {
				a, _, err := srv.Client.Allocations().Info(s.ID, &nomadapi.QueryOptions{Namespace: "renter-alice"})
				if err != nil {
					return false
				}
				if !a.ClientTerminalStatus() {
					return false
				}
				complete = complete || a.ClientStatus == nomadapi.AllocClientStatusComplete
				out = append(out, a)
			}
			return complete
		})
		return out
	}
	charged := func(id string) ledger.Amount {
		t.Helper()
		var st *jobs.Status
		waitFor(t, "job "+id+" to be settled and invoiced", 2*time.Minute, func() bool {
			st, err = renter.JobStatus(ctx, id)
			return err == nil && st.Admission != nil && st.Admission.State == jobs.Settled && st.Admission.Invoice > 0
		})
		return st.Admission.Charged
	}
	at := func(cpu string) ledger.Amount {
		a, err := ledger.ParseAmount(cpu)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var spent ledger.Amount

	t.Run("MaxPriceLandsOnTheMachineThatFits", func(t *testing.T) {
		if _, err := renter.RunJobHCL(ctx, contribJob("fits", 3, map[string]string{jobs.MetaMaxCPUPrice: "60"})); err != nil {
			t.Fatal(err)
		}
		allocs := finished("fits")
		if len(allocs) != 1 || nodeOwner[allocs[0].NodeID] != "dave" {
			t.Fatalf("the job ran on %v, want dave's machine (floor 40 ≤ 60 < erin's 90)", allocs)
		}
		p := e2ePrices
		p.CPU = at("40") // dave's floor, above the hub's 36
		want := e2eCostAt(t, allocs[0], p)
		if got := charged("fits"); got != want {
			t.Fatalf("charged %s, want %s (CPU at dave's floor of 40 SP/core-hour)", got, want)
		}
		spent += want
	})

	t.Run("PreferredRegion", func(t *testing.T) {
		if _, err := renter.RunJobHCL(ctx, contribJob("near", 3, map[string]string{jobs.MetaMaxCPUPrice: "100", jobs.MetaPreferRegion: "us-east"})); err != nil {
			t.Fatal(err)
		}
		allocs := finished("near")
		if len(allocs) != 1 || nodeOwner[allocs[0].NodeID] != "erin" {
			t.Fatalf("the job ran on %v, want erin's machine in us-east", allocs)
		}
		p := e2ePrices
		p.CPU = at("90")
		want := e2eCostAt(t, allocs[0], p)
		if got := charged("near"); got != want {
			t.Fatalf("charged %s, want %s (CPU at erin's floor of 90)", got, want)
		}
		spent += want
	})

	t.Run("CheaperThanAnyoneRefused", func(t *testing.T) {
		_, err := renter.RunJobHCL(ctx, contribJob("cheap", 3, map[string]string{jobs.MetaMaxCPUPrice: "37"}))
		if coded.CodeOf(err) != jobs.CodeNoMatch || !strings.Contains(err.Error(), "no contributor at or below 37 SP/core-hour; cheapest is 40 (eu-west)") {
			t.Fatalf("got %v", err)
		}
		if _, _, err := srv.Client.Jobs().Info("cheap", &nomadapi.QueryOptions{Namespace: "renter-alice"}); err == nil {
			t.Fatal("the refused job reached Nomad")
		}
	})

	t.Run("MachineVanishesMidJob", func(t *testing.T) {
		if _, err := renter.RunJobHCL(ctx, contribJob("long", 8, map[string]string{jobs.MetaMaxCPUPrice: "100", jobs.MetaPreferRegion: "eu-west"})); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the job running on dave's machine", 2*time.Minute, func() bool {
			stubs, _, err := srv.Client.Jobs().Allocations("long", false, &nomadapi.QueryOptions{Namespace: "renter-alice"})
			return err == nil && len(stubs) == 1 && stubs[0].ClientStatus == nomadapi.AllocClientStatusRunning && nodeOwner[stubs[0].NodeID] == "dave"
		})
		before, err := op.Machine(ctx, machines["dave"].ID.String())
		if err != nil {
			t.Fatal(err)
		}
		dave.vanish(t)
		allocs := finished("long")
		var lost, done *nomadapi.Allocation
		for _, a := range allocs {
			switch {
			case a.ClientStatus == nomadapi.AllocClientStatusLost && nodeOwner[a.NodeID] == "dave":
				lost = a
			case a.ClientStatus == nomadapi.AllocClientStatusComplete && nodeOwner[a.NodeID] == "erin":
				done = a
			}
		}
		if lost == nil || done == nil {
			for _, a := range allocs {
				t.Logf("alloc %s on %s: %s", a.ID, nodeOwner[a.NodeID], a.ClientStatus)
			}
			t.Fatal("want a lost allocation on dave's machine and a completed one on erin's")
		}
		p := e2ePrices
		p.CPU = at("90")
		want := e2eCostAt(t, done, p)
		if got := charged("long"); got != want {
			t.Fatalf("charged %s, want %s: only the rerun on erin's machine (the lost allocation is not charged)", got, want)
		}
		spent += want
		waitFor(t, "dave's reputation to count the lost allocation", time.Minute, func() bool {
			m, err := op.Machine(ctx, machines["dave"].ID.String())
			return err == nil && m.Reputation.Lost == 1 && m.Reputation.Score < before.Reputation.Score
		})
		m, _ := op.Machine(ctx, machines["dave"].ID.String())
		t.Logf("dave's reputation: %d (was %d): %s", m.Reputation.Score, before.Reputation.Score, strings.Join(m.Reputation.Reasons, "; "))
		_ = erin
	})

	// The agents measure their round-trip time to each region the hub
	// names; the hub publishes it as node meta, which matching's affinities
	// read.
	t.Run("RTTPublishedAsNodeMeta", func(t *testing.T) {
		waitFor(t, "erin's node to carry her round-trip times", time.Minute, func() bool {
			n, _, err := srv.Client.Nodes().Info(machines["erin"].NodeID, nil)
			return err == nil && n.Meta["spiceroute_rtt_ms_eu-west"] != "" && n.Meta["spiceroute_rtt_ms_us-east"] != ""
		})
	})

	// A machine whose owner offers it only in a window that is closed now
	// joins, and the hub drains its node (with nothing running on it the
	// drain completes at once) and leaves it ineligible: no work lands there.
	t.Run("ClosedWindowDrainsTheNode", func(t *testing.T) {
		opens := time.Now().UTC().Add(6 * time.Hour)
		window := opens.Format("15:04") + "-" + opens.Add(time.Minute).Format("15:04")
		startAgent(t, h.url, op, "fay", "eu-west", "10", "-window", window, "-tz", "UTC")
		waitFor(t, "fay's node drained and ineligible", 2*time.Minute, func() bool {
			ms, err := op.Machines(ctx, "fay")
			if err != nil || len(ms) != 1 || ms[0].NodeID == "" {
				return false
			}
			n, _, err := srv.Client.Nodes().Info(ms[0].NodeID, nil)
			return err == nil && n.Status == nomadapi.NodeStatusReady && n.SchedulingEligibility == nomadapi.NodeSchedulingIneligible && !ms[0].Available
		})
	})

	t.Run("BooksBalance", func(t *testing.T) {
		a, err := renter.Account(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if a.DebitsPending != 0 || funds-a.Balance() != spent {
			t.Fatalf("alice: balance %s, pending %s; spent %s of %s", a.Balance(), a.DebitsPending, spent, funds)
		}
		var earned ledger.Amount
		for _, who := range []string{"dave", "erin"} {
			c, err := op.Account(ctx, machines[who].Account)
			if err != nil {
				t.Fatal(err)
			}
			earned += c.Balance()
		}
		hc, err := op.Account(ctx, hub.SystemAccountID(hubName, ledger.KindHubCommission))
		if err != nil {
			t.Fatal(err)
		}
		if earned+hc.Balance() != spent {
			t.Fatalf("contributors earned %s and the hub %s, alice spent %s", earned, hc.Balance(), spent)
		}
		if out, err := run(t, nil, "ledger", "verify", "-address", h.url, "-database", dbURL); err != nil {
			t.Fatalf("spice ledger verify: %v\n%s", err, out)
		}
	})
}
