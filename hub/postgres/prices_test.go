package postgres_test

import (
	"context"
	"testing"

	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// Prices per region: a region without prices of its own has the hub-wide
// ones; its base is the newest an operator set (for it, else hub-wide);
// a market price is recorded only over the version it was computed from.
func TestPricesPerRegion(t *testing.T) {
	st := postgres.New(pgtest.MustOpenDB(t))
	ctx := context.Background()
	state := func(region string) market.PriceState {
		t.Helper()
		s, err := st.PriceState(ctx, region)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := state("eu-west"); s.Current != market.DefaultPrices || s.Base != market.DefaultPrices || s.Version != 0 {
		t.Fatalf("a new hub's eu-west state %+v", s)
	}
	hubBase := market.Prices{CPU: 50_000, Memory: 10_000, Disk: 200}
	if err := st.SetPrices(ctx, hubBase, "op"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetPrices(ctx, hubBase, market.SetByMarket); err == nil {
		t.Fatal("an operator set prices in the market's name")
	}
	if s := state("eu-west"); s.Current != hubBase || s.Base != hubBase || s.Version != 0 {
		t.Fatalf("eu-west falls back to the hub-wide prices: %+v", s)
	}
	// The market moves eu-west from the hub-wide base.
	up := market.Prices{CPU: 55_000, Memory: 10_000, Disk: 200}
	load := market.Load{Demand: market.Resources{CPUMHz: 4000}, Capacity: market.Resources{CPUMHz: 4000}, Utilization: market.Utilization{CPU: 10_000}}
	if ok, err := st.RecordMarketPrice(ctx, "eu-west", 0, up, load); !ok || err != nil {
		t.Fatalf("record: %v %v", ok, err)
	}
	s := state("eu-west")
	if s.Current != up || s.Base != hubBase || s.Version == 0 {
		t.Fatalf("eu-west after the market moved it: %+v", s)
	}
	if p, _ := st.Prices(ctx); p != hubBase {
		t.Fatalf("hub-wide prices %+v moved with eu-west's", p)
	}
	// Computed from a stale version: not recorded.
	if ok, err := st.RecordMarketPrice(ctx, "eu-west", 0, market.Prices{CPU: 1, Memory: 1, Disk: 1}, load); ok || err != nil {
		t.Fatalf("stale record: %v %v", ok, err)
	}
	// An operator's regional price is its new base and in force at once;
	// a market price computed before it is refused.
	opBase := market.Prices{CPU: 70_000, Memory: 12_000, Disk: 300}
	if err := st.SetPricesIn(ctx, "eu-west", opBase, "op"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.RecordMarketPrice(ctx, "eu-west", s.Version, up, load); ok || err != nil {
		t.Fatalf("record over an operator's price: %v %v", ok, err)
	}
	if s := state("eu-west"); s.Current != opBase || s.Base != opBase {
		t.Fatalf("eu-west after the operator set it: %+v", s)
	}
	regions, err := st.PricedRegions(ctx)
	if err != nil || len(regions) != 2 || regions[0] != "" || regions[1] != "eu-west" {
		t.Fatalf("priced regions %q, %v", regions, err)
	}
	h, err := st.PriceHistoryIn(ctx, "eu-west", 10)
	if err != nil || len(h) != 2 || h[0].Prices != opBase || h[0].Load != nil || h[1].Prices != up || h[1].Load == nil || *h[1].Load != load || h[1].SetBy != market.SetByMarket {
		t.Fatalf("eu-west history %+v, %v", h, err)
	}
	if all, err := st.PriceHistoryIn(ctx, market.AllRegions, 10); err != nil || len(all) != 3 {
		t.Fatalf("every region's history: %d changes, %v", len(all), err)
	}
	if hub, err := st.PriceHistory(ctx, 10); err != nil || len(hub) != 1 || hub[0].Region != "" {
		t.Fatalf("hub-wide history %+v, %v", hub, err)
	}
}
