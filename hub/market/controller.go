package market

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// Basis points: 10,000 bp = 100 % = 1.
const BP = 10_000

// MaxUtilizationBP caps a measured utilization (100 × capacity), and is the
// utilization of queued demand with no capacity at all.
const MaxUtilizationBP = 100 * BP

// SetByMarket is the set_by of prices the controller sets.
const SetByMarket = "market"

// AllRegions, where a region is asked for, means every region (region
// names are lowercase letters, digits and dashes: agentapi.ValidRegion).
const AllRegions = "*"

// DefaultInterval is how often the controller moves prices by default.
const DefaultInterval = time.Minute

// ControllerConfig configures the utilization controller. Zero fields
// other than Interval take DefaultControllerConfig's values.
type ControllerConfig struct {
	// Interval is how often prices move (DefaultControllerConfig: 1m).
	// Zero or negative disables the periodic controller.
	Interval time.Duration
	// TargetBP is the target utilization (default 7000: 70 %).
	TargetBP int64
	// GainBP is k: the relative price change per unit of utilization
	// above or below the target (default 5000: utilization 20 points over
	// the target raises the price 10 %).
	GainBP int64
	// MaxStepBP bounds the relative change per interval (default 1000: 10 %).
	MaxStepBP int64
	// FloorBP is the lowest price, in basis points of the base price
	// (default 10000: the base itself; less lets idle capacity be cheaper).
	FloorBP int64
	// CeilingBP is the highest price, in basis points of the base price
	// (default 30000: three times the base).
	CeilingBP int64
}

// DefaultControllerConfig is the controller a hub with Nomad runs.
func DefaultControllerConfig() ControllerConfig {
	return ControllerConfig{Interval: DefaultInterval, TargetBP: 7000, GainBP: 5000, MaxStepBP: 1000, FloorBP: BP, CeilingBP: 3 * BP}
}

// errInvalidPricing wraps every configuration error.
var errInvalidPricing = errors.New("market: invalid pricing configuration")

// WithDefaults fills zero fields (but Interval) from DefaultControllerConfig
// and checks the result: 0 < target, 0 < max step ≤ 100 %, 0 ≤ floor ≤
// 100 % ≤ ceiling ≤ 100 × the base.
func (c ControllerConfig) WithDefaults() (ControllerConfig, error) {
	d := DefaultControllerConfig()
	for _, f := range []struct{ v, d *int64 }{{&c.TargetBP, &d.TargetBP}, {&c.GainBP, &d.GainBP}, {&c.MaxStepBP, &d.MaxStepBP}, {&c.FloorBP, &d.FloorBP}, {&c.CeilingBP, &d.CeilingBP}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	switch {
	case c.TargetBP < 0 || c.TargetBP > MaxUtilizationBP:
		return c, fmt.Errorf("%w: target utilization %d bp is outside 1..%d", errInvalidPricing, c.TargetBP, MaxUtilizationBP)
	case c.GainBP < 0 || c.GainBP > 100*BP:
		return c, fmt.Errorf("%w: gain %d bp is outside 1..%d", errInvalidPricing, c.GainBP, 100*BP)
	case c.MaxStepBP < 0 || c.MaxStepBP > BP:
		return c, fmt.Errorf("%w: maximum step %d bp is outside 1..%d", errInvalidPricing, c.MaxStepBP, BP)
	case c.FloorBP < 0 || c.FloorBP > BP:
		return c, fmt.Errorf("%w: floor %d bp of the base is outside 0..%d", errInvalidPricing, c.FloorBP, BP)
	case c.CeilingBP < BP || c.CeilingBP > 100*BP:
		return c, fmt.Errorf("%w: ceiling %d bp of the base is outside %d..%d", errInvalidPricing, c.CeilingBP, BP, 100*BP)
	}
	return c, nil
}

// Sample is the supply and demand of one region at one moment.
type Sample struct {
	Region   string
	Demand   Resources
	Capacity Resources
	// FloorCPU is the cheapest CPU floor (µSP per core-hour) the region's
	// ready contributors ask for; 0 when none states one.
	FloorCPU ledger.Amount
}

// Utilization is demand over capacity per resource, in basis points.
type Utilization struct {
	CPU    int64 `json:"cpu_bp"`
	Memory int64 `json:"memory_bp"`
	Disk   int64 `json:"disk_bp"`
}

// Load is what moved a market price: the region's demand, capacity and
// their ratio when the controller set it.
type Load struct {
	Demand      Resources   `json:"demand"`
	Capacity    Resources   `json:"capacity"`
	Utilization Utilization `json:"utilization"`
}

// UtilizationBP is demand / capacity in basis points, rounded down and
// capped at MaxUtilizationBP; demand with no capacity is the cap, no
// demand is 0.
func UtilizationBP(demand, capacity int64) int64 {
	switch {
	case demand <= 0:
		return 0
	case capacity <= 0:
		return MaxUtilizationBP
	case demand >= capacity*(MaxUtilizationBP/BP):
		return MaxUtilizationBP
	}
	return demand * BP / capacity
}

// LoadOf is the sample's load: its demand, capacity and utilization.
func LoadOf(s Sample) Load {
	return Load{Demand: s.Demand, Capacity: s.Capacity, Utilization: Utilization{
		CPU:    UtilizationBP(s.Demand.CPUMHz, s.Capacity.CPUMHz),
		Memory: UtilizationBP(s.Demand.MemoryMB, s.Capacity.MemoryMB),
		Disk:   UtilizationBP(s.Demand.DiskMB, s.Capacity.DiskMB),
	}}
}

// Bounds are the lowest and highest prices the controller may set.
type Bounds struct {
	Floor, Ceiling Prices
}

// Bounds are the floor and ceiling of base (see the package's pricing
// notes): floorCPU, the contributors' cheapest CPU floor, raises the CPU
// floor, never above the ceiling. The ceiling is at most 1,000 SP.
func (c ControllerConfig) Bounds(base Prices, floorCPU ledger.Amount) Bounds {
	f := func(p ledger.Amount, bp int64) ledger.Amount { return ledger.Amount(int64(p) * bp / BP) }
	ceil := func(p ledger.Amount) ledger.Amount { return min(f(p, c.CeilingBP), 1000*ledger.MicroPerSpice) }
	b := Bounds{
		Floor:   Prices{CPU: f(base.CPU, c.FloorBP), Memory: f(base.Memory, c.FloorBP), Disk: f(base.Disk, c.FloorBP)},
		Ceiling: Prices{CPU: ceil(base.CPU), Memory: ceil(base.Memory), Disk: ceil(base.Disk)},
	}
	b.Floor.CPU = min(max(b.Floor.CPU, floorCPU), b.Ceiling.CPU)
	b.Floor.Memory = min(b.Floor.Memory, b.Ceiling.Memory)
	b.Floor.Disk = min(b.Floor.Disk, b.Ceiling.Disk)
	return b
}

// Step is the controller's relative move at utilization u, in basis
// points: clamp(k · (u − T), −S, +S), k · (u − T) rounded toward zero.
func (c ControllerConfig) Step(uBP int64) int64 {
	s := c.GainBP * (uBP - c.TargetBP) / BP
	return min(max(s, -c.MaxStepBP), c.MaxStepBP)
}

// Next is the price after one interval: each resource's price p moves by
// Step of its utilization (p · step rounded toward zero, at least 1 µSP
// when the step is not zero), then is clamped to the bounds of base.
func (c ControllerConfig) Next(cur, base Prices, s Sample) (Prices, Load) {
	l := LoadOf(s)
	b := c.Bounds(base, s.FloorCPU)
	move := func(p ledger.Amount, u int64, lo, hi ledger.Amount) ledger.Amount {
		step := c.Step(u)
		d := int64(p) * step / BP
		switch {
		case d == 0 && step > 0:
			d = 1
		case d == 0 && step < 0:
			d = -1
		}
		return min(max(p+ledger.Amount(d), lo), hi)
	}
	return Prices{
		CPU:    move(cur.CPU, l.Utilization.CPU, b.Floor.CPU, b.Ceiling.CPU),
		Memory: move(cur.Memory, l.Utilization.Memory, b.Floor.Memory, b.Ceiling.Memory),
		Disk:   move(cur.Disk, l.Utilization.Disk, b.Floor.Disk, b.Ceiling.Disk),
	}, l
}

// PriceState is a region's price in force and the base the controller
// works from.
type PriceState struct {
	// Current is the region's newest price (the hub-wide one, then
	// DefaultPrices, when the region has none yet).
	Current Prices
	// Base is the newest price an operator set for the region (the
	// hub-wide one, then DefaultPrices, when none was set).
	Base Prices
	// Version identifies the region's newest price (0: none yet); a
	// market price is recorded only over the version it was computed from.
	Version int64
}

// Sampler measures supply and demand per region (*nomad.Scheduler). A
// region with nodes or demand appears once; Region "" holds the nodes that
// name no region and the queued demand of jobs that pin none. Safe for
// concurrent use.
type Sampler interface {
	Sample(ctx context.Context) ([]Sample, error)
}

// PriceBook keeps prices per region and their history (*postgres.Store).
// Safe for concurrent use.
type PriceBook interface {
	PriceState(ctx context.Context, region string) (PriceState, error)
	// PricedRegions lists every region with a price history.
	PricedRegions(ctx context.Context) ([]string, error)
	// RecordMarketPrice puts p in force in region, set by the market with
	// load, unless the region's price is no longer at version (an operator
	// or another hub replica set one since): then it returns false.
	RecordMarketPrice(ctx context.Context, region string, version int64, p Prices, l Load) (bool, error)
}

// Controller moves prices with supply and demand. Safe for concurrent use,
// though ticks are meant to come from one Run.
type Controller struct {
	cfg     ControllerConfig
	sampler Sampler
	book    PriceBook
	log     *slog.Logger
}

// NewController checks cfg (see ControllerConfig.WithDefaults) and returns
// a controller sampling from s and pricing into b.
func NewController(cfg ControllerConfig, s Sampler, b PriceBook, log *slog.Logger) (*Controller, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Controller{cfg: cfg, sampler: s, book: b, log: log}, nil
}

// Config is the controller's configuration, defaults filled in.
func (c *Controller) Config() ControllerConfig { return c.cfg }

// Tick samples supply and demand once and moves every region's prices one
// step: the hub-wide price ("") from the sum of all samples, each named
// region from its own, and regions with a history but no sample any more
// (their nodes left) as idle. It returns the prices it changed, sorted by
// region.
func (c *Controller) Tick(ctx context.Context) ([]PriceChange, error) {
	samples, err := c.sampler.Sample(ctx)
	if err != nil {
		return nil, fmt.Errorf("market: sample: %w", err)
	}
	known, err := c.book.PricedRegions(ctx)
	if err != nil {
		return nil, fmt.Errorf("market: %w", err)
	}
	byRegion := map[string]Sample{"": {}}
	for _, r := range known {
		byRegion[r] = Sample{Region: r}
	}
	hub := Sample{}
	for _, s := range samples {
		hub.Demand, hub.Capacity = add(hub.Demand, s.Demand), add(hub.Capacity, s.Capacity)
		if s.FloorCPU > 0 && (hub.FloorCPU == 0 || s.FloorCPU < hub.FloorCPU) {
			hub.FloorCPU = s.FloorCPU
		}
		if s.Region != "" {
			byRegion[s.Region] = s
		}
	}
	byRegion[""] = hub
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	sort.Strings(regions)
	// Every state is read before any price moves: a region without prices
	// of its own starts from the hub-wide price before this tick's step.
	states := make([]PriceState, len(regions))
	for i, r := range regions {
		if states[i], err = c.book.PriceState(ctx, r); err != nil {
			return nil, fmt.Errorf("market: prices of region %q: %w", r, err)
		}
	}
	var changed []PriceChange
	for i, r := range regions {
		st := states[i]
		next, load := c.cfg.Next(st.Current, st.Base, byRegion[r])
		if next == st.Current {
			continue
		}
		ok, err := c.book.RecordMarketPrice(ctx, r, st.Version, next, load)
		if err != nil {
			return changed, fmt.Errorf("market: record prices of region %q: %w", r, err)
		}
		if !ok {
			c.log.Info("market: prices changed meanwhile; moving them at the next tick", "region", r)
			continue
		}
		c.log.Debug("market: prices moved", "region", r, "cpu", next.CPU, "memory", next.Memory, "disk", next.Disk,
			"util_cpu_bp", load.Utilization.CPU, "util_memory_bp", load.Utilization.Memory, "util_disk_bp", load.Utilization.Disk)
		l := load
		changed = append(changed, PriceChange{Prices: next, Region: r, SetBy: SetByMarket, Load: &l})
	}
	return changed, nil
}

// Run ticks every Interval until ctx is done; it returns nil then. A
// failed tick (Nomad or the database unreachable) is logged and retried at
// the next. With a zero Interval it only waits for ctx.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("market: pricing tick failed", "err", err)
		}
	}
}

func add(a, b Resources) Resources {
	return Resources{CPUMHz: a.CPUMHz + b.CPUMHz, MemoryMB: a.MemoryMB + b.MemoryMB, DiskMB: a.DiskMB + b.DiskMB}
}
