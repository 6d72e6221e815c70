package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/api"
	"github.com/spiceroute/spiceroute/hub/api/apitest"
	"github.com/spiceroute/spiceroute/hub/auth"
	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/hubtest"
	"github.com/spiceroute/spiceroute/hub/jobs"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// sleeperHCL is a batch job of count instances of cpu MHz and 32 MB that
// sleeps for ten minutes, pinned to region unless it is "".
func sleeperHCL(id, region string, count, cpu int) string {
	pin := ""
	if region != "" {
		pin = fmt.Sprintf("constraint {\n    attribute = %q\n    value     = %q\n  }", nomad.RegionTarget, region)
	}
	return fmt.Sprintf(`job %q {
  type = "batch"
  meta {
    spiceroute_max_runtime = "1h"
  }
  %s
  group "g" {
    count = %d
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
        cpu    = %d
        memory = 32
      }
    }
  }
}
`, id, pin, count, cpu)
}

// startPricedHub is a job hub whose one contributor node is in region
// eu-west.
func startPricedHub(t *testing.T) *jobHub {
	t.Helper()
	h := hubtest.StartWithNomad(t, hubtest.WithNodeMeta(map[string]string{"spiceroute_region": "eu-west"}))
	return &jobHub{Hub: h, api: &apitest.Hub{URL: h.URL(), Store: h.Store, Ledger: h.Ledger}}
}

// sampled waits until the Nomad sample of region satisfies ok.
func (h *jobHub) sampled(t *testing.T, region, what string, ok func(market.Sample) bool) market.Sample {
	t.Helper()
	var last market.Sample
	poll(t, time.Minute, func() string {
		ss, err := h.Jobs.Sched.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = market.Sample{Region: region}
		for _, s := range ss {
			if s.Region == region {
				last = s
			}
		}
		if ok(last) {
			return ""
		}
		return fmt.Sprintf("%s: sample %+v", what, last)
	})
	return last
}

// The done-when of live pricing: under a scripted rise in demand (a
// renter's job needing more CPU than the contributor's node has, one
// instance running and one queued) the CPU price rises by at most the
// maximum step per tick up to its ceiling, never above; when the job stops
// it falls back, step by step, to the base price; and every change is in
// the price history with the utilization that moved it.
func TestLivePricing(t *testing.T) {
	h := startPricedHub(t)
	ctx := context.Background()
	_, alice := h.renter(t, "alice", 1000*sp)
	cfg := h.Pricing.Config()
	base := market.DefaultPrices
	ceiling := cfg.Bounds(base, 0).Ceiling

	idle := h.sampled(t, "eu-west", "the node's capacity", func(s market.Sample) bool { return s.Capacity.CPUMHz > 0 })
	// An idle hub rests at its base: a tick changes nothing.
	if changed, err := h.Pricing.Tick(ctx); err != nil || len(changed) != 0 {
		t.Fatalf("idle tick changed %+v (%v)", changed, err)
	}

	// Demand rises: two instances of 60 % of the node's CPU each, pinned
	// to eu-west (the queued demand of a job pinned to no region counts
	// hub-wide only).
	cpu := int(idle.Capacity.CPUMHz * 6 / 10)
	call(t, h.api, "POST", "/api/jobs", alice, api.JobRequest{HCL: sleeperHCL("crunch", "eu-west", 2, cpu)}).want(t, http.StatusCreated, nil)
	busy := h.sampled(t, "eu-west", "one instance placed and one queued", func(s market.Sample) bool { return s.Demand.CPUMHz == 2*int64(cpu) })
	if u := market.LoadOf(busy).Utilization.CPU; u < 11_000 {
		t.Fatalf("CPU utilization %d bp with 120 %% of the node asked for", u)
	}

	type step struct{ hub, region market.Prices }
	var rises []step
	prev := step{base, base}
	for i := 0; i < 20; i++ {
		if _, err := h.Pricing.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		var cur step
		var err error
		if cur.hub, err = h.Store.PricesIn(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if cur.region, err = h.Store.PricesIn(ctx, "eu-west"); err != nil {
			t.Fatal(err)
		}
		for _, p := range [][2]market.Prices{{prev.hub, cur.hub}, {prev.region, cur.region}} {
			was, now := p[0].CPU, p[1].CPU
			if now < was || now > ceiling.CPU || int64(now-was)*market.BP > int64(was)*cfg.MaxStepBP {
				t.Fatalf("busy tick %d: CPU %s → %s, want a rise of at most %d bp, up to %s", i, was, now, cfg.MaxStepBP, ceiling.CPU)
			}
		}
		// Memory and disk are barely used: they stay at their base.
		if cur.hub.Memory != base.Memory || cur.hub.Disk != base.Disk {
			t.Fatalf("busy tick %d: memory and disk moved: %+v", i, cur.hub)
		}
		if cur != prev {
			rises = append(rises, cur)
		}
		prev = cur
	}
	if prev.hub.CPU != ceiling.CPU || prev.region.CPU != ceiling.CPU {
		t.Fatalf("after 20 busy ticks CPU is %s hub-wide and %s in eu-west, want the ceiling %s", prev.hub.CPU, prev.region.CPU, ceiling.CPU)
	}
	if len(rises) < 5 {
		t.Fatalf("the price reached its ceiling in %d steps: not bounded by a %d bp step", len(rises), cfg.MaxStepBP)
	}

	// The public price routes show it.
	var pr api.PricesReply
	call(t, h.api, "GET", "/api/prices?region=eu-west", "", nil).want(t, http.StatusOK, &pr)
	if pr.Region != "eu-west" || pr.Prices.CPU != ceiling.CPU {
		t.Fatalf("GET /api/prices?region=eu-west: %+v", pr)
	}
	// A quote now uses the risen prices: the region's for a job pinned there.
	var est jobs.Estimate
	call(t, h.api, "POST", "/api/jobs/quote", alice, api.JobRequest{HCL: sleeperHCL("small", "eu-west", 1, 100)}).want(t, http.StatusOK, &est)
	if est.Quote.Region != "eu-west" || est.Quote.Prices.CPU != ceiling.CPU {
		t.Fatalf("quote at %+v in region %q, want the eu-west price %s", est.Quote.Prices, est.Quote.Region, ceiling.CPU)
	}

	// Demand ends.
	call(t, h.api, "DELETE", "/api/jobs/crunch", alice, nil).want(t, http.StatusAccepted, nil)
	h.sampled(t, "eu-west", "no demand after the job stopped", func(s market.Sample) bool { return s.Demand == (market.Resources{}) })
	falls := 0
	for i := 0; i < 30; i++ {
		if _, err := h.Pricing.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		cur, err := h.Store.PricesIn(ctx, "eu-west")
		if err != nil {
			t.Fatal(err)
		}
		if cur.CPU > prev.region.CPU || cur.CPU < base.CPU || int64(prev.region.CPU-cur.CPU)*market.BP > int64(prev.region.CPU)*cfg.MaxStepBP {
			t.Fatalf("idle tick %d: CPU %s → %s, want a fall of at most %d bp, down to %s", i, prev.region.CPU, cur.CPU, cfg.MaxStepBP, base.CPU)
		}
		if cur != prev.region {
			falls++
		}
		prev.region = cur
	}
	if prev.region != base {
		t.Fatalf("after 30 idle ticks eu-west prices are %+v, want the base %+v", prev.region, base)
	}
	if hubNow, _ := h.Store.PricesIn(ctx, ""); hubNow != base {
		t.Fatalf("after 30 idle ticks hub-wide prices are %+v, want the base %+v", hubNow, base)
	}

	// The history has every change, newest first, with what moved it.
	var hist api.PriceHistoryReply
	call(t, h.api, "GET", "/api/prices/history?region=eu-west&limit=1000", "", nil).want(t, http.StatusOK, &hist)
	if got, want := len(hist.History), len(rises)+falls; got != want {
		t.Fatalf("eu-west history has %d changes, want %d rises and %d falls", got, len(rises), falls)
	}
	for i, c := range hist.History {
		rising := i >= falls // newest first: the falls, then the rises
		if c.Region != "eu-west" || c.SetBy != market.SetByMarket || c.Load == nil || c.SetAt.IsZero() {
			t.Fatalf("history[%d] = %+v", i, c)
		}
		if rising && (c.Load.Utilization.CPU < 11_000 || c.Load.Demand.CPUMHz != 2*int64(cpu) || c.Load.Capacity != idle.Capacity) {
			t.Fatalf("rise %+v: want the busy load (CPU utilization over 110 %%, capacity %+v)", c.Load, idle.Capacity)
		}
		if !rising && (c.Load.Utilization != (market.Utilization{}) || c.Load.Demand != (market.Resources{})) {
			t.Fatalf("fall %+v: want the idle load", c.Load)
		}
	}
	if top := hist.History[len(hist.History)-1]; top.CPU != rises[0].region.CPU {
		t.Fatalf("oldest eu-west change %+v, want the first rise %+v", top.Prices, rises[0].region)
	}
	var all api.PriceHistoryReply
	call(t, h.api, "GET", "/api/prices/history?limit=1000", "", nil).want(t, http.StatusOK, &all)
	var hubWide api.PriceHistoryReply
	call(t, h.api, "GET", "/api/prices/history?region=&limit=1000", "", nil).want(t, http.StatusOK, &hubWide)
	if len(all.History) != len(hist.History)+len(hubWide.History) || len(hubWide.History) == 0 {
		t.Fatalf("every region's history has %d changes; eu-west's %d and the hub's %d", len(all.History), len(hist.History), len(hubWide.History))
	}
	// What GET /api/prices?history=N shows is the hub-wide history.
	call(t, h.api, "GET", "/api/prices?history=3", "", nil).want(t, http.StatusOK, &pr)
	if len(pr.History) != 3 || pr.History[0].Region != "" {
		t.Fatalf("GET /api/prices?history=3: %+v", pr.History)
	}
}

// An operator's prices are the base the market moves from: in force at
// once, with the bounds following them.
func TestOperatorSetsMarketBase(t *testing.T) {
	h := startPricedHub(t)
	ctx := context.Background()
	op := h.token(t, "op", auth.RoleOperator)
	_, alice := h.renter(t, "alice", 1000*sp)
	idle := h.sampled(t, "eu-west", "the node's capacity", func(s market.Sample) bool { return s.Capacity.CPUMHz > 0 })
	newBase := market.Prices{CPU: 100_000, Memory: 20_000, Disk: 400}
	call(t, h.api, "PUT", "/api/prices", op, map[string]any{"cpu_core_hour": 100_000, "memory_gib_hour": 20_000, "disk_gib_hour": 400, "region": "eu-west"}).
		want(t, http.StatusOK, nil)
	call(t, h.api, "PUT", "/api/prices", op, map[string]any{"cpu_core_hour": 1, "memory_gib_hour": 1, "disk_gib_hour": 1, "region": "EU West"}).
		wantError(t, http.StatusBadRequest, api.CodeBadRequest)
	if p, _ := h.Store.PricesIn(ctx, "eu-west"); p != newBase {
		t.Fatalf("eu-west prices %+v, want the operator's %+v", p, newBase)
	}
	// Idle: at the base, nothing moves.
	if changed, err := h.Pricing.Tick(ctx); err != nil || len(changed) != 0 {
		t.Fatalf("idle tick changed %+v (%v)", changed, err)
	}
	cpu := int(idle.Capacity.CPUMHz * 6 / 10)
	call(t, h.api, "POST", "/api/jobs", alice, api.JobRequest{HCL: sleeperHCL("crunch", "eu-west", 2, cpu)}).want(t, http.StatusCreated, nil)
	h.sampled(t, "eu-west", "one instance placed and one queued", func(s market.Sample) bool { return s.Demand.CPUMHz == 2*int64(cpu) })
	if _, err := h.Pricing.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Store.PricesIn(ctx, "eu-west"); p.CPU != 110_000 {
		t.Fatalf("eu-west CPU after a busy tick %s, want 10 %% over the operator's base", p.CPU)
	}
	var hist api.PriceHistoryReply
	call(t, h.api, "GET", "/api/prices/history?region=eu-west", "", nil).want(t, http.StatusOK, &hist)
	if len(hist.History) != 2 || hist.History[0].SetBy != market.SetByMarket || hist.History[1].SetBy != "op" || hist.History[1].Load != nil {
		t.Fatalf("history %+v", hist.History)
	}
	call(t, h.api, "DELETE", "/api/jobs/crunch", alice, nil).want(t, http.StatusAccepted, nil)
}

// POST /api/jobs/quote quotes a job exactly as admission would, without a
// hold, an admission or a Nomad job, and says whether the renter can pay.
func TestQuoteJob(t *testing.T) {
	h := startJobHub(t)
	aliceAcct, alice := h.renter(t, "alice", 10*sp)
	_, poor := h.renter(t, "poor", 1)
	hello := helloHCL(t)
	want, err := market.DefaultPrices.Cost(market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := h.account(t, aliceAcct)

	var e jobs.Estimate
	call(t, h.api, "POST", "/api/jobs/quote", alice, api.JobRequest{HCL: hello}).want(t, http.StatusOK, &e)
	if e.JobID != "hello" || e.Quote.Max != want || e.Quote.Prices != market.DefaultPrices || e.Quote.Region != "" ||
		e.Quote.Resources != (market.Resources{CPUMHz: 100, MemoryMB: 64, DiskMB: 150}) || e.Quote.MaxRuntime != 10*time.Minute ||
		e.Account == nil || *e.Account != aliceAcct || e.Available != 10*sp || !e.Covered || e.Note != "" {
		t.Fatalf("quote %+v, want %s for hello, covered by alice's 10 SP", e, want)
	}
	// As Nomad's JSON job too.
	var ej jobs.Estimate
	call(t, h.api, "POST", "/api/jobs/quote", alice, map[string]any{"job": h.parse(t, hello)}).want(t, http.StatusOK, &ej)
	if ej.Quote != e.Quote {
		t.Fatalf("JSON job quoted %+v, HCL %+v", ej.Quote, e.Quote)
	}
	// An account that cannot pay still gets the quote, with why.
	e = jobs.Estimate{}
	call(t, h.api, "POST", "/api/jobs/quote", poor, api.JobRequest{HCL: hello}).want(t, http.StatusOK, &e)
	if e.Covered || e.Quote.Max != want || !strings.Contains(e.Note, "0.000001 SP available") {
		t.Fatalf("poor's quote %+v", e)
	}
	// A renter without an account too.
	e = jobs.Estimate{}
	call(t, h.api, "POST", "/api/jobs/quote", h.token(t, "dave", auth.RoleRenter), api.JobRequest{HCL: hello}).want(t, http.StatusOK, &e)
	if e.Covered || e.Account != nil || !strings.Contains(e.Note, "no renter account") {
		t.Fatalf("dave's quote %+v", e)
	}

	raw := strings.Replace(hello, `driver = "exec"`, `driver = "raw_exec"`, 1)
	cheap := strings.Replace(hello, `meta {`, "meta {\n    spiceroute_max_price = \"0.000001\"", 1)
	for _, tc := range []struct {
		name   string
		token  string
		body   any
		status int
		code   coded.Code
		want   string
	}{
		{"NotARenter", h.token(t, "op", auth.RoleOperator), api.JobRequest{HCL: hello}, 403, ledger.CodeForbidden, "only renters"},
		{"NoToken", "", api.JobRequest{HCL: hello}, 401, api.CodeUnauthenticated, ""},
		{"NeitherHCLNorJob", alice, `{}`, 400, api.CodeBadRequest, `send {"hcl"`},
		{"BothHCLAndJob", alice, map[string]any{"hcl": hello, "job": h.parse(t, hello)}, 400, api.CodeBadRequest, "not both"},
		{"MalformedHCL", alice, api.JobRequest{HCL: `job "broken" { group "g" {`}, 400, "invalid", "jobspec:"},
		{"PolicyViolation", alice, api.JobRequest{HCL: raw}, 422, "policy_violation", `driver "raw_exec" is not allowed`},
		{"OverMaxPrice", alice, api.JobRequest{HCL: cheap}, 422, market.CodeOverMaxPrice, "more than your maximum price"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := call(t, h.api, "POST", "/api/jobs/quote", tc.token, tc.body).wantError(t, tc.status, tc.code)
			mustContain(t, e.Message, tc.want)
		})
	}

	// Nothing was held, admitted or registered.
	if a := h.account(t, aliceAcct); a.DebitsPending != before.DebitsPending || a.DebitsPosted != before.DebitsPosted || a.Balance() != 10*sp {
		t.Fatalf("alice's account after quotes: %+v", a)
	}
	for _, name := range []string{"alice", "poor"} {
		if ids := h.nomadJobs(t, name); len(ids) != 0 {
			t.Fatalf("a quoted job of %s reached Nomad: %v", name, ids)
		}
	}
	var list api.JobsReply
	call(t, h.api, "GET", "/api/jobs", alice, nil).want(t, http.StatusOK, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("quotes left admissions: %+v", list.Jobs)
	}
}
