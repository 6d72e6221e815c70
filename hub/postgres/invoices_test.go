package postgres_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/invoice"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/postgres"
	"github.com/spiceroute/spiceroute/hub/postgres/pgtest"
)

// Invoice numbers are gapless and unique under concurrency, and a
// document reads back as issued.
func TestInvoiceNumbersGapless(t *testing.T) {
	st := postgres.New(pgtest.MustOpenDB(t))
	ctx := context.Background()
	lines, _ := market.DefaultPrices.Breakdown(market.Resources{CPUMHz: 1000}, time.Hour)
	var mu sync.Mutex
	var nums []int64
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			inv := &invoice.Invoice{Kind: invoice.RenterInvoice, Hub: "h", Party: "alice", Job: "j", IssuedAt: time.Now(),
				Lines: []invoice.Line{{Allocation: "a", Cost: lines[0]}}}
			if i%5 == 0 {
				inv.Commission = -1 // invalid: rejected before taking a number
			}
			err := st.IssueInvoice(ctx, inv)
			if (err == nil) == (i%5 == 0) {
				t.Errorf("invoice %d: err %v", i, err)
				return
			}
			if err == nil {
				mu.Lock()
				nums = append(nums, inv.Number)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	for i, n := range nums {
		if n != int64(i+1) {
			t.Fatalf("numbers %v are not 1..%d without gaps", nums, len(nums))
		}
	}
	got, err := st.Invoice(ctx, 7)
	if err != nil || got.Number != 7 || got.Total != 40_000 || got.Party != "alice" {
		t.Fatalf("invoice 7: %+v, %v", got, err)
	}
	if _, err := st.Invoice(ctx, 999); err == nil {
		t.Fatal("a missing invoice was found")
	}
}
