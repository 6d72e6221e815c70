package api

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds each limiter map. When it is full of keys that are all
// active, a new key is refused (429) rather than growing without bound.
const maxLimiters = 100_000

// limiters is a map of token-bucket limiters by key (a token hash or a
// client address), evicting those idle long enough to have refilled: a
// fresh limiter behaves exactly like an evicted one. Safe for concurrent use.
type limiters struct {
	rate  rate.Limit
	burst int
	idle  time.Duration // a limiter idle this long is full again

	mu        sync.Mutex
	m         map[string]*limiterEntry
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiters(perSecond float64, burst int) *limiters {
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &limiters{
		rate:  rate.Limit(perSecond),
		burst: burst,
		idle:  max(refill, time.Minute),
		m:     make(map[string]*limiterEntry),
	}
}

// allow takes one request for key at now. When the key is over its rate it
// returns false and how long until a request would be allowed.
func (l *limiters) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.idle {
		l.sweep(now)
	}
	e := l.m[key]
	if e == nil {
		if len(l.m) >= maxLimiters {
			l.sweep(now)
			if len(l.m) >= maxLimiters {
				return false, l.idle
			}
		}
		e = &limiterEntry{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, l.idle
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops idle limiters. l.mu is held.
func (l *limiters) sweep(now time.Time) {
	for k, e := range l.m {
		if now.Sub(e.last) >= l.idle {
			delete(l.m, k)
		}
	}
	l.lastSweep = now
}

func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// ipKey is the rate-limit key of a client address: the address itself for
// IPv4, its /64 for IPv6 (one host usually holds a whole /64).
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// retryAfterSeconds rounds a delay up to whole seconds for Retry-After.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
