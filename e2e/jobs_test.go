package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/hub"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/client"
	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
	"github.com/spiceroute/spiceroute/scheduler/nomadtest"
)

// e2ePrices make a few seconds of a small job cost thousands of µSP.
var e2ePrices = market.Prices{CPU: 36_000_000, Memory: 18_000_000, Disk: 3_600_000}

// nomadCLI runs the stock nomad binary as a renter would: pointed at the
// hub with a SpiceRoute token, nothing else of the environment's NOMAD_*.
func nomadCLI(t *testing.T, hubURL, token string, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv(nomadtest.BinEnv)
	if bin == "" {
		bin = "../bin/nomad" // make tools
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = ".."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NOMAD_ADDR="+hubURL, "NOMAD_TOKEN="+token, "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestRenterRunsAJobWithTheNomadCLI is the renter's whole story across real
// processes: a `spice hub` process in front of a real Nomad agent whose
// client is a contributor's machine; the renter runs nomad-jobs/hello with
// the stock nomad CLI pointed at the hub, reads its output back through the
// hub, and is charged exactly what ran; the contributor and the hub's
// commission add up to it, the hold is closed, the invoice matches and the
// public log verifies.
// jobsHub is a `spice hub` process in front of a real Nomad agent whose
// one client is carol's machine, with prices set high enough that a few
// seconds of a small job cost thousands of µSP, and a renter alice.
type jobsHub struct {
	*hubProc
	name, dbURL string
	nomad       *nomadtest.Server
	op, alice   *client.Client
	aliceToken  string
	aliceAcct   ledger.ID
	contrib     ledger.ID
}

const jobsFunds = 50 * ledger.MicroPerSpice

func startJobsHub(t *testing.T) *jobsHub {
	t.Helper()
	ctx := context.Background()
	contrib := ledger.NewID()
	srv := nomadtest.NewTestServer(t, nomadtest.WithContributor(contrib.String()))
	tokenFile := filepath.Join(t.TempDir(), "nomad.token")
	if err := os.WriteFile(tokenFile, []byte(srv.ManagementToken), 0o600); err != nil {
		t.Fatal(err)
	}
	const hubName = "jobs.e2e.spiceroute.local"
	dbURL := pgtest.NewDB(t)
	h := startHubProc(t, hubName, dbURL, "-nomad", srv.Addr, "-nomad-token-file", tokenFile,
		"-policy", "../policies/admission.hcl", "-settle-interval", "1s")

	opToken, err := run(t, nil, "hub", "token", "-database", dbURL, "-principal", "op", "-role", "operator")
	if err != nil {
		t.Fatal(err)
	}
	op := client.New(h.url, strings.TrimSpace(opToken))
	if _, err := op.SetPrices(ctx, e2ePrices); err != nil {
		t.Fatal(err)
	}
	alice := ledger.NewID()
	for _, a := range []ledger.Account{{ID: alice, Owner: "alice", Kind: ledger.KindRenter}, {ID: contrib, Owner: "carol", Kind: ledger.KindContributor}} {
		if r, err := op.CreateAccount(ctx, a); err != nil || r.Err != nil {
			t.Fatal(err, r.Err)
		}
	}
	iss := hub.SystemAccountID(hubName, ledger.KindIssuance)
	if r, err := op.CreateTransfer(ctx, ledger.Transfer{ID: ledger.NewID(), DebitAccountID: iss, CreditAccountID: alice, Amount: jobsFunds}); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	tok, err := op.CreateToken(ctx, "alice", auth.RoleRenter, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	return &jobsHub{hubProc: h, name: hubName, dbURL: dbURL, nomad: srv, op: op, alice: client.New(h.url, tok.Secret),
		aliceToken: tok.Secret, aliceAcct: alice, contrib: contrib}
}

// checkPaid asserts alice paid exactly want for her one job, carol and the
// hub's commission got it between them, and nothing is left held or in
// escrow.
func (h *jobsHub) checkPaid(t *testing.T, want ledger.Amount) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "the job's settlement", 2*time.Minute, func() bool {
		acct, err := h.alice.Account(ctx, h.aliceAcct)
		return err == nil && acct.DebitsPending == 0 && acct.Balance() < jobsFunds
	})
	acct, err := h.alice.Account(ctx, h.aliceAcct)
	if err != nil {
		t.Fatal(err)
	}
	if paid := jobsFunds - acct.Balance(); paid != want {
		t.Fatalf("alice paid %s, the job ran for %s (allocated resources × run time × price)", paid, want)
	}
	commission := want / 10
	c, err := h.op.Account(ctx, h.contrib)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := h.op.Account(ctx, hub.SystemAccountID(h.name, ledger.KindHubCommission))
	if err != nil {
		t.Fatal(err)
	}
	if c.Balance() != want-commission || hc.Balance() != commission {
		t.Fatalf("carol got %s and the hub %s; want %s and %s", c.Balance(), hc.Balance(), want-commission, commission)
	}
	if esc, err := h.op.Account(ctx, hub.SystemAccountID(h.name, ledger.KindEscrow)); err != nil || esc.Balance() != 0 || esc.CreditsPending != 0 {
		t.Fatalf("escrow after settlement: %+v, %v", esc, err)
	}
}

func TestRenterRunsAJobWithTheNomadCLI(t *testing.T) {
	ctx := context.Background()
	h := startJobsHub(t)
	dir := t.TempDir()

	// The renter's side: nothing but the nomad CLI and a SpiceRoute token.
	out, err := nomadCLI(t, h.url, h.aliceToken, "job", "run", "nomad-jobs/hello.nomad.hcl")
	if err != nil {
		t.Fatalf("nomad job run: %v\n%s", err, out)
	}
	var allocID string
	deadline := time.Now().Add(3 * time.Minute)
	for allocID == "" {
		out, err = nomadCLI(t, h.url, h.aliceToken, "job", "allocs", "-json", "hello")
		var allocs []struct{ ID, ClientStatus string }
		if err == nil && json.Unmarshal([]byte(out), &allocs) == nil && len(allocs) == 1 && allocs[0].ClientStatus == "complete" {
			allocID = allocs[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("hello did not complete; nomad job allocs -json hello: %v\n%s", err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	logs, err := nomadCLI(t, h.url, h.aliceToken, "alloc", "logs", allocID)
	if err != nil || !strings.Contains(logs, "hello from SpiceRoute") {
		t.Fatalf("nomad alloc logs through the hub: %v\n%s", err, logs)
	}

	// What ran, as Nomad itself records it (read with the hub's Nomad token).
	a, _, err := h.nomad.Client.Allocations().Info(allocID, &nomadapi.QueryOptions{Namespace: "renter-alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := e2eCost(t, a)
	commission := want / 10
	h.checkPaid(t, want)

	// The invoice: number 1, its totals, the PDF's totals.
	var inv *invoice.Invoice
	waitFor(t, "the invoice", time.Minute, func() bool {
		inv, err = h.alice.Invoice(ctx, 1)
		return err == nil
	})
	if inv.Party != "alice" || inv.Job != "hello" || inv.Total != want || inv.Commission != commission || len(inv.Lines) != 3 {
		t.Fatalf("invoice %+v: want alice's hello, total %s, commission %s, 3 lines", inv, want, commission)
	}
	pdf := filepath.Join(dir, "invoice.pdf")
	if _, err := run(t, []string{"SPICE_ADDR=" + h.url, "SPICE_TOKEN=" + h.aliceToken}, "invoice", "get", "1", "-o", pdf); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", pdf, "-").CombinedOutput()
	if err != nil || !strings.Contains(string(text), inv.Total.String()) {
		t.Fatalf("the PDF invoice does not show the total %s: %v\n%s", inv.Total, err, text)
	}

	// The public log verifies, and agrees with the database.
	if out, err := run(t, nil, "ledger", "verify", "-address", h.url, "-database", h.dbURL); err != nil {
		t.Fatalf("spice ledger verify: %v\n%s", err, out)
	}
}

// e2eCost prices what Nomad says the allocation's task ran: each resource ×
// milliseconds × price, rounded down to the µSP.
func e2eCost(t *testing.T, a *nomadapi.Allocation) ledger.Amount {
	t.Helper()
	return e2eCostAt(t, a, e2ePrices)
}

// e2eCostAt is e2eCost at prices p.
func e2eCostAt(t *testing.T, a *nomadapi.Allocation, p market.Prices) ledger.Amount {
	t.Helper()
	var total int64
	for name, ts := range a.TaskStates {
		ms := ts.FinishedAt.Sub(ts.StartedAt).Milliseconds()
		tr := a.AllocatedResources.Tasks[name]
		cost := func(price ledger.Amount, qty, per int64) int64 {
			n := new(big.Int).Mul(big.NewInt(int64(price)*qty), big.NewInt(ms))
			return n.Quo(n, big.NewInt(per*3_600_000)).Int64()
		}
		total += cost(p.CPU, tr.Cpu.CpuShares, 1000) + cost(p.Memory, tr.Memory.MemoryMB, 1024) +
			cost(p.Disk, int64(a.AllocatedResources.Shared.DiskMB), 1024)
	}
	if total < 1000 {
		t.Fatalf("the job cost only %d µSP: too little to tell a wrong charge", total)
	}
	return ledger.Amount(total)
}

// TestHubKilledMidJobChargesOnce kills the hub process (SIGKILL) while a
// renter's job runs and has been charged by running debit notes, and
// restarts it: metering resumes from the database and Nomad, and the
// renter pays exactly what ran, once.
func TestHubKilledMidJobChargesOnce(t *testing.T) {
	ctx := context.Background()
	h := startJobsHub(t)
	src, err := os.ReadFile("../nomad-jobs/hello.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(string(src), "sleep 3", "sleep 12", 1)
	if spec == string(src) {
		t.Fatal("nomad-jobs/hello.nomad.hcl no longer sleeps 3 seconds: update this test")
	}
	file := filepath.Join(t.TempDir(), "long.nomad.hcl")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := nomadCLI(t, h.url, h.aliceToken, "job", "run", "-detach", file); err != nil {
		t.Fatalf("nomad job run: %v\n%s", err, out)
	}
	// A running debit note: alice's balance drops while the job runs.
	waitFor(t, "a running debit note", 2*time.Minute, func() bool {
		a, err := h.alice.Account(ctx, h.aliceAcct)
		return err == nil && a.Balance() < jobsFunds && a.DebitsPending > 0
	})
	h.stop(syscall.SIGKILL)
	time.Sleep(time.Second)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	var alloc *nomadapi.Allocation
	waitFor(t, "the job to end", 2*time.Minute, func() bool {
		stubs, _, err := h.nomad.Client.Jobs().Allocations("hello", false, &nomadapi.QueryOptions{Namespace: "renter-alice"})
		if err != nil || len(stubs) != 1 || stubs[0].ClientStatus != "complete" {
			return false
		}
		alloc, _, err = h.nomad.Client.Allocations().Info(stubs[0].ID, &nomadapi.QueryOptions{Namespace: "renter-alice"})
		return err == nil
	})
	h.checkPaid(t, e2eCost(t, alloc))
	if out, err := run(t, nil, "ledger", "verify", "-address", h.url, "-database", h.dbURL); err != nil {
		t.Fatalf("spice ledger verify: %v\n%s", err, out)
	}
}
