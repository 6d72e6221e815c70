package benchmark

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	cfg := Config{CPUTime: 200 * time.Millisecond, MemoryTime: 100 * time.Millisecond, BufferMB: 8}
	b, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.CPUScore <= 0 || b.MemoryMBps <= 0 {
		t.Errorf("benchmark %+v: want positive scores", b)
	}
	if b.Duration < cfg.CPUTime+cfg.MemoryTime || b.RanAt.IsZero() {
		t.Errorf("benchmark %+v: want a duration of at least %s and a start time", b, cfg.CPUTime+cfg.MemoryTime)
	}
	t.Logf("CPU %.0f units/s, memory %.0f MB/s, in %s", b.CPUScore, b.MemoryMBps, b.Duration)
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{CPUTime: time.Hour}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context: %v, want context.Canceled", err)
	}
}

// The chain gives the same result for the same input: the benchmark does
// the same work on every machine.
func TestUnitDeterministic(t *testing.T) {
	if a, b := unit(1), unit(1); a != b || a == 1 {
		t.Errorf("unit(1) = %#x, then %#x", a, b)
	}
}

func BenchmarkUnit(b *testing.B) {
	x := uint64(1)
	for b.Loop() {
		x = unit(x)
	}
	sink = x
}
