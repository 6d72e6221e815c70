package market_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func cfg(t *testing.T) market.ControllerConfig {
	t.Helper()
	c, err := market.DefaultControllerConfig().WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// node is one contributor-sized region: 4000 MHz, 10,000 MB memory, 100,000 MB disk.
var node = market.Resources{CPUMHz: 4000, MemoryMB: 10_000, DiskMB: 100_000}

func demand(cpuPct int64) market.Resources {
	return market.Resources{CPUMHz: node.CPUMHz * cpuPct / 100, MemoryMB: node.MemoryMB * cpuPct / 100, DiskMB: node.DiskMB * cpuPct / 100}
}

func TestUtilizationBP(t *testing.T) {
	tests := []struct {
		name             string
		demand, capacity int64
		want             int64
	}{
		{"Idle", 0, 4000, 0},
		{"NoDemandNoCapacity", 0, 0, 0},
		{"Half", 2000, 4000, 5000},
		{"RoundsDown", 1, 3, 3333},
		{"Full", 4000, 4000, 10_000},
		{"OverCommitted", 6000, 4000, 15_000},
		{"QueuedWithoutCapacity", 100, 0, market.MaxUtilizationBP},
		{"Capped", 1 << 40, 1, market.MaxUtilizationBP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := market.UtilizationBP(tt.demand, tt.capacity); got != tt.want {
				t.Fatalf("UtilizationBP(%d, %d) = %d, want %d", tt.demand, tt.capacity, got, tt.want)
			}
		})
	}
}

func TestStep(t *testing.T) {
	c := cfg(t) // target 7000, gain 5000, max step 1000
	tests := []struct {
		name string
		u    int64
		want int64
	}{
		{"AtTarget", 7000, 0},
		{"SlightlyOver", 7100, 50},
		{"TwentyPointsOver", 9000, 1000},
		{"FullBoundedByMaxStep", 10_000, 1000},
		{"SlightlyUnder", 6900, -50},
		{"IdleBoundedByMaxStep", 0, -1000},
		{"RoundsTowardZero", 7001, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Step(tt.u); got != tt.want {
				t.Fatalf("Step(%d) = %d, want %d", tt.u, got, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	c := cfg(t)
	base := market.Prices{CPU: 40_000, Memory: 10_000, Disk: 200}
	tests := []struct {
		name      string
		cur       market.Prices
		sample    market.Sample
		want      market.Prices
		wantUtilC int64
	}{
		{"IdleAtBaseStays", base, market.Sample{Capacity: node}, base, 0},
		{"AtTargetStays", market.Prices{CPU: 50_000, Memory: 12_000, Disk: 250}, market.Sample{Capacity: node, Demand: demand(70)},
			market.Prices{CPU: 50_000, Memory: 12_000, Disk: 250}, 7000},
		{"FullRisesByMaxStep", base, market.Sample{Capacity: node, Demand: demand(100)}, market.Prices{CPU: 44_000, Memory: 11_000, Disk: 220}, 10_000},
		{"EightyPercentRisesFivePercent", base, market.Sample{Capacity: node, Demand: demand(80)}, market.Prices{CPU: 42_000, Memory: 10_500, Disk: 210}, 8000},
		{"QueuedWithoutCapacityRisesByMaxStep", base, market.Sample{Demand: demand(10)}, market.Prices{CPU: 44_000, Memory: 11_000, Disk: 220}, market.MaxUtilizationBP},
		{"CeilingClamps", market.Prices{CPU: 115_000, Memory: 29_000, Disk: 590}, market.Sample{Capacity: node, Demand: demand(100)},
			market.Prices{CPU: 120_000, Memory: 30_000, Disk: 600}, 10_000},
		{"IdleFallsByMaxStep", market.Prices{CPU: 80_000, Memory: 20_000, Disk: 400}, market.Sample{Capacity: node},
			market.Prices{CPU: 72_000, Memory: 18_000, Disk: 360}, 0},
		{"FloorClamps", market.Prices{CPU: 42_000, Memory: 10_500, Disk: 210}, market.Sample{Capacity: node}, base, 0},
		{"BelowFloorRaisedAtOnce", market.Prices{CPU: 1000, Memory: 1000, Disk: 1}, market.Sample{Capacity: node, Demand: demand(70)}, base, 7000},
		{"AboveCeilingLoweredAtOnce", market.Prices{CPU: 999_000, Memory: 999_000, Disk: 999_000}, market.Sample{Capacity: node, Demand: demand(100)},
			market.Prices{CPU: 120_000, Memory: 30_000, Disk: 600}, 10_000},
		{"ContributorFloorRaisesCPUFloor", base, market.Sample{Capacity: node, FloorCPU: 50_000}, market.Prices{CPU: 50_000, Memory: 10_000, Disk: 200}, 0},
		{"ContributorFloorCappedAtCeiling", base, market.Sample{Capacity: node, FloorCPU: 500_000}, market.Prices{CPU: 120_000, Memory: 10_000, Disk: 200}, 0},
		{"EachResourceItsOwnUtilization", base, market.Sample{Capacity: node, Demand: market.Resources{CPUMHz: 4000}},
			market.Prices{CPU: 44_000, Memory: 10_000, Disk: 200}, 10_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, load := c.Next(tt.cur, base, tt.sample)
			if got != tt.want {
				t.Fatalf("Next = %+v, want %+v", got, tt.want)
			}
			if load.Utilization.CPU != tt.wantUtilC || load.Demand != tt.sample.Demand || load.Capacity != tt.sample.Capacity {
				t.Fatalf("load %+v, want CPU utilization %d bp of the sample %+v", load, tt.wantUtilC, tt.sample)
			}
		})
	}
}

// A small price still moves: p · step rounds toward zero, but a step is
// at least 1 µSP.
func TestNextMovesSmallPrices(t *testing.T) {
	c := cfg(t)
	base := market.Prices{CPU: 3, Memory: 3, Disk: 0}
	got, _ := c.Next(base, base, market.Sample{Capacity: node, Demand: node})
	if want := (market.Prices{CPU: 4, Memory: 4, Disk: 0}); got != want {
		t.Fatalf("Next = %+v, want %+v (a free resource stays free)", got, want)
	}
}

// Under a rise in demand the price climbs by at most the maximum step per
// interval, never above the ceiling; when the demand ends it falls back,
// step by step, to the base and stays there.
func TestRiseAndFallBack(t *testing.T) {
	c := cfg(t)
	base := market.DefaultPrices
	b := c.Bounds(base, 0)
	p := base
	busy := market.Sample{Capacity: node, Demand: demand(150)}
	var peak market.Prices
	for i := range 30 {
		next, _ := c.Next(p, base, busy)
		if next.CPU < p.CPU || next.CPU > b.Ceiling.CPU || (next.CPU-p.CPU)*market.BP > p.CPU*ledger.Amount(c.MaxStepBP) {
			t.Fatalf("busy interval %d: CPU %d → %d, want a rise of at most %d bp up to %d", i, p.CPU, next.CPU, c.MaxStepBP, b.Ceiling.CPU)
		}
		p, peak = next, next
	}
	if peak != b.Ceiling {
		t.Fatalf("after 30 busy intervals prices are %+v, want the ceiling %+v", peak, b.Ceiling)
	}
	idle := market.Sample{Capacity: node}
	for i := range 30 {
		next, _ := c.Next(p, base, idle)
		if next.CPU > p.CPU || next.CPU < base.CPU || (p.CPU-next.CPU)*market.BP > p.CPU*ledger.Amount(c.MaxStepBP) {
			t.Fatalf("idle interval %d: CPU %d → %d, want a fall of at most %d bp down to %d", i, p.CPU, next.CPU, c.MaxStepBP, base.CPU)
		}
		p = next
	}
	if p != base {
		t.Fatalf("after 30 idle intervals prices are %+v, want the base %+v", p, base)
	}
}

func TestControllerConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		cfg  market.ControllerConfig
		ok   bool
	}{
		{"Zero", market.ControllerConfig{}, true},
		{"Defaults", market.DefaultControllerConfig(), true},
		{"DiscountFloor", market.ControllerConfig{FloorBP: 5000}, true},
		{"CeilingBelowBase", market.ControllerConfig{CeilingBP: 9000}, false},
		{"FloorAboveBase", market.ControllerConfig{FloorBP: 12_000}, false},
		{"StepOver100Percent", market.ControllerConfig{MaxStepBP: 20_000}, false},
		{"NegativeTarget", market.ControllerConfig{TargetBP: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.WithDefaults()
			if (err == nil) != tt.ok {
				t.Fatalf("WithDefaults(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
			}
			if tt.ok && (got.TargetBP == 0 || got.GainBP == 0 || got.MaxStepBP == 0 || got.CeilingBP == 0) {
				t.Fatalf("defaults not filled in: %+v", got)
			}
		})
	}
}

// book is an in-memory PriceBook for the controller's own tests (the
// PostgreSQL one is tested in hub/postgres and end to end).
type book struct {
	base    map[string]market.Prices
	history []market.PriceChange
	stale   bool // the next RecordMarketPrice finds a newer price
}

func (b *book) PriceState(_ context.Context, region string) (market.PriceState, error) {
	// As *postgres.Store: a region without prices of its own has the
	// hub-wide ones.
	st := market.PriceState{Current: market.DefaultPrices, Base: market.DefaultPrices}
	if p, ok := b.base[region]; ok {
		st.Current, st.Base = p, p
	}
	own := false
	for i, h := range b.history {
		if h.Region == region {
			st.Current, st.Version, own = h.Prices, int64(i+1), true
		} else if h.Region == "" && !own {
			st.Current = h.Prices
		}
	}
	return st, nil
}

func (b *book) PricedRegions(context.Context) ([]string, error) {
	var rs []string
	for _, h := range b.history {
		if !slices.Contains(rs, h.Region) {
			rs = append(rs, h.Region)
		}
	}
	return rs, nil
}

func (b *book) RecordMarketPrice(_ context.Context, region string, version int64, p market.Prices, l market.Load) (bool, error) {
	if b.stale {
		b.stale = false
		return false, nil
	}
	b.history = append(b.history, market.PriceChange{Prices: p, Region: region, SetBy: market.SetByMarket, Load: &l})
	return true, nil
}

type samples []market.Sample

func (s *samples) Sample(context.Context) ([]market.Sample, error) { return *s, nil }

type failing struct{}

func (failing) Sample(context.Context) ([]market.Sample, error) { return nil, errors.New("nomad down") }

func TestControllerTick(t *testing.T) {
	ctx := context.Background()
	bk := &book{base: map[string]market.Prices{}}
	s := &samples{
		{Region: "", Capacity: node, Demand: node},                          // a node naming no region, full
		{Region: "eu-west", Capacity: node, Demand: node, FloorCPU: 45_000}, // full
	}
	c, err := market.NewController(market.ControllerConfig{}, s, bk, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := c.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Both full: both rise one step (10 %) from the same hub-wide price,
	// eu-west's first, having no price of its own yet; the cheapest
	// contributor floor lifts CPU further, at once.
	if len(changed) != 2 || changed[0].Region != "" || changed[1].Region != "eu-west" {
		t.Fatalf("changed %+v, want the hub-wide and eu-west prices", changed)
	}
	if got, want := changed[0].Prices, (market.Prices{CPU: 45_000, Memory: 11_000, Disk: 220}); got != want {
		t.Fatalf("hub-wide prices %+v, want %+v", got, want)
	}
	if got, want := changed[1].Prices, (market.Prices{CPU: 45_000, Memory: 11_000, Disk: 220}); got != want {
		t.Fatalf("eu-west prices %+v, want %+v", got, want)
	}
	if l := changed[1].Load; l == nil || l.Utilization != (market.Utilization{CPU: 10_000, Memory: 10_000, Disk: 10_000}) || l.Capacity != node {
		t.Fatalf("eu-west load %+v", l)
	}
	// eu-west's nodes leave and the demand ends: eu-west is priced as
	// idle and falls back 10 %, and so does the hub-wide price, no
	// contributor floor holding CPU up.
	*s = samples{{Region: "", Capacity: node}}
	changed, err = c.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 2 || changed[1].Region != "eu-west" || changed[1].CPU != 40_500 || changed[1].Memory != 10_000 || changed[0].CPU != 40_500 {
		t.Fatalf("after eu-west left: %+v", changed)
	}
	// A price that changed meanwhile is not overwritten.
	*s = samples{{Region: "eu-west", Capacity: node, Demand: node}}
	bk.stale = true
	n := len(bk.history)
	if _, err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(bk.history) - n; got != 1 {
		t.Fatalf("%d prices recorded, want 1 (the stale one skipped)", got)
	}
	// Nothing moves: nothing is recorded.
	*s = samples{}
	bk.history = nil
	if changed, err := c.Tick(ctx); err != nil || len(changed) != 0 || len(bk.history) != 0 {
		t.Fatalf("idle hub at its base: changed %+v, %v", changed, err)
	}
	c2, _ := market.NewController(market.ControllerConfig{}, failing{}, bk, nil)
	if _, err := c2.Tick(ctx); err == nil {
		t.Fatal("a failed sample is not an error")
	}
}
