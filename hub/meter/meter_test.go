package meter_test

import (
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/hub/ledger"
	"github.com/spiceroute/spiceroute/hub/market"
	"github.com/spiceroute/spiceroute/hub/meter"
)

var (
	t0     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	prices = market.Prices{CPU: 36_000, Memory: 36_000, Disk: 3_686_400} // 10 µSP per 1000 MHz·s, per GiB·s, 1 µSP per MB·s of disk
)

func alloc(status meter.Status, tasks ...meter.Task) meter.Allocation {
	return meter.Allocation{ID: "a1", Node: "n1", Status: status, DiskMB: 1, Tasks: tasks}
}

func TestMeasure(t *testing.T) {
	web := meter.Task{Name: "web", CPUMHz: 1000, MemoryMB: 1024, StartedAt: t0, FinishedAt: t0.Add(60 * time.Second)}
	side := meter.Task{Name: "side", CPUMHz: 500, StartedAt: t0.Add(10 * time.Second)}
	never := meter.Task{Name: "never", CPUMHz: 4000}
	tests := []struct {
		name string
		a    meter.Allocation
		now  time.Time
		want ledger.Amount
	}{
		// 60 s × (10 CPU + 10 memory) µSP/s + disk 1 MB × 60 s × 1 µSP.
		{"Complete", alloc(meter.Complete, web), t0.Add(time.Hour), 60*20 + 60},
		// Still running at +30 s: 30 s of it.
		{"RunningSoFar", alloc(meter.Running, web), t0.Add(30 * time.Second), 30*20 + 30},
		// side started at +10 s, runs on: at +70 s, 60 s × 5 µSP; disk spans +0..+70.
		{"TwoTasks", alloc(meter.Running, web, side), t0.Add(70 * time.Second), 60*20 + 60*5 + 70},
		{"NeverStarted", alloc(meter.Pending, never), t0.Add(time.Hour), 0},
		{"FailedIsBilled", alloc(meter.Failed, web), t0.Add(time.Hour), 60*20 + 60},
		{"LostIsNotBilled", alloc(meter.Lost, web), t0.Add(time.Hour), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := meter.Measure(tt.a, prices, tt.now)
			if err != nil || u.Total != tt.want {
				t.Fatalf("total %d, %v; want %d (lines %+v)", u.Total, err, tt.want, u.Lines)
			}
			if tt.a.Status == meter.Lost != u.Lost {
				t.Fatalf("lost %v for status %s", u.Lost, tt.a.Status)
			}
		})
	}
}

// Charging cumulatively every few seconds adds up exactly to the cost of the
// whole run, however the prices round.
func TestCumulativeChargesSumToTheWhole(t *testing.T) {
	p := market.DefaultPrices // rounds at every tick
	task := meter.Task{Name: "t", CPUMHz: 333, MemoryMB: 777, StartedAt: t0, FinishedAt: t0.Add(17*time.Minute + 3*time.Second)}
	a := alloc(meter.Running, task)
	var charged ledger.Amount
	for now := t0; !now.After(t0.Add(20 * time.Minute)); now = now.Add(7 * time.Second) {
		u, err := meter.Measure(a, p, now)
		if err != nil {
			t.Fatal(err)
		}
		charged += meter.Due(u, charged)
	}
	a.Status = meter.Complete
	whole, _ := meter.Measure(a, p, t0.Add(time.Hour))
	if charged != whole.Total || whole.Total == 0 {
		t.Fatalf("ticks charged %d, the whole run costs %d", charged, whole.Total)
	}
	if meter.Due(whole, charged) != 0 {
		t.Fatal("something still due after the last tick")
	}
}

func TestLostAfterChargesIsNotChargedMore(t *testing.T) {
	web := meter.Task{Name: "web", CPUMHz: 1000, StartedAt: t0}
	u, _ := meter.Measure(alloc(meter.Running, web), prices, t0.Add(30*time.Second))
	charged := meter.Due(u, 0)
	lost, _ := meter.Measure(alloc(meter.Lost, web), prices, t0.Add(40*time.Second))
	if charged == 0 || !lost.Lost || lost.Total != 0 || meter.Due(lost, charged) != 0 {
		t.Fatalf("lost allocation: measured %+v, due %d after %d charged", lost, meter.Due(lost, charged), charged)
	}
}
