package hostmetrics

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

func TestMachine(t *testing.T) {
	m, err := Machine(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Hostname == "" || m.OS != runtime.GOOS || m.Arch != runtime.GOARCH {
		t.Errorf("machine %+v: want a hostname, %s/%s", m, runtime.GOOS, runtime.GOARCH)
	}
	if m.CPUCores <= 0 || m.CPUMHz < int64(m.CPUCores) || m.MemoryMB <= 0 || m.DiskMB <= 0 {
		t.Errorf("machine %+v: want positive cores, MHz, memory and disk", m)
	}
	t.Logf("%+v", m)
}

func TestSample(t *testing.T) {
	ctx := context.Background()
	s := NewSampler(t.TempDir())
	first, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU so the second sample has something to measure.
	deadline := time.Now().Add(200 * time.Millisecond)
	for x := uint64(1); time.Now().Before(deadline); x = x*6364136223846793005 + 1 {
	}
	second, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]agentapi.Metrics{"first": first, "second": second} {
		for _, p := range plausible(m) {
			t.Errorf("%s sample: %s", name, p)
		}
	}
	if second.CPUPercent <= 0 {
		t.Errorf("CPU busy %.2f%% while this test burned CPU", second.CPUPercent)
	}
	if !second.SampledAt.After(first.SampledAt) {
		t.Errorf("sampled at %s, then %s", first.SampledAt, second.SampledAt)
	}
	if second.NetRxBytes < first.NetRxBytes || second.NetTxBytes < first.NetTxBytes {
		t.Errorf("network counters went back: %+v then %+v", first, second)
	}
	t.Logf("%+v", second)
}

func plausible(s agentapi.Metrics) (problems []string) {
	check := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	check(s.CPUPercent >= 0 && s.CPUPercent <= 100, "CPU percent outside 0–100")
	check(s.Load1 >= 0 && s.Load5 >= 0 && s.Load15 >= 0, "negative load")
	check(s.MemTotalMB > 0 && s.MemUsedMB > 0 && s.MemUsedMB <= s.MemTotalMB, "memory not 0 < used ≤ total")
	check(s.DiskTotMB > 0 && s.DiskUsedMB >= 0 && s.DiskUsedMB <= s.DiskTotMB, "disk not 0 ≤ used ≤ total > 0")
	check(s.IdleSeconds >= 0, "negative idle time")
	check(!s.SampledAt.IsZero(), "no sample time")
	return problems
}

// TestIdleFromTerminal: the idle time follows the newest access time of
// the terminals. A test cannot type, so it makes a character device of its
// own (root only) and sets its access time.
func TestIdleFromTerminal(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("needs Linux and root to make a character device")
	}
	dir := t.TempDir()
	if got := newestAccess([]string{filepath.Join(dir, "*")}); !got.IsZero() {
		t.Errorf("newest access of an empty directory = %s, want zero", got)
	}
	tty := filepath.Join(dir, "tty1")
	// 1,3 is /dev/null's device number: harmless if anything opened it.
	if err := syscall.Mknod(tty, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
		t.Skipf("mknod: %v", err)
	}
	now := time.Now()
	if err := os.Chtimes(tty, now.Add(-100*time.Second), now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A regular file does not count, however new.
	if err := os.WriteFile(filepath.Join(dir, "tty2"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr := idleTracker{ttyPattern: []string{filepath.Join(dir, "tty*")}}
	got := tr.idleSeconds(now)
	// A built-in keyboard used during the test would make it less.
	if got != 100 && !(tr.seenI8042 && got < 100) {
		t.Errorf("idle = %d s, want 100", got)
	}
	none := idleTracker{ttyPattern: []string{filepath.Join(dir, "none")}}
	if got := none.idleSeconds(now); got != 0 {
		t.Errorf("idle = %d s with no terminal and no i8042 change yet, want 0 (unknown)", got)
	}
}
