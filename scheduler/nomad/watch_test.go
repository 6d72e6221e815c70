package nomad_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/spiceroute/spiceroute/scheduler/nomad"
)

// The watcher sees a renter's allocation through to completion, and a
// watcher resumed from the last index it delivered repeats nothing.
func TestWatchAllocationsResumesWithoutRepeats(t *testing.T) {
	_, s := startHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var got []nomad.AllocationEvent
	watch := func(ctx context.Context, from uint64, until func([]nomad.AllocationEvent) bool) {
		t.Helper()
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan error, 1)
		go func() {
			done <- s.WatchAllocations(wctx, from, nil, func(e nomad.AllocationEvent) error {
				mu.Lock()
				got = append(got, e)
				mu.Unlock()
				return nil
			})
		}()
		for {
			mu.Lock()
			ok := until(got)
			mu.Unlock()
			if ok {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("timed out; events so far: %d", len(got))
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	complete := func(evs []nomad.AllocationEvent) bool {
		for _, e := range evs {
			if e.Allocation.ClientStatus == api.AllocClientStatusComplete {
				return true
			}
		}
		return false
	}

	src, _ := os.ReadFile("../../nomad-jobs/hello.nomad.hcl")
	job, err := s.ParseHCL(ctx, string(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare("alice", job); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureRenter(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, "alice", job); err != nil {
		t.Fatal(err)
	}
	watch(ctx, 0, complete)
	first := len(got)
	last := got[first-1].Index
	for i, e := range got {
		if e.Renter != "alice" || e.Allocation.JobID != "hello" && i < first {
			t.Fatalf("event %d: renter %q job %q", i, e.Renter, e.Allocation.JobID)
		}
		if i > 0 && e.Index < got[i-1].Index {
			t.Fatalf("index went back: %d after %d", e.Index, got[i-1].Index)
		}
	}

	// Resume after the last index while a second job runs: its updates
	// arrive, nothing from before.
	job2, err := s.ParseHCL(ctx, strings.Replace(string(src), `job "hello"`, `job "hello2"`, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prepare("alice", job2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, "alice", job2); err != nil {
		t.Fatal(err)
	}
	watch(ctx, last, func(evs []nomad.AllocationEvent) bool { return complete(evs[first:]) })
	for _, e := range got[first:] {
		if e.Index <= last || e.Allocation.JobID != "hello2" {
			t.Fatalf("resumed watcher delivered index %d of job %s (resumed after %d)", e.Index, e.Allocation.JobID, last)
		}
	}
}
