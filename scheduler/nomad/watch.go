package nomad

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
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
		ch, err := s.events(streamCtx, last+1)
		if err == nil {
			err = s.consume(streamCtx, ch, &last, fn)
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

// events streams Nomad's allocation events from index on, every namespace,
// as /v1/event/stream sends them: one JSON object per line, "{}" for the
// heartbeat Nomad sends every 30s. nomad/api's
// EventStream drops heartbeats, so a quiet stream could not be told from a
// dead one; here they reach consume, which resets its stall timer.
func (s *Scheduler) events(ctx context.Context, index uint64) (<-chan *api.Events, error) {
	u, err := url.Parse(strings.TrimSuffix(s.cfg.Address, "/") + "/v1/event/stream")
	if err != nil {
		return nil, fmt.Errorf("nomad: event stream: %w", err)
	}
	u.RawQuery = url.Values{"index": {strconv.FormatUint(index, 10)}, "topic": {string(api.TopicAllocation) + ":*"}, "namespace": {"*"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("nomad: event stream: %w", err)
	}
	if s.cfg.Token != "" {
		req.Header.Set("X-Nomad-Token", s.cfg.Token)
	}
	resp, err := s.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("nomad: event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("nomad: event stream: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	ch := make(chan *api.Events, 10)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		dec := json.NewDecoder(resp.Body)
		for {
			var evs api.Events
			if err := dec.Decode(&evs); err != nil {
				evs = api.Events{Err: err}
			}
			select {
			case <-ctx.Done():
				return
			case ch <- &evs:
			}
			if evs.Err != nil {
				return
			}
		}
	}()
	return ch, nil
}

// fnError marks an error returned by the caller's fn.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// StallTimeout is how long a watch waits for anything, an event or one
// of Nomad's heartbeats, before it takes the stream for dead and
// reconnects. Nomad 1.11 sends a heartbeat when the stream opens and then
// every 30 seconds (nomad/event_endpoint.go: stream.NewJsonStream(ctx,
// 30*time.Second)), and gives up on a client that has not read for 40.
var StallTimeout = 45 * time.Second

// LagTimeout is how long a stream that has delivered no event yet may stay
// behind Nomad's allocations before the watch reconnects: a stream opened
// while the agent is still starting can send its heartbeats and never an
// event. Every LagCheckInterval such a watch reads the index of Nomad's
// allocations; an index the stream has not reached LagTimeout later means
// it is stuck. (A stream that has delivered events is trusted while its
// heartbeats come: the allocations' index also moves when they are
// garbage-collected, which sends no event.)
var (
	LagTimeout       = 20 * time.Second
	LagCheckInterval = 10 * time.Second
)

func (s *Scheduler) consume(ctx context.Context, ch <-chan *api.Events, last *uint64, fn func(AllocationEvent) error) error {
	stall := time.NewTimer(StallTimeout)
	defer stall.Stop()
	lag := time.NewTicker(LagCheckInterval)
	defer lag.Stop()
	var behindIdx uint64 // an allocation index seen in Nomad and not yet in the stream
	var behindAt time.Time
	opened := *last
	for {
		var evs *api.Events
		var ok bool
		select {
		case evs, ok = <-ch:
		case <-stall.C:
			return fmt.Errorf("nomad: event stream silent for %s (no heartbeat)", StallTimeout)
		case now := <-lag.C:
			if *last != opened {
				continue // events flow
			}
			if behindIdx != 0 && *last >= behindIdx {
				behindIdx = 0
			}
			if behindIdx != 0 && now.Sub(behindAt) >= LagTimeout {
				return fmt.Errorf("nomad: event stream stuck: Nomad's allocations reached index %d %s ago, the stream is at %d", behindIdx, now.Sub(behindAt).Round(time.Second), *last)
			}
			if idx, err := s.AllocIndex(ctx); err == nil && idx > *last && behindIdx == 0 {
				behindIdx, behindAt = idx, now
			}
			continue
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
