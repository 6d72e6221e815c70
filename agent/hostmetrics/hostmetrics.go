// Package hostmetrics measures the contributor's machine with gopsutil: what
// it has (Machine, sent at join) and how busy it is (Sampler.Sample, sent
// with every heartbeat). It is the only package that imports gopsutil.
//
// What the numbers mean:
//
//   - CPU percent is the share of all CPUs' time, 0–100, spent not idle
//     (and not in iowait) since the previous sample; the first sample
//     covers the time since boot.
//   - Memory used is total minus available (MemAvailable: what can be
//     given to new work without swapping), so page cache the kernel would
//     drop does not count as used.
//   - Disk is the filesystem holding Sampler's path (the Nomad client's
//     data directory, where allocations live).
//   - Network is bytes since boot summed over all interfaces except
//     loopback.
//   - Idle time: see idle_linux.go. 0 when unknown.
package hostmetrics

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	psnet "github.com/shirou/gopsutil/v3/net"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

// mb is agentapi's MB: 1024 × 1024 bytes.
const mb = 1 << 20

// Machine describes the machine: its cores, their total clock as Nomad
// counts it (cores × MHz), its memory and the size of the filesystem
// holding path (default "/").
func Machine(ctx context.Context, path string) (agentapi.Machine, error) {
	if path == "" {
		path = "/"
	}
	m := agentapi.Machine{OS: runtime.GOOS, Arch: runtime.GOARCH}
	var err error
	if m.Hostname, err = os.Hostname(); err != nil {
		return m, fmt.Errorf("hostmetrics: hostname: %w", err)
	}
	cores, err := cpu.CountsWithContext(ctx, true)
	if err != nil || cores <= 0 {
		cores = runtime.NumCPU()
	}
	m.CPUCores = cores
	m.CPUMHz = int64(cores) * cpuMHz(ctx)
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return m, fmt.Errorf("hostmetrics: memory: %w", err)
	}
	m.MemoryMB = int64(vm.Total / mb)
	du, err := disk.UsageWithContext(ctx, path)
	if err != nil {
		return m, fmt.Errorf("hostmetrics: disk %s: %w", path, err)
	}
	m.DiskMB = int64(du.Total / mb)
	return m, nil
}

// cpuMHz is one core's clock in MHz: the highest of the CPUs' reported
// clocks (their maximum where the kernel tells it, as Nomad's fingerprint
// does), or 1000 when none is known (virtual machines often report none).
func cpuMHz(ctx context.Context) int64 {
	var best float64
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"); err == nil {
		var khz float64
		if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &khz); err == nil {
			best = khz / 1000
		}
	}
	if best == 0 {
		infos, _ := cpu.InfoWithContext(ctx)
		for _, i := range infos {
			best = max(best, i.Mhz)
		}
	}
	if best <= 0 {
		return 1000
	}
	return int64(best)
}

// Sampler takes samples of the host. Its methods are safe for concurrent
// use; Sample keeps the previous CPU times to report usage between samples.
type Sampler struct {
	path string

	mu      sync.Mutex
	prevCPU *cpu.TimesStat
	idle    idleTracker
}

// NewSampler returns a Sampler whose disk figures are for the filesystem
// holding path (default "/").
func NewSampler(path string) *Sampler {
	if path == "" {
		path = "/"
	}
	return &Sampler{path: path}
}

// Sample measures the host now. It does not block beyond reading /proc and
// /sys (no sleeping to measure CPU).
func (s *Sampler) Sample(ctx context.Context) (agentapi.Metrics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	m := agentapi.Metrics{SampledAt: now.UTC()}

	times, err := cpu.TimesWithContext(ctx, false)
	if err != nil || len(times) == 0 {
		return m, fmt.Errorf("hostmetrics: cpu times: %w", err)
	}
	cur := times[0]
	m.CPUPercent = busyPercent(s.prevCPU, &cur)
	s.prevCPU = &cur

	if l, err := load.AvgWithContext(ctx); err == nil {
		m.Load1, m.Load5, m.Load15 = l.Load1, l.Load5, l.Load15
	} else {
		return m, fmt.Errorf("hostmetrics: load: %w", err)
	}
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return m, fmt.Errorf("hostmetrics: memory: %w", err)
	}
	m.MemTotalMB = int64(vm.Total / mb)
	if vm.Available <= vm.Total {
		m.MemUsedMB = int64((vm.Total - vm.Available) / mb)
	}
	du, err := disk.UsageWithContext(ctx, s.path)
	if err != nil {
		return m, fmt.Errorf("hostmetrics: disk %s: %w", s.path, err)
	}
	m.DiskTotMB, m.DiskUsedMB = int64(du.Total/mb), int64(du.Used/mb)
	nics, err := psnet.IOCountersWithContext(ctx, true)
	if err != nil {
		return m, fmt.Errorf("hostmetrics: network: %w", err)
	}
	for _, n := range nics {
		if n.Name == "lo" || strings.HasPrefix(n.Name, "lo:") {
			continue
		}
		m.NetRxBytes += n.BytesRecv
		m.NetTxBytes += n.BytesSent
	}
	m.IdleSeconds = s.idle.idleSeconds(now)
	return m, nil
}

// busyPercent is the non-idle share of CPU time between prev and cur
// (since boot when prev is nil), 0–100.
func busyPercent(prev, cur *cpu.TimesStat) float64 {
	total := func(t *cpu.TimesStat) (all, idle float64) {
		// Guest time is already counted in user time (proc(5)).
		all = t.User + t.Nice + t.System + t.Idle + t.Iowait + t.Irq + t.Softirq + t.Steal
		return all, t.Idle + t.Iowait
	}
	all, idle := total(cur)
	if prev != nil {
		pa, pi := total(prev)
		all, idle = all-pa, idle-pi
	}
	if all <= 0 {
		return 0
	}
	p := 100 * (all - idle) / all
	return min(max(p, 0), 100)
}
