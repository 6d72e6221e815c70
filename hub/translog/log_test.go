package translog

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestMemStorage(t *testing.T) {
	StorageSuite(t, func(t *testing.T) (Storage, func(Batch) error) {
		m := new(MemStorage)
		return m, m.Commit
	})
}

func TestPublish(t *testing.T) {
	ctx := context.Background()

	t.Run("EmptyTreeCanBePublished", func(t *testing.T) {
		l := newTestLog(t)
		tree := l.append(t)
		l.publish(t, tree)
		signed, got, err := l.Checkpoint(ctx)
		if err != nil || got != tree {
			t.Fatalf("Checkpoint = %v, %v; want %v", got, err, tree)
		}
		if c, err := VerifyCheckpoint(signed, testVkey); err != nil || c.N != 0 {
			t.Errorf("empty checkpoint: %v, %v", c, err)
		}
	})

	t.Run("ErrNoCheckpointBeforePublish", func(t *testing.T) {
		l := newTestLog(t)
		l.append(t, 3)
		if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrNoCheckpoint) {
			t.Errorf("Checkpoint = %v, want ErrNoCheckpoint", err)
		}
	})

	t.Run("ErrTreeNotInStorage", func(t *testing.T) {
		l := newTestLog(t)
		l.append(t, 3)
		// The appender is ahead of storage (a commit that failed).
		if _, err := l.app.Append([][]byte{[]byte("uncommitted")}); err != nil {
			t.Fatal(err)
		}
		h, _ := l.app.TreeHash()
		if err := l.Publish(ctx, tlog.Tree{N: 4, Hash: h}); err == nil {
			t.Fatal("published a tree whose last leaf is not stored")
		}
		if _, _, err := l.Checkpoint(ctx); !errors.Is(err, ErrNoCheckpoint) {
			t.Errorf("after refusal, Checkpoint = %v, want ErrNoCheckpoint", err)
		}
	})

	t.Run("ErrWrongHash", func(t *testing.T) {
		l := newTestLog(t)
		tree := l.append(t, 3)
		tree.Hash[0] ^= 1
		if err := l.Publish(ctx, tree); err == nil {
			t.Fatal("published a tree with the wrong hash")
		}
	})

	t.Run("OlderTreeIsNoOp", func(t *testing.T) {
		l := newTestLog(t)
		old := l.append(t, 3)
		tree := l.append(t, 3)
		l.publish(t, tree)
		if err := l.Publish(ctx, old); err != nil {
			t.Errorf("Publish(older) = %v, want nil", err)
		}
		if err := l.Publish(ctx, tree); err != nil {
			t.Errorf("Publish(same) = %v, want nil", err)
		}
		if _, got, _ := l.Checkpoint(ctx); got != tree {
			t.Errorf("Checkpoint = %v, want %v", got, tree)
		}
	})

	t.Run("ErrSameSizeOtherHash", func(t *testing.T) {
		l := newTestLog(t)
		tree := l.append(t, 3)
		l.publish(t, tree)
		fork := tree
		fork.Hash[5] ^= 1
		if err := l.Publish(ctx, fork); err == nil {
			t.Error("published a fork at the same size")
		}
	})

	t.Run("RestartedLogLoadsCheckpoint", func(t *testing.T) {
		l := newTestLog(t)
		tree := l.append(t, 300)
		l.publish(t, tree)
		signed, _, _ := l.Checkpoint(ctx)
		restarted := New(l.st, mustSigner(t, testSkey))
		got, gotTree, err := restarted.Checkpoint(ctx)
		if err != nil || gotTree != tree || !bytes.Equal(got, signed) {
			t.Fatalf("after restart Checkpoint = %v, %v", gotTree, err)
		}
		// And continues from it.
		l.Log = restarted
		next := l.append(t, 10)
		l.publish(t, next)
	})

	t.Run("ErrRestartWithOtherKey", func(t *testing.T) {
		l := newTestLog(t)
		l.publish(t, l.append(t, 3))
		restarted := New(l.st, mustSigner(t, otherSkey))
		if _, _, err := restarted.Checkpoint(ctx); err == nil {
			t.Error("a Log with another key accepted the stored checkpoint")
		}
	})

	t.Run("ErrStoredCheckpointNotMatchingStorage", func(t *testing.T) {
		l := newTestLog(t)
		tree := l.append(t, 3)
		l.publish(t, tree)
		// Storage rewritten under the log: same size, different leaves.
		other := new(MemStorage)
		a, _ := NewAppender(ctx, 0, nil)
		b, err := a.Append([][]byte{[]byte("x"), []byte("y"), []byte("z")})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Commit(b); err != nil {
			t.Fatal(err)
		}
		signed, _, _ := l.Checkpoint(ctx)
		if err := other.SaveCheckpoint(ctx, 3, tree.Hash, signed); err != nil {
			t.Fatal(err)
		}
		if _, _, err := New(other, mustSigner(t, testSkey)).Checkpoint(ctx); err == nil {
			t.Error("loaded a checkpoint that does not match the stored tree")
		}
	})
}

func TestHashCacheStaysBounded(t *testing.T) {
	c := newHashCache(4)
	for i := range int64(100) {
		c.putLocked(i, tlog.Hash{byte(i)})
		if len(c.cur)+len(c.old) > 8 {
			t.Fatalf("cache holds %d hashes, bound is 8", len(c.cur)+len(c.old))
		}
	}
	if h, ok := c.getLocked(99); !ok || h != (tlog.Hash{99}) {
		t.Errorf("recent hash evicted")
	}
	if _, ok := c.getLocked(0); ok {
		t.Errorf("old hash still cached")
	}
}

// TestHashReaderBatchesStorageReads checks that a tile read is one storage
// call and that a repeated read is served from the cache.
func TestHashReaderBatchesStorageReads(t *testing.T) {
	l := newTestLog(t)
	tree := l.append(t, 600)
	counting := &countingStorage{Storage: l.st}
	lg := New(counting, mustSigner(t, testSkey))
	if err := lg.Publish(context.Background(), tree); err != nil {
		t.Fatal(err)
	}
	calls := counting.calls
	data, err := tlog.ReadTileData(tlog.Tile{H: 8, L: 0, N: 1, W: 256}, lg.HashReader(context.Background()))
	if err != nil || len(data) != 256*32 {
		t.Fatalf("ReadTileData: %d bytes, %v", len(data), err)
	}
	if got := counting.calls - calls; got != 1 {
		t.Errorf("reading a tile took %d storage calls, want 1", got)
	}
	calls = counting.calls
	if _, err := tlog.ReadTileData(tlog.Tile{H: 8, L: 0, N: 1, W: 256}, lg.HashReader(context.Background())); err != nil {
		t.Fatal(err)
	}
	if got := counting.calls - calls; got != 0 {
		t.Errorf("re-reading a tile took %d storage calls, want 0 (cached)", got)
	}
}

type countingStorage struct {
	Storage
	calls int
}

func (s *countingStorage) ReadHashes(ctx context.Context, idx []int64) ([]tlog.Hash, error) {
	s.calls++
	return s.Storage.ReadHashes(ctx, idx)
}
