package nomad

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// AllocationEvent is one allocation update from Nomad's event stream.
type AllocationEvent struct {
	Index      uint64 // Nomad's raft index; never decreases, shared by allocations updated together
	Renter     string
	Allocation *api.Allocation
}

// WatchAllocations follows Nomad's event stream for allocations in renters'
// namespaces, starting after index from, and calls fn for each update in
// order. It reconnects after errors and resumes after the last index it
// delivered, never delivering an event twice, so a caller that records the
// index with its effect is idempotent across hub restarts too. fn must not
// block for long; an error from fn stops the watch and is returned. Returns
// nil when ctx is done.
func (s *Scheduler) WatchAllocations(ctx context.Context, from uint64, log *slog.Logger, fn func(AllocationEvent) error) error {
	if log == nil {
		log = slog.Default()
	}
	last := from
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		streamCtx, cancel := context.WithCancel(ctx)
		ch, err := s.c.EventStream().Stream(streamCtx, map[api.Topic][]string{api.TopicAllocation: {"*"}}, last+1, s.query(streamCtx, "*"))
		if err == nil {
			err = s.consume(ch, &last, fn)
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fe, ok := err.(fnError); ok {
			return fe.err
		}
		log.Warn("nomad: event stream interrupted; reconnecting", "err", err, "after_index", last, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return nil
}

// fnError marks an error returned by the caller's fn.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// StallTimeout is how long a watch waits for anything, an event or one
// of Nomad's heartbeats (every 10s), before it takes the stream for dead
// and reconnects: a stream opened while the agent is still starting can
// stay silent for ever.
var StallTimeout = 25 * time.Second

func (s *Scheduler) consume(ch <-chan *api.Events, last *uint64, fn func(AllocationEvent) error) error {
	stall := time.NewTimer(StallTimeout)
	defer stall.Stop()
	for {
		var evs *api.Events
		var ok bool
		select {
		case evs, ok = <-ch:
		case <-stall.C:
			return fmt.Errorf("nomad: event stream silent for %s (no heartbeat)", StallTimeout)
		}
		if !ok {
			break
		}
		stall.Reset(StallTimeout)
		if evs.Err != nil {
			return evs.Err
		}
		if evs.IsHeartbeat() {
			continue
		}
		// Several allocations updated together share one index: deliver
		// every event above the index before this batch.
		prev := *last
		for i := range evs.Events {
			e := &evs.Events[i]
			if e.Index <= prev || e.Topic != api.TopicAllocation {
				continue // already delivered (a resumed stream may replay)
			}
			a, err := e.Allocation()
			if err != nil {
				return fmt.Errorf("nomad: decode allocation event %d: %w", e.Index, err)
			}
			if a != nil {
				if renter, ok := strings.CutPrefix(a.Namespace, s.cfg.NamespacePrefix); ok {
					if err := fn(AllocationEvent{Index: e.Index, Renter: renter, Allocation: a}); err != nil {
						return fnError{err}
					}
				}
			}
			*last = max(*last, e.Index)
		}
	}
	return fmt.Errorf("nomad: event stream closed")
}
