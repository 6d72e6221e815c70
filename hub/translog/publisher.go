package translog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Publisher decides when the Log signs: at most interval after the first
// Notify since the last checkpoint, it publishes the latest notified tree.
// Batching commits this way bounds both the signing rate and how long a
// committed leaf waits to be covered by a checkpoint.
type Publisher struct {
	log      *Log
	interval time.Duration
	logger   *slog.Logger
	wake     chan struct{} // buffered(1): "something was notified"

	mu       sync.Mutex
	latest   tlog.Tree // largest tree notified
	notified bool      // latest is set
	pending  bool      // latest is not published yet
	since    time.Time // when latest (or an earlier unpublished tree) was first notified
}

// maxRetryDelay caps the exponential backoff of Run after failed publishes.
const maxRetryDelay = time.Minute

// NewPublisher returns a Publisher for l. interval must be positive; a nil
// logger logs to slog.Default().
func NewPublisher(l *Log, interval time.Duration, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.Default()
	}
	return &Publisher{log: l, interval: interval, logger: logger, wake: make(chan struct{}, 1)}
}

// Notify tells the Publisher the ledger durably committed tree. The ledger
// calls it after every commit; it never blocks. Trees no larger than one
// already notified are ignored.
func (p *Publisher) Notify(tree tlog.Tree) {
	p.mu.Lock()
	if p.notified && tree.N <= p.latest.N {
		p.mu.Unlock()
		return
	}
	p.latest, p.notified = tree, true
	if !p.pending {
		p.pending, p.since = true, time.Now()
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes notified trees until ctx is done. A failed publish is logged
// and retried with exponential backoff (from interval up to a minute, or
// interval if larger), with the latest tree notified by then. When ctx is
// done, Run publishes the last notified tree if it is not yet published
// (best effort, with a fresh 10s deadline) and returns that attempt's error,
// or nil.
func (p *Publisher) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var retryAt time.Time // non-zero after a failed attempt
	delay := p.interval
	for {
		p.mu.Lock()
		pending, since := p.pending, p.since
		p.mu.Unlock()
		var fire <-chan time.Time
		if pending {
			at := since.Add(p.interval)
			if !retryAt.IsZero() {
				at = retryAt
			}
			timer.Reset(time.Until(at))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return p.final(ctx)
		case <-p.wake:
			continue
		case <-fire:
		}
		if err := p.publishLatest(ctx); err != nil {
			if ctx.Err() != nil {
				return p.final(ctx)
			}
			p.logger.ErrorContext(ctx, "translog: publish checkpoint failed; will retry", "err", err, "retry_in", delay)
			retryAt = time.Now().Add(delay)
			delay = min(2*delay, max(maxRetryDelay, p.interval))
			continue
		}
		retryAt, delay = time.Time{}, p.interval
	}
}

// publishLatest publishes the latest notified tree and clears pending unless
// a larger tree was notified meanwhile.
func (p *Publisher) publishLatest(ctx context.Context) error {
	p.mu.Lock()
	tree, started := p.latest, time.Now()
	p.mu.Unlock()
	if err := p.log.Publish(ctx, tree); err != nil {
		return err
	}
	p.mu.Lock()
	if p.latest.N > tree.N {
		// Notified during Publish: the first of those Notify calls came
		// after started, so this deadline is no later than required.
		p.since = started
	} else {
		p.pending = false
	}
	p.mu.Unlock()
	return nil
}

// final publishes the pending tree, if any, after ctx is done.
func (p *Publisher) final(ctx context.Context) error {
	p.mu.Lock()
	pending := p.pending
	p.mu.Unlock()
	if !pending {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return p.publishLatest(ctx)
}
