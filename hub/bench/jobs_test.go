package bench_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/spiceroute/spiceroute/hub/bench"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/postgres/pgcluster"
	"github.com/spiceroute/spiceroute/scheduler/nomadagent"
)

// TestJobs runs a small `spice bench jobs` in process against a real
// PostgreSQL, Nomad agent and hub, and checks outcomes only: both sides'
// jobs ran and were registered and evaluated, every admission through the
// hub was settled with the books balanced and no hold left, and the report
// was printed. It asserts no rate or ratio: those are the benchmark's to
// print.
func TestJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, a Nomad agent and a hub")
	}
	// Registered first, so it runs last, after PostgreSQL has stopped.
	t.Cleanup(func() {
		if ps := nomadagent.Descendants(os.Getpid()); len(ps) > 0 {
			t.Errorf("processes left running below the test: %v", ps)
		}
	})
	ctx := context.Background()
	cl, err := pgcluster.Start(ctx, pgcluster.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Stop() })

	const samples, clients, jobs = 1, 4, 40
	var out bytes.Buffer
	res, err := bench.Jobs(ctx, cl, bench.JobsConfig{NomadBin: nomadBin(), Samples: samples, Clients: clients, Jobs: jobs,
		TempDir: t.TempDir(), PolicyFile: "../../policies/admission.hcl"}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.DirectP50 <= 0 || res.HubP50 <= 0 {
		t.Errorf("submit-to-running: direct %v, hub %v; want both positive", res.DirectP50, res.HubP50)
	}
	for name, v := range map[string]float64{"direct registered": res.DirectRate, "hub registered": res.HubRate,
		"direct sustained": res.DirectSustained, "hub sustained": res.HubSustained, "CPU bound": res.CPUBound} {
		if !(v > 0) {
			t.Errorf("%s = %g; want a positive rate", name, v)
		}
	}
	// Through the hub: the warm-up job, the latency sample and two
	// throughput runs, each an admission of its own.
	if want := int64(1 + samples + 2*jobs); res.Books.Admissions != want {
		t.Errorf("the hub recorded %d admissions; want %d", res.Books.Admissions, want)
	}
	if res.Books.Sum != 0 || res.Books.RenterHeld != 0 {
		t.Errorf("books: balances sum to %d µSP, %s still held; want 0 and nothing", res.Books.Sum, res.Books.RenterHeld)
	}
	// The latency job ran for a few milliseconds before it was stopped,
	// worth a fraction of a µSP; the unplaceable jobs never ran. The
	// renter may have paid nothing, and was never paid.
	if res.Books.RenterPaid < 0 || res.Books.RenterPaid > ledger.MicroPerSpice {
		t.Errorf("the renter paid %s; want between nothing and 1 SP", res.Books.RenterPaid)
	}
	for _, want := range []string{"hub / direct = ", "run 1, directly:", "run 1, through the hub:", "the target is judged with -pin",
		"the books after", "mean time per registration"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output has no %q", want)
		}
	}
}
