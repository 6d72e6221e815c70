package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/cli"
	"github.com/spiceroute/spiceroute/hub/hubtest"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/settle"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// jobHub is a running hub (hub.Open + Run) on a fresh database, whose Nomad
// cluster is a real `nomad agent -dev` with one client node in the hub's
// node pool, contributed by "carol".
type jobHub struct {
	*hubtest.Hub
	contributor ledger.ID
}

// startJobHub starts Nomad and the hub; both stop when the test ends.
func startJobHub(t *testing.T) *jobHub {
	t.Helper()
	h := hubtest.StartWithNomad(t)
	return &jobHub{Hub: h, contributor: h.Contributor}
}

func (h *jobHub) createAccount(t *testing.T, a ledger.Account) { h.CreateAccount(t, a) }

// renter gives name a renter account funded with funds from the hub's
// issuance account (none if funds is 0) and a renter token; it returns the
// account and the environment to run the CLI as name.
func (h *jobHub) renter(t *testing.T, name string, funds ledger.Amount) (ledger.ID, map[string]string) {
	t.Helper()
	return h.Renter(t, name, funds), h.env(t, name, auth.RoleRenter)
}

// env is the CLI environment of a new token for name.
func (h *jobHub) env(t *testing.T, name string, role auth.Role) map[string]string {
	return map[string]string{"SPICE_ADDR": h.URL(), "SPICE_TOKEN": h.Token(t, name, role)}
}

func (h *jobHub) account(t *testing.T, id ledger.ID) *ledger.Account {
	t.Helper()
	a, err := h.Store.Account(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return &a
}

// noJob checks that Nomad has no job id in renter's namespace.
func (h *jobHub) noJob(t *testing.T, renter, id string) {
	t.Helper()
	_, err := h.Jobs.Sched.Job(context.Background(), renter, id)
	if err == nil {
		t.Fatalf("job %s of %s reached Nomad", id, renter)
	}
	if !nomad.IsNotFound(err) {
		t.Fatal(err)
	}
}

// balanced checks the books: the posted balances of all accounts sum to
// zero, and so do the pending ones (no hold is left anywhere).
func (h *jobHub) balanced(t *testing.T) {
	t.Helper()
	var posted, pending int64
	err := h.Store.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(credits_posted - debits_posted), 0)::bigint,
		coalesce(sum(credits_pending - debits_pending), 0)::bigint FROM accounts`).Scan(&posted, &pending)
	if err != nil {
		t.Fatal(err)
	}
	if posted != 0 || pending != 0 {
		t.Fatalf("the books do not balance: posted balances sum to %d µSP, pending to %d µSP", posted, pending)
	}
}

// quote is what the hub quotes resources for d at its prices.
func (h *jobHub) quote(t *testing.T, r market.Resources, d time.Duration) ledger.Amount {
	t.Helper()
	p, err := h.Store.Prices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.Cost(r, d)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// eventually polls check every 200ms until it returns "" (done) or the
// timeout passes, then fails with check's last answer.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jobStatusJSON runs `spice job status ID -json` as env.
func jobStatusJSON(t *testing.T, env map[string]string, id string) *jobs.Status {
	t.Helper()
	var st jobs.Status
	if err := json.Unmarshal([]byte(spice(t, env, "job", "status", id, "-json").ok(t)), &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// settled waits until the job's admission is settled and invoiced.
func settled(t *testing.T, env map[string]string, id string) *jobs.Record {
	t.Helper()
	var rec *jobs.Record
	eventually(t, 90*time.Second, func() string {
		st := jobStatusJSON(t, env, id)
		rec = st.Admission
		if rec == nil || rec.State != jobs.Settled || rec.Invoice == 0 {
			return fmt.Sprintf("job %s is not settled and invoiced: %+v", id, rec)
		}
		return ""
	})
	return rec
}

const sleepJob = `job "long" {
  type = "batch"
  meta {
    spiceroute_max_runtime = "20m"
  }
  group "long" {
    ephemeral_disk {
      size = 150
    }
    task "sleep" {
      driver = "exec"
      config {
        command = "/bin/sleep"
        args    = ["600"]
      }
      resources {
        cpu    = 200
        memory = 32
      }
    }
  }
}
`

// TestJobCommands runs renters' jobs end to end with the spice CLI against
// a real hub, a real Nomad agent and PostgreSQL.
func TestJobCommands(t *testing.T) {
	h := startJobHub(t)
	ctx := context.Background()
	// A thousand times the default prices, so that the seconds jobs run
	// here cost enough for the hub's 10 % commission to be whole µSP.
	op := h.env(t, "op", auth.RoleOperator)
	spice(t, op, "prices", "set", "-cpu", "40", "-memory", "10", "-disk", "0.2").ok(t)
	const prices = "40.000000 SP per core-hour, 10.000000 SP per GiB-hour of memory, 0.200000 SP per GiB-hour of disk"
	const funds = 100 * sp
	aliceAcct, alice := h.renter(t, "alice", funds)
	dir := t.TempDir()

	t.Run("RunHelloChargesWhatRan", func(t *testing.T) {
		want := h.quote(t, market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)
		out := spice(t, alice, "job", "run", "../../nomad-jobs/hello.nomad.hcl").ok(t)
		contains(t, out, `Job "hello" admitted`, "; allocation ")
		// Followed until it runs (or, on a slow machine, has already finished).
		if !regexp.MustCompile(`(?m)^Job "hello" (is running|finished)\. `).MatchString(out) {
			t.Errorf("job run did not follow hello until it ran:\n%s", out)
		}
		row(t, out, "Namespace", "renter-alice")
		row(t, out, "Quote", fmt.Sprintf("up to %s for 10m0s at %s", want, prices))
		if !regexp.MustCompile(`(?m)^Hold +=\s` + regexp.QuoteMeta(want.String()) + ` reserved on your account until the job ends \(hold [0-9a-f-]{36}\)$`).MatchString(out) {
			t.Errorf("no hold row in:\n%s", out)
		}
		if a := h.account(t, aliceAcct); a.DebitsPending+a.DebitsPosted == 0 {
			t.Errorf("nothing held or charged on alice's account after job run: %+v", a)
		}

		eventually(t, 30*time.Second, func() string {
			r := spice(t, alice, "job", "logs", "hello")
			if r.code != 0 || !strings.Contains(r.stdout, "hello from SpiceRoute\nLinux\n") {
				return fmt.Sprintf("job logs hello: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			return ""
		})
		spice(t, alice, "job", "logs", "hello", "-stderr").ok(t) // nothing on stderr, and no error
		st := jobStatusJSON(t, alice, "hello")
		if len(st.Allocations) != 1 {
			t.Fatalf("hello has %d allocations", len(st.Allocations))
		}
		if out := spice(t, alice, "job", "logs", "hello", "-alloc", st.Allocations[0].ID, "-task", "hello", "-limit", "5").ok(t); out != "hello" {
			t.Errorf("job logs -alloc -task -limit 5 printed %q", out)
		}
		spice(t, alice, "job", "logs", "hello", "-task", "nope").fails(t, 1, "nope")

		rec := settled(t, alice, "hello")
		if rec.Charged <= 0 || rec.Charged >= want || rec.Commission != settle.Commission(rec.Charged, 1000) || rec.Commission <= 0 {
			t.Fatalf("admission %+v: want 0 < charged < quote %s, and 10 %% of it commission", rec, want)
		}
		out = spice(t, alice, "job", "status", "hello").ok(t)
		row(t, out, "ID", "hello")
		row(t, out, "Admission", "settled")
		row(t, out, "Charged", rec.Charged.String())
		row(t, out, "Commission", rec.Commission.String()+" (the hub's part of the charge)")
		row(t, out, "Invoice", fmt.Sprintf("%d (spice invoice get %d)", rec.Invoice, rec.Invoice))
		contains(t, out, "released: nothing reserved any more", "Allocations", "complete")

		a := h.account(t, aliceAcct)
		if a.Balance() != funds-rec.Charged || a.DebitsPending != 0 {
			t.Fatalf("alice's balance is %s (%s held), want %s - %s charged = %s", a.Balance(), a.DebitsPending, funds, rec.Charged, funds-rec.Charged)
		}
		h.balanced(t)
		inv, err := h.Store.Invoice(ctx, rec.Invoice)
		if err != nil {
			t.Fatal(err)
		}
		if inv.Kind != invoice.RenterInvoice || inv.Party != "alice" || inv.Job != "hello" || inv.Total != rec.Charged {
			t.Fatalf("invoice %d: %+v, want alice's for hello totalling %s", rec.Invoice, inv, rec.Charged)
		}
		contains(t, spice(t, alice, "invoice", "get", fmt.Sprint(rec.Invoice)).ok(t), "total "+rec.Charged.String())

		// carol's statement of the period: what she was credited, line by line.
		carol := h.env(t, "carol", auth.RoleContributor)
		time.Sleep(1100 * time.Millisecond) // the period ends at a whole second, after the settlement
		out = spice(t, carol, "statement", "issue", "-from", rec.CreatedAt.Add(-time.Minute).UTC().Format(time.RFC3339)).ok(t)
		row(t, out, "Contributor", "carol")
		row(t, out, "Earned", rec.Charged.String())
		row(t, out, "Commission", rec.Commission.String())
		row(t, out, "Credited", (rec.Charged - rec.Commission).String())
		if c := h.account(t, h.contributor); c.Balance() != rec.Charged-rec.Commission {
			t.Fatalf("carol's balance %s, her statement says %s", c.Balance(), rec.Charged-rec.Commission)
		}
		spice(t, alice, "statement", "issue", "-from", "2026-01-01").fails(t, 1, "statements are for contributors")

		out = spice(t, alice, "job", "list").ok(t)
		if !regexp.MustCompile(`(?m)^hello +settled +` + regexp.QuoteMeta(want.String()) + ` +` + regexp.QuoteMeta(rec.Charged.String()) + ` +` + fmt.Sprint(rec.Invoice) + ` `).MatchString(out) {
			t.Errorf("job list lacks the settled hello:\n%s", out)
		}
	})

	t.Run("StopLongJobChargesLessThanQuote", func(t *testing.T) {
		before := h.account(t, aliceAcct).Balance()
		want := h.quote(t, market.Resources{CPUMHz: 200, MemoryMB: 32, DiskMB: 150}, 20*time.Minute)
		r := spiceIn(t, alice, sleepJob, "job", "run", "-")
		out := r.ok(t)
		contains(t, out, `Job "long" admitted`, `Job "long" is running`)
		row(t, out, "Quote", fmt.Sprintf("up to %s for 20m0s at %s", want, prices))
		// Running jobs are charged as they run (every SettleInterval).
		eventually(t, 30*time.Second, func() string {
			if rec := jobStatusJSON(t, alice, "long").Admission; rec == nil || rec.Charged <= 0 || rec.State != jobs.Running {
				return fmt.Sprintf("long is not charged while running: %+v", rec)
			}
			return ""
		})
		row(t, spice(t, alice, "job", "status", "long").ok(t), "Admission", "running")
		out = spice(t, alice, "job", "stop", "long").ok(t)
		contains(t, out, `Job "long" is stopping`)
		rec := settled(t, alice, "long")
		if rec.Charged <= 0 || rec.Charged >= want {
			t.Fatalf("stopped job charged %s, want more than 0 and less than its quote %s", rec.Charged, want)
		}
		a := h.account(t, aliceAcct)
		if a.Balance() != before-rec.Charged || a.DebitsPending != 0 {
			t.Fatalf("alice's balance is %s (%s held), want %s - %s", a.Balance(), a.DebitsPending, before, rec.Charged)
		}
		out = spice(t, alice, "job", "status", "long").ok(t)
		row(t, out, "Status", "dead (stopped)")
		row(t, out, "Charged", rec.Charged.String())
		h.balanced(t)
	})

	t.Run("NotPlacedSaysWhy", func(t *testing.T) {
		path := filepath.Join(dir, "win.nomad.hcl")
		writeFile(t, dir, "win.nomad.hcl", hubtest.WindowsJob)
		before := h.account(t, aliceAcct)
		start := time.Now()
		r := spice(t, alice, "job", "run", "-wait", "3s", path)
		if r.code != cli.ExitNotPlaced {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, cli.ExitNotPlaced, r.stdout, r.stderr)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("job run waited %s with -wait 3s", took)
		}
		contains(t, r.stdout, `Job "win" admitted`, "no allocation placed yet", "Nomad cannot place the job:",
			`group "win"`, "constraint ${attr.kernel.name} = windows filtered 1 node")
		contains(t, r.stderr, `job "win" is still not placed after 3s`, "spice job stop win")
		out := spice(t, alice, "job", "status", "win").ok(t)
		contains(t, out, "Why not placed:\n    group \"win\"", "windows")
		row(t, out, "Status", "pending")
		// The hold stays while the job is queued, and is returned when it is stopped.
		if a := h.account(t, aliceAcct); a.DebitsPending <= before.DebitsPending {
			t.Errorf("no hold for the queued job: %s pending before, %s after", before.DebitsPending, a.DebitsPending)
		}
		spice(t, alice, "job", "stop", "win").ok(t)
		rec := settled(t, alice, "win")
		if rec.Charged != 0 {
			t.Errorf("a job that never ran was charged %s", rec.Charged)
		}
		if a := h.account(t, aliceAcct); a.Balance() != before.Balance() || a.DebitsPending != 0 {
			t.Errorf("alice's balance %s (%s held) after an unplaced job, want %s and nothing held", a.Balance(), a.DebitsPending, before.Balance())
		}
	})

	t.Run("RejectionsNeverReachNomad", func(t *testing.T) {
		poorAcct, poor := h.renter(t, "poor", 1)
		hello := h.quote(t, market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)
		r := spice(t, poor, "job", "run", "../../nomad-jobs/hello.nomad.hcl")
		r.fails(t, 1, "insufficient_funds", fmt.Sprintf("job hello costs up to %s (10m0s at the current prices)", hello), "0.000001 SP")
		h.noJob(t, "poor", "hello")
		if a := h.account(t, poorAcct); a.DebitsPending != 0 || a.Balance() != 1 {
			t.Errorf("poor's account after a rejection: %s held, balance %s", a.DebitsPending, a.Balance())
		}

		_, bob := h.renter(t, "bob", funds)
		src, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "raw.nomad.hcl", strings.Replace(string(src), `driver = "exec"`, `driver = "raw_exec"`, 1))
		spice(t, bob, "job", "run", filepath.Join(dir, "raw.nomad.hcl")).
			fails(t, 1, "policy_violation", `group "hello" task "hello": driver "raw_exec" is not allowed`, "(rule allowed_drivers)")
		writeFile(t, dir, "broken.nomad.hcl", `job "broken" { group "g" { task "t" { driver = "exec" `)
		spice(t, bob, "job", "run", filepath.Join(dir, "broken.nomad.hcl")).fails(t, 1, "invalid: jobspec")
		writeFile(t, dir, "typo.json", `{"ID": "typo", "TaskGroupz": []}`)
		spice(t, bob, "job", "run", filepath.Join(dir, "typo.json")).fails(t, 1, "typo.json: not a Nomad job", "TaskGroupz")
		spice(t, bob, "job", "run", filepath.Join(dir, "missing.hcl")).fails(t, 1, "no such file")
		spice(t, bob, "job", "run").fails(t, 2, "missing arguments")
		h.noJob(t, "bob", "hello")
		h.noJob(t, "bob", "broken")
		bobAccts, err := h.Store.AccountsByOwner(ctx, "bob")
		if err != nil || len(bobAccts) != 1 || bobAccts[0].DebitsPending != 0 || bobAccts[0].Balance() != funds {
			t.Errorf("bob's accounts after rejections: %+v, %v", bobAccts, err)
		}
		contains(t, spice(t, bob, "job", "list").ok(t), "No jobs yet")
	})

	t.Run("JSONJobFromNomadInspect", func(t *testing.T) {
		// What `nomad job inspect hello` prints: {"Job": {...}} as Nomad
		// returns it, with its status ("dead"), version, indexes and the
		// hub's meta, all of which the hub ignores.
		j, err := h.Jobs.Sched.Job(ctx, "alice", "hello")
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == nil || *j.Status != "dead" || j.Meta[jobs.MetaHold] == "" {
			t.Fatalf("hello in Nomad: status %v, meta %v", j.Status, j.Meta)
		}
		id := "hello-json"
		j.ID, j.Name = &id, &id
		b, err := json.MarshalIndent(map[string]any{"Job": j}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "hello.json", string(b))
		var adm jobs.Admission
		r := spice(t, alice, "job", "run", "-detach", "-json", filepath.Join(dir, "hello.json"))
		if err := json.Unmarshal([]byte(r.ok(t)), &adm); err != nil {
			t.Fatalf("job run -json: %v\n%s", err, r.stdout)
		}
		if adm.JobID != "hello-json" || adm.Namespace != "renter-alice" || adm.Hold.IsZero() || adm.Quote.Max <= 0 {
			t.Fatalf("admission %+v", adm)
		}
		if adm.Hold.String() == j.Meta[jobs.MetaHold] {
			t.Errorf("hello-json reuses hello's hold %s", adm.Hold)
		}
		rec := settled(t, alice, "hello-json")
		if rec.Charged <= 0 || rec.Charged >= adm.Quote.Max {
			t.Errorf("hello-json charged %s of its quote %s", rec.Charged, adm.Quote.Max)
		}
		h.balanced(t)
	})

	t.Run("OthersJobsDoNotExist", func(t *testing.T) {
		_, mallory := h.renter(t, "mallory", funds)
		spice(t, mallory, "job", "status", "hello").fails(t, 1, "job_not_found")
		spice(t, mallory, "job", "logs", "hello").fails(t, 1, "job_not_found")
		spice(t, mallory, "job", "stop", "hello").fails(t, 1, "job_not_found")
		contains(t, spice(t, mallory, "job", "list").ok(t), "No jobs yet")
		spice(t, h.env(t, "carol", auth.RoleContributor), "job", "list").fails(t, 1, "forbidden", "only renters run jobs")
	})
}

// spiceIn runs the command line with stdin as its standard input. cli.Main
// reads os.Stdin, so it is swapped for the call (tests here are not parallel).
func spiceIn(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(stdin), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	return spice(t, env, args...)
}
