package contrib_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/agent/agentapi"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/contrib"
	"github.com/spiceroute/spiceroute/hub/hubtest"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/payout"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// The check program's answer, computed as its doc comment says, is what a
// real POSIX shell prints for its script, and is pinned for known nonces
// (values computed independently from the documented derivation).
func TestSpotCheckProgram(t *testing.T) {
	t.Run("HandMade", func(t *testing.T) {
		p := contrib.CheckProgram{Mod: 1000, Seed: 7}
		for i := range contrib.CheckRounds {
			p.Mul[i], p.Add[i] = 3, 1
		}
		// x ← 3x + 1 mod 1000, 16 times from 7.
		if got := p.Expected(); got != "407" {
			t.Fatalf("expected %s, want 407", got)
		}
		if out := sh(t, "/bin/sh", p.Script()); out != "407\n" {
			t.Fatalf("the script printed %q, want 407", out)
		}
	})
	t.Run("Derivation", func(t *testing.T) {
		var counting [16]byte
		for i := range counting {
			counting[i] = byte(i)
		}
		for _, tt := range []struct {
			name            string
			nonce           [16]byte
			mod, seed, want uint64
		}{
			{"ZeroNonce", [16]byte{}, 1559054793, 86651481, 822592246},
			{"CountingNonce", counting, 1163229006, 706682263, 528043577},
		} {
			p := contrib.NewCheckProgram(tt.nonce)
			if p.Mod != tt.mod || p.Seed != tt.seed {
				t.Errorf("%s: mod %d seed %d, want %d %d", tt.name, p.Mod, p.Seed, tt.mod, tt.seed)
			}
			if got := p.Expected(); got != strconv.FormatUint(tt.want, 10) {
				t.Errorf("%s: expected %s, want %d", tt.name, got, tt.want)
			}
		}
	})
	t.Run("ShellsAgree", func(t *testing.T) {
		shells := []string{"/bin/sh"}
		for _, s := range []string{"dash", "bash", "busybox"} {
			if p, err := exec.LookPath(s); err == nil {
				shells = append(shells, p)
			}
		}
		for range 20 {
			var nonce [16]byte
			rand.Read(nonce[:])
			p := contrib.NewCheckProgram(nonce)
			// Every value stays under 2^31, so no product reaches 2^63.
			if p.Mod < 1<<30 || p.Mod >= 1<<31 || p.Seed >= p.Mod {
				t.Fatalf("nonce %x: mod %d seed %d", nonce, p.Mod, p.Seed)
			}
			for i := range contrib.CheckRounds {
				if p.Mul[i] < 2 || p.Mul[i] >= p.Mod || p.Add[i] >= p.Mod {
					t.Fatalf("nonce %x round %d: mul %d add %d mod %d", nonce, i, p.Mul[i], p.Add[i], p.Mod)
				}
			}
			if strings.Contains(p.Script(), "${") {
				t.Fatalf("the script has a ${...} Nomad would interpolate: %s", p.Script())
			}
			for _, shell := range shells {
				args := []string{}
				if strings.HasSuffix(shell, "busybox") {
					args = append(args, "sh")
				}
				if out := sh(t, shell, append(args, p.Script())...); out != p.Expected()+"\n" {
					t.Fatalf("nonce %x: %s printed %q, want %s", nonce, shell, out, p.Expected())
				}
			}
		}
	})
}

// sh runs shell (with args before -c) on script and returns its stdout.
func sh(t *testing.T, shell string, args ...string) string {
	t.Helper()
	script := args[len(args)-1]
	cmd := exec.Command(shell, append(append(args[:len(args)-1:len(args)-1], "-c"), script)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", shell, err)
	}
	return string(out)
}

// spotCheckHub starts a hub with payouts, whose spot checks run only when
// the test asks, and on which a missed heartbeat costs nothing for an hour
// (so that a score moves only with what the test does).
func spotCheckHub(t *testing.T, opts ...hubtest.Option) *hubtest.Hub {
	t.Helper()
	opts = append(opts, hubtest.Option{Hub: func(c *hub.Config) {
		c.Payout = payout.Config{RateCents: 100, Dir: t.TempDir(), Debtor: payout.Party{Name: "Hub", IBAN: "DE89370400440532013000"}}
		c.Contrib.HeartbeatInterval = time.Hour
	}})
	return hubtest.StartWithNomad(t, opts...)
}

// joinDevNode joins a machine of dave's through the agent protocol and
// records the hub's Nomad dev node as its node, as its first heartbeat
// would have if the node had registered under the machine's name.
func joinDevNode(t *testing.T, h *hubtest.Hub) *contrib.Machine {
	t.Helper()
	ctx := t.Context()
	op := h.Token(t, "olive", auth.RoleOperator)
	var enrol struct{ Token string }
	if code, body := do(t, h, "POST", "/api/enrolments", op, map[string]string{"owner": "dave"}, &enrol); code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", code, body)
	}
	var join agentapi.JoinReply
	if code, body := do(t, h, "POST", "/api/agent/join", "", joinRequest(enrol.Token), &join); code != http.StatusCreated {
		t.Fatalf("join: %d %s", code, body)
	}
	nodes, err := h.Jobs.Sched.PoolNodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("pool nodes: %v %v", nodes, err)
	}
	id, err := ledger.ParseID(join.MachineID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Store.SetNodeID(ctx, id, nodes[0].ID); err != nil {
		t.Fatal(err)
	}
	m, err := h.Store.Machine(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// nothingHeld checks that nothing weighs on dave's machine: no incident,
// the score it had, no withhold.
func nothingHeld(t *testing.T, h *hubtest.Hub, m *contrib.Machine, score int) {
	t.Helper()
	ctx := t.Context()
	if d, s, err := h.Store.Incidents(ctx, m.ID); err != nil || d != 0 || s != 0 {
		t.Errorf("incidents: %d disputes, %d failed spot checks, %v", d, s, err)
	}
	if r, err := h.Machines.Reputation(ctx, m); err != nil || r.Score != score || r.SpotChecksFailed != 0 {
		t.Errorf("reputation %+v (%v), want score %d", r, err, score)
	}
	if ws, err := h.Payouts.Withholds(ctx, true); err != nil || len(ws) != 0 {
		t.Errorf("withholds: %+v %v", ws, err)
	}
	if reason, withheld, err := h.Store.Withheld(ctx, "dave", payout.PeriodOf(time.Now())); err != nil || withheld {
		t.Errorf("dave's payout withheld: %q %v", reason, err)
	}
}

// checkJobsGone checks that no spot-check job is left in Nomad.
func checkJobsGone(t *testing.T, h *hubtest.Hub) {
	t.Helper()
	js, _, err := h.Nomad.Client.Jobs().List(&api.QueryOptions{Namespace: nomad.CheckNamespace})
	if err != nil || len(js) != 0 {
		t.Errorf("jobs left in %s: %d (%v)", nomad.CheckNamespace, len(js), err)
	}
}

// An honest machine passes its spot checks: a round with a deterministic
// draw checks it (and a draw above the fraction does not), its answer is
// the hub's, and nothing is held against it. A check that cannot be placed
// (the node is ineligible, or gone) records nothing either.
func TestSpotCheckHonestMachine(t *testing.T) {
	h := spotCheckHub(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	m := joinDevNode(t, h)
	before, err := h.Machines.Reputation(ctx, m)
	if err != nil || before.Score != 100 {
		t.Fatalf("reputation before: %+v %v", before, err)
	}

	t.Run("Passes", func(t *testing.T) {
		h.SpotChecks.Config.Fraction = 0.5
		h.SpotChecks.Rand = func() float64 { return 0.7 }
		if scs, err := h.SpotChecks.Round(ctx); err != nil || len(scs) != 0 {
			t.Fatalf("a draw above the fraction checked %d machines: %v", len(scs), err)
		}
		h.SpotChecks.Rand = func() float64 { return 0.2 }
		scs, err := h.SpotChecks.Round(ctx)
		if err != nil || len(scs) != 1 {
			t.Fatalf("round: %d checks, %v", len(scs), err)
		}
		sc := scs[0]
		if sc.Outcome != contrib.SpotCheckPassed || sc.Machine != m.ID || sc.Got != sc.Expected+"\n" || sc.ExitCode != 0 || sc.Withheld {
			t.Fatalf("check: %+v", sc)
		}
		nothingHeld(t, h, m, before.Score)
		checkJobsGone(t, h)
	})

	t.Run("UnplaceableRecordsNothing", func(t *testing.T) {
		if err := h.Jobs.Sched.SetEligible(ctx, m.NodeID, false); err != nil {
			t.Fatal(err)
		}
		defer h.Jobs.Sched.SetEligible(context.WithoutCancel(ctx), m.NodeID, true)
		// A round passes over a node that takes no work...
		h.SpotChecks.Config.Fraction, h.SpotChecks.Rand = 1, func() float64 { return 0 }
		if scs, err := h.SpotChecks.Round(ctx); err != nil || len(scs) != 0 {
			t.Fatalf("a round checked %d machines on an ineligible node: %v", len(scs), err)
		}
		// ...and a check sent anyway is not placed.
		start := time.Now()
		sc, err := h.SpotChecks.Check(ctx, m)
		if err != nil || sc.Outcome != contrib.SpotCheckNotRun || !strings.Contains(sc.Reason, "could not be placed") {
			t.Fatalf("check on an ineligible node: %+v %v", sc, err)
		}
		if waited := time.Since(start); waited > time.Minute {
			t.Errorf("an unplaceable check took %s", waited)
		}
		gone := *m
		gone.NodeID = "5d1e0b4c-0000-4000-8000-000000000000"
		if sc, err := h.SpotChecks.Check(ctx, &gone); err != nil || sc.Outcome != contrib.SpotCheckNotRun {
			t.Fatalf("check on a node that is gone: %+v %v", sc, err)
		}
		nothingHeld(t, h, m, before.Score)
		checkJobsGone(t, h)
	})
}

// A machine whose /bin/sh answers wrongly fails its spot check: the
// failure is recorded as an incident, the machine loses 50 points with the
// reason shown to its owner, and the owner's payout for the period is
// withheld pending review.
func TestSpotCheckCheatingMachineFails(t *testing.T) {
	// The cheat: a static program that prints a made-up number, as /bin/sh
	// of the exec driver's chroot (everything else as in the lean chroot).
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(42) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "sh"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the fake sh: %v\n%s", err, out)
	}
	chroot := nomadtest.LeanChrootEnv()
	delete(chroot, "/bin")
	chroot[bin] = "/bin"
	h := spotCheckHub(t, hubtest.Option{Nomad: nomadtest.WithChrootEnv(chroot)})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	m := joinDevNode(t, h)
	before, err := h.Machines.Reputation(ctx, m)
	if err != nil || before.Score != 100 {
		t.Fatalf("reputation before: %+v %v", before, err)
	}

	sc, err := h.SpotChecks.Check(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Outcome != contrib.SpotCheckFailed || sc.Got != "42\n" || sc.Expected == "42" || !sc.Withheld {
		t.Fatalf("check: %+v", sc)
	}
	if d, s, err := h.Store.Incidents(ctx, m.ID); err != nil || d != 0 || s != 1 {
		t.Errorf("incidents: %d disputes, %d failed spot checks, %v", d, s, err)
	}
	// dave sees why his machine lost 50 points.
	dave := h.Token(t, "dave", auth.RoleContributor)
	var got struct {
		Reputation contrib.Reputation `json:"reputation"`
	}
	if code, body := do(t, h, "GET", "/api/machines/"+m.ID.String(), dave, nil, &got); code != http.StatusOK {
		t.Fatalf("dave's machine: %d %s", code, body)
	}
	if r := got.Reputation; r.Score != before.Score-50 || r.SpotChecksFailed != 1 || !slices.Contains(r.Reasons, "-50.00: 1 failed spot checks") {
		t.Errorf("reputation after: %+v, want %d with the spot check's reason", r, before.Score-50)
	}
	reason, withheld, err := h.Store.Withheld(ctx, "dave", payout.PeriodOf(sc.At))
	if err != nil || !withheld || !strings.Contains(reason, m.ID.String()) || !strings.Contains(reason, sc.JobID) {
		t.Errorf("dave's payout for %s: withheld %t (%q, %v)", payout.PeriodOf(sc.At), withheld, reason, err)
	}
	ws, err := h.Payouts.Withholds(ctx, false)
	if err != nil || len(ws) != 1 || ws[0].Owner != "dave" || ws[0].CreatedBy != contrib.SpotCheckedBy || ws[0].Period != payout.PeriodOf(sc.At) {
		t.Errorf("withholds: %+v %v", ws, err)
	}
	// carol, whose node it is in this test but who owns no failing
	// machine, is paid.
	if _, withheld, _ := h.Store.Withheld(ctx, "carol", payout.PeriodOf(sc.At)); withheld {
		t.Error("carol's payout is withheld")
	}
	checkJobsGone(t, h)
}
