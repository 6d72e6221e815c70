package market_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/coded"
	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
)

func TestCost(t *testing.T) {
	p := market.Prices{CPU: 40_000, Memory: 10_000, Disk: 200}
	tests := []struct {
		name string
		r    market.Resources
		d    time.Duration
		want ledger.Amount
	}{
		{"OneCoreHour", market.Resources{CPUMHz: 1000}, time.Hour, 40_000},
		{"OneGiBHour", market.Resources{MemoryMB: 1024}, time.Hour, 10_000},
		{"DiskGiBHour", market.Resources{DiskMB: 1024}, time.Hour, 200},
		{"Sum", market.Resources{CPUMHz: 2000, MemoryMB: 2048, DiskMB: 1024}, 30 * time.Minute, (80_000 + 20_000 + 200) / 2},
		// 100 MHz + 128 MB for 7 s: 40000·100/1000·7/3600 = 7.777… → 7 and
		// 10000·128/1024·7/3600 = 2.430… → 2: each line rounds down.
		{"RoundsDownPerLine", market.Resources{CPUMHz: 100, MemoryMB: 128}, 7 * time.Second, 9},
		{"SubMillisecondIgnored", market.Resources{CPUMHz: 1000}, 999 * time.Microsecond, 0},
		{"Zero", market.Resources{}, time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Cost(tt.r, tt.d)
			if err != nil || got != tt.want {
				t.Fatalf("Cost = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// Metering in pieces never charges more than metering at once: the sum of
// per-interval costs is at most the cost of the whole, and within a µSP per
// line per interval of it (each line of each piece rounds down once).
func TestCostIsAdditiveWithinRounding(t *testing.T) {
	p := market.DefaultPrices
	r := market.Resources{CPUMHz: 1234, MemoryMB: 777, DiskMB: 300}
	whole, err := p.Cost(r, 95*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sum ledger.Amount
	for i := 0; i < 95; i++ {
		c, err := p.Cost(r, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sum += c
	}
	if sum > whole || whole-sum > 3*95 {
		t.Fatalf("95 one-minute pieces cost %d, the whole %d", sum, whole)
	}
}

func TestCostOverflow(t *testing.T) {
	p := market.Prices{CPU: 1000 * ledger.MicroPerSpice}
	if _, err := p.Cost(market.Resources{CPUMHz: math.MaxInt32}, 1000*time.Hour); err == nil {
		t.Fatal("an overflowing cost was accepted")
	}
	if _, err := p.Cost(market.Resources{CPUMHz: -1}, time.Hour); err == nil {
		t.Fatal("negative resources were accepted")
	}
}

func TestQuote(t *testing.T) {
	r := market.Resources{CPUMHz: 500, MemoryMB: 256, DiskMB: 300}
	q, err := market.NewQuote(market.DefaultPrices, r, 2*time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := market.DefaultPrices.Cost(r, 2*time.Hour)
	if q.Max != want || q.Max <= 0 {
		t.Fatalf("quote %d, want %d", q.Max, want)
	}
	_, err = market.NewQuote(market.DefaultPrices, r, 2*time.Hour, q.Max-1)
	if coded.CodeOf(err) != market.CodeOverMaxPrice {
		t.Fatalf("max price one µSP under the quote: %v", err)
	}
	if _, err := market.NewQuote(market.DefaultPrices, r, 2*time.Hour, q.Max); err != nil {
		t.Fatalf("max price equal to the quote: %v", err)
	}
}

func TestValidatePrices(t *testing.T) {
	if err := market.DefaultPrices.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []market.Prices{{CPU: -1}, {Memory: 1001 * ledger.MicroPerSpice}} {
		if coded.CodeOf(p.Validate()) != market.CodeInvalidPrice {
			t.Fatalf("%+v accepted", p)
		}
	}
}

func ExamplePrices_Cost() {
	// Half a core and 512 MB for 90 minutes at the default prices.
	c, _ := market.DefaultPrices.Cost(market.Resources{CPUMHz: 500, MemoryMB: 512}, 90*time.Minute)
	fmt.Println(c)
	// Output: 0.037500 SP
}

func TestBreakdownSumsToCost(t *testing.T) {
	r := market.Resources{CPUMHz: 750, MemoryMB: 300, DiskMB: 1000}
	lines, err := market.DefaultPrices.Breakdown(r, 37*time.Minute+13*time.Second)
	if err != nil || len(lines) != 3 {
		t.Fatalf("breakdown: %+v, %v", lines, err)
	}
	var sum ledger.Amount
	for _, l := range lines {
		sum += l.Amount
	}
	cost, _ := market.DefaultPrices.Cost(r, 37*time.Minute+13*time.Second)
	if sum != cost || cost == 0 {
		t.Fatalf("lines sum to %d, cost %d", sum, cost)
	}
	if lines[0].Resource != market.CPU || lines[0].Unit != "core-hour" || lines[0].Millis != 2_233_000 {
		t.Fatalf("first line %+v", lines[0])
	}
}
