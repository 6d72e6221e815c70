// Package benchmark is the short machine benchmark the agent runs at join
// and whenever the hub asks for a re-check (agentapi.HeartbeatReply.Recheck):
// about a second of single-core integer work and half a second of memory
// copying. The hub compares re-checks with the join result to notice a
// machine that is slower than it claimed or than it was.
//
// CPU score: work units per second on one core (one goroutine, locked to
// its thread). A unit is 2^16 rounds of a dependent 64-bit integer chain
// (xorshift, multiply, rotate, data-dependent branch): no memory traffic,
// no vector or crypto instructions, so it measures the core's scalar
// integer speed and clock, and the compiler cannot skip it (each round
// depends on the last, and the result is kept).
//
// Memory bandwidth: copy of a buffer of Config.BufferMB (default 32 MB,
// larger than most last-level caches) into another, repeated; MB copied per
// second (1 MB = 2^20 bytes; each byte copied is read once and written
// once). The buffers are mapped for the run and unmapped after it, so the
// agent's resident memory returns to normal as soon as the benchmark ends.
package benchmark

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"time"

	"github.com/spiceroute/spiceroute/agent/agentapi"
)

// Config sizes the benchmark. The zero value is DefaultConfig.
type Config struct {
	// CPUTime is how long the CPU part runs (default 1s).
	CPUTime time.Duration
	// MemoryTime is how long the memory part runs (default 500ms).
	MemoryTime time.Duration
	// BufferMB is the size of each of the two copy buffers (default 32).
	BufferMB int
}

// DefaultConfig is about 1.5 seconds of benchmark.
func DefaultConfig() Config {
	return Config{CPUTime: time.Second, MemoryTime: 500 * time.Millisecond, BufferMB: 32}
}

// roundsPerUnit is a CPU work unit (see the package documentation).
const roundsPerUnit = 1 << 16

// sink keeps the CPU chain's result alive.
var sink uint64

// Run runs the benchmark. It blocks for about CPUTime + MemoryTime and
// returns early with ctx's error when ctx ends.
func Run(ctx context.Context, cfg Config) (agentapi.Benchmark, error) {
	def := DefaultConfig()
	if cfg.CPUTime <= 0 {
		cfg.CPUTime = def.CPUTime
	}
	if cfg.MemoryTime <= 0 {
		cfg.MemoryTime = def.MemoryTime
	}
	if cfg.BufferMB <= 0 {
		cfg.BufferMB = def.BufferMB
	}
	began := time.Now()
	cpu, err := cpuScore(ctx, cfg.CPUTime)
	if err != nil {
		return agentapi.Benchmark{}, err
	}
	memMBps, err := memoryMBps(ctx, cfg.MemoryTime, cfg.BufferMB)
	if err != nil {
		return agentapi.Benchmark{}, err
	}
	return agentapi.Benchmark{CPUScore: cpu, MemoryMBps: memMBps, Duration: time.Since(began), RanAt: began.UTC()}, nil
}

// cpuScore runs work units on one locked thread for about d.
func cpuScore(ctx context.Context, d time.Duration) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x := uint64(0x9E3779B97F4A7C15)
	units := 0
	start := time.Now()
	var elapsed time.Duration
	for elapsed < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		x = unit(x)
		units++
		elapsed = time.Since(start)
	}
	sink = x
	return float64(units) / elapsed.Seconds(), nil
}

// unit is one CPU work unit.
func unit(x uint64) uint64 {
	for i := 0; i < roundsPerUnit; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		x *= 0x2545F4914F6CDD1D
		if x&1 == 0 {
			x = bits.RotateLeft64(x, 11)
		} else {
			x += 0x632BE59BD9B4E019
		}
	}
	return x
}

// memoryMBps copies one buffer into another for about d.
func memoryMBps(ctx context.Context, d time.Duration, bufMB int) (float64, error) {
	size := bufMB << 20
	src, err := mapBuffer(size)
	if err != nil {
		return 0, err
	}
	defer unmapBuffer(src)
	dst, err := mapBuffer(size)
	if err != nil {
		return 0, err
	}
	defer unmapBuffer(dst)
	// Touch every page first, so page faults are not measured.
	for i := 0; i < size; i += 4096 {
		src[i] = byte(i >> 12)
		dst[i] = 0
	}
	copy(dst, src) // warm-up
	copies := 0
	start := time.Now()
	var elapsed time.Duration
	for elapsed < d || copies == 0 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		copy(dst, src)
		copies++
		elapsed = time.Since(start)
	}
	if dst[size-4096] != src[size-4096] {
		return 0, errors.New("benchmark: copy did not copy")
	}
	return float64(copies*bufMB) / elapsed.Seconds(), nil
}
