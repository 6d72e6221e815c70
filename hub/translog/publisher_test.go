package translog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// runPublisher starts p.Run and returns a function that stops it and
// returns Run's error.
func runPublisher(t *testing.T, p *Publisher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Publisher.Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func publishedTree(t *testing.T, l *Log) tlog.Tree {
	t.Helper()
	_, tree, err := l.Checkpoint(t.Context())
	if errors.Is(err, ErrNoCheckpoint) {
		return tlog.Tree{N: -1}
	}
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	return tree
}

// lockedBuffer is a log sink safe for the Publisher's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestPublisher(t *testing.T) {
	discard := slog.New(slog.DiscardHandler)

	t.Run("PublishesWithinInterval", func(t *testing.T) {
		l := newTestLog(t)
		p := NewPublisher(l.Log, 20*time.Millisecond, discard)
		runPublisher(t, p)
		for _, k := range []int{3, 300, 1} {
			tree := l.append(t, k)
			p.Notify(tree)
			waitFor(t, 5*time.Second, "checkpoint of the notified tree", func() bool {
				return publishedTree(t, l.Log) == tree
			})
		}
	})

	t.Run("BatchesNotificationsIntoOneCheckpoint", func(t *testing.T) {
		l := newTestLog(t)
		counting := &flakyStorage{Storage: l.st}
		lg := New(counting, mustSigner(t, testSkey))
		var trees []tlog.Tree
		for range 50 {
			trees = append(trees, l.append(t, 2))
		}
		p := NewPublisher(lg, 200*time.Millisecond, discard)
		runPublisher(t, p)
		for _, tree := range trees {
			p.Notify(tree)
		}
		last := trees[len(trees)-1]
		waitFor(t, 5*time.Second, "checkpoint of the last notified tree", func() bool {
			return publishedTree(t, lg) == last
		})
		if n := counting.saves.Load(); n != 1 {
			t.Errorf("%d checkpoints saved for 50 notifications within the interval, want 1", n)
		}
	})

	t.Run("NotifyNeverBlocks", func(t *testing.T) {
		l := newTestLog(t)
		p := NewPublisher(l.Log, time.Hour, discard)
		// No Run at all: Notify must still return every time.
		tree := l.append(t, 1)
		for range 10000 {
			p.Notify(tree)
		}
		p.Notify(tlog.Tree{N: 0}) // older: ignored
		if p.latest != tree {
			t.Errorf("latest notified %v, want %v", p.latest, tree)
		}
	})

	t.Run("PublishesPendingTreeOnShutdown", func(t *testing.T) {
		l := newTestLog(t)
		p := NewPublisher(l.Log, time.Hour, discard)
		stop := runPublisher(t, p)
		tree := l.append(t, 7)
		p.Notify(tree)
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := publishedTree(t, l.Log); got != tree {
			t.Errorf("after shutdown, published %v, want %v", got, tree)
		}
	})

	t.Run("RetriesAfterStorageError", func(t *testing.T) {
		l := newTestLog(t)
		flaky := &flakyStorage{Storage: l.st}
		flaky.failures.Store(2)
		logs := new(lockedBuffer)
		lg := New(flaky, mustSigner(t, testSkey))
		p := NewPublisher(lg, 10*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
		runPublisher(t, p)
		tree := l.append(t, 5)
		p.Notify(tree)
		waitFor(t, 10*time.Second, "checkpoint after two failed saves", func() bool {
			return publishedTree(t, lg) == tree
		})
		if n := strings.Count(logs.String(), "will retry"); n != 2 {
			t.Errorf("logged %d retries, want 2:\n%s", n, logs.String())
		}
	})

	t.Run("RefusedTreeIsNotPublished", func(t *testing.T) {
		l := newTestLog(t)
		logs := new(lockedBuffer)
		p := NewPublisher(l.Log, 10*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
		runPublisher(t, p)
		tree := l.append(t, 5)
		p.Notify(tlog.Tree{N: 5, Hash: tlog.RecordHash([]byte("forged"))})
		waitFor(t, 5*time.Second, "refusal logged", func() bool {
			return strings.Contains(logs.String(), "storage has")
		})
		if got := publishedTree(t, l.Log); got.N != -1 {
			t.Fatalf("forged tree published: %v", got)
		}
		// The next real commit recovers.
		tree = l.append(t, 1)
		p.Notify(tree)
		waitFor(t, 10*time.Second, "checkpoint of the real tree", func() bool {
			return publishedTree(t, l.Log) == tree
		})
	})
}

// flakyStorage fails SaveCheckpoint while failures > 0, and counts
// successful saves.
type flakyStorage struct {
	Storage
	failures atomic.Int32
	saves    atomic.Int32
}

func (s *flakyStorage) SaveCheckpoint(ctx context.Context, size int64, root tlog.Hash, signed []byte) error {
	if s.failures.Add(-1) >= 0 {
		return errors.New("database is down")
	}
	s.saves.Add(1)
	return s.Storage.SaveCheckpoint(ctx, size, root, signed)
}
