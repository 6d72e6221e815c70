package api

import (
	"testing"
	"time"
)

func TestLimiters(t *testing.T) {
	l := newLimiters(1, 2) // 1/s, burst 2: idle after 1 minute (the floor)
	t0 := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := l.allow("a", t0); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("a", t0)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok %v, wait %v", ok, wait)
	}
	if retryAfterSeconds(wait) != 1 {
		t.Fatalf("Retry-After %d", retryAfterSeconds(wait))
	}
	// A refused request takes nothing: after the wait, one is allowed.
	if ok, _ := l.allow("a", t0.Add(wait)); !ok {
		t.Fatal("refused after waiting")
	}
	if ok, _ := l.allow("b", t0); !ok {
		t.Fatal("another key shares the budget")
	}
	// Idle limiters are evicted once they would be full again.
	if ok, _ := l.allow("c", t0.Add(2*time.Minute)); !ok {
		t.Fatal("refused")
	}
	if n := l.len(); n != 1 {
		t.Fatalf("%d limiters after the idle ones were swept, want 1", n)
	}
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}
