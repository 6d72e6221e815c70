package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/market"
)

// spice job quote prices a job without running it: no hold, no Nomad job.
func TestJobQuote(t *testing.T) {
	h := startJobHub(t)
	acct, alice := h.renter(t, "alice", 10*sp)
	_, poor := h.renter(t, "poor", 1)
	hello, err := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "hello.nomad.hcl", string(hello))
	file := filepath.Join(dir, "hello.nomad.hcl")
	want := h.quote(t, market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)

	out := spice(t, alice, "job", "quote", file).ok(t)
	row(t, out, "Job", "hello")
	row(t, out, "Region", "hub")
	row(t, out, "Resources", "100 MHz CPU, 64 MB memory, 150 MB disk (every instance)")
	row(t, out, "Max runtime", "10m0s")
	row(t, out, "Quote", "up to "+want.String()+" (held when the job runs; you pay for what runs)")
	row(t, out, "Covered", "yes")
	contains(t, out, acct.String()+" (10.000000 SP available)")

	var e jobs.Estimate
	if err := json.Unmarshal([]byte(spice(t, alice, "job", "quote", "-json", file).ok(t)), &e); err != nil {
		t.Fatal(err)
	}
	if e.Quote.Max != want || !e.Covered || e.Account == nil || *e.Account != acct {
		t.Fatalf("-json quote %+v", e)
	}
	row(t, spice(t, poor, "job", "quote", file).ok(t), "Covered", "no: your account has 0.000001 SP available, less than the "+want.String()+" the job would hold")

	writeFile(t, dir, "raw.nomad.hcl", strings.Replace(string(hello), `driver = "exec"`, `driver = "raw_exec"`, 1))
	spice(t, alice, "job", "quote", filepath.Join(dir, "raw.nomad.hcl")).fails(t, 1, "policy_violation", `driver "raw_exec" is not allowed`)
	writeFile(t, dir, "broken.nomad.hcl", `job "broken" { group "g" {`)
	spice(t, alice, "job", "quote", filepath.Join(dir, "broken.nomad.hcl")).fails(t, 1, "jobspec:")
	spice(t, alice, "job", "quote").fails(t, 2, "missing arguments")
	spice(t, h.env(t, "op", auth.RoleOperator), "job", "quote", file).fails(t, 1, "only renters")

	h.noJob(t, "alice", "hello")
	if a := h.account(t, acct); a.DebitsPending != 0 || a.DebitsPosted != 0 || a.Balance() != 10*sp {
		t.Fatalf("alice's account after quotes: %+v", a)
	}
}

// spice prices history shows operators' and the market's changes, with
// the utilization that moved the market's.
func TestPricesHistory(t *testing.T) {
	h := apitest.New(t, api.Config{})
	op := map[string]string{"SPICE_ADDR": h.URL, "SPICE_TOKEN": h.Operator}
	anyone := map[string]string{"SPICE_ADDR": h.URL}
	contains(t, spice(t, anyone, "prices", "history").ok(t), "No price changes yet")
	contains(t, spice(t, op, "prices", "set", "-region", "eu-west", "-cpu", "0.05", "-memory", "0.01", "-disk", "0.0002").ok(t), "Prices set in eu-west: CPU 0.050000 SP")
	spice(t, op, "prices", "set", "-region", "EU", "-cpu", "0.05", "-memory", "0.01", "-disk", "0.0002").fails(t, 1, "bad_request", "lower-case")
	ctx := context.Background()
	st, err := h.Store.PriceState(ctx, "eu-west")
	if err != nil {
		t.Fatal(err)
	}
	load := market.Load{Demand: market.Resources{CPUMHz: 3000}, Capacity: market.Resources{CPUMHz: 4000, MemoryMB: 8000, DiskMB: 1000},
		Utilization: market.Utilization{CPU: 7500}}
	if ok, err := h.Store.RecordMarketPrice(ctx, "eu-west", st.Version, market.Prices{CPU: 51_250, Memory: 10_000, Disk: 200}, load); !ok || err != nil {
		t.Fatalf("record market price: %v %v", ok, err)
	}

	out := spice(t, anyone, "prices", "history").ok(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("history:\n%s", out)
	}
	contains(t, lines[0], "Set at", "Region", "By", "Utilization CPU/mem/disk")
	contains(t, lines[1], "eu-west", "market", "0.051250 SP", "75%/0%/0%")
	contains(t, lines[2], "eu-west", "op", "0.050000 SP", "-")
	if n := len(strings.Split(strings.TrimSpace(spice(t, anyone, "prices", "history", "-limit", "1").ok(t)), "\n")); n != 2 {
		t.Fatalf("-limit 1 printed %d lines", n)
	}
	contains(t, spice(t, anyone, "prices", "history", "-region", "hub").ok(t), "No price changes yet")
	contains(t, spice(t, anyone, "prices", "history", "-region", "us-east").ok(t), "No price changes yet")
	var h2 []market.PriceChange
	if err := json.Unmarshal([]byte(spice(t, anyone, "prices", "history", "-region", "eu-west", "-json").ok(t)), &h2); err != nil {
		t.Fatal(err)
	}
	if len(h2) != 2 || h2[0].Load == nil || *h2[0].Load != load || h2[1].Load != nil {
		t.Fatalf("-json history %+v", h2)
	}
	out = spice(t, anyone, "prices", "-region", "eu-west").ok(t)
	row(t, out, "Region", "eu-west")
	row(t, out, "CPU", "0.051250 SP per core-hour (1000 MHz)")
	// A region without prices of its own has the hub-wide ones.
	row(t, spice(t, anyone, "prices", "-region", "us-east").ok(t), "CPU", "0.040000 SP per core-hour (1000 MHz)")
}
