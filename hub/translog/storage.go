package translog

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Storage is where the log's leaves, hashes and checkpoints live. It is
// implemented by the hub's PostgreSQL store and by [MemStorage]; both must
// pass [StorageSuite]. Batches are written by the store's own commit path
// (in the ledger's transaction), not through this interface.
//
// Methods must be safe for concurrent use. Stored leaves and hashes never
// change once written, so callers may cache them.
type Storage interface {
	// ReadHashes returns stored hashes by stored-hash index
	// (tlog.StoredHashIndex), in request order. Indexes may come in any
	// order and repeat. It is an error if any is not stored yet.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)

	// ReadEntries returns the leaves [start, end). It is an error if any is
	// not stored yet, or if start < 0 or start > end.
	ReadEntries(ctx context.Context, start, end int64) ([][]byte, error)

	// LatestCheckpoint returns the signed checkpoint note with the largest
	// tree size saved so far, or nil, nil if none.
	LatestCheckpoint(ctx context.Context) ([]byte, error)

	// SaveCheckpoint records a signed checkpoint for the tree (size, root).
	// Saving a size already saved with the same root is a no-op that
	// returns nil (the first note stays); with a different root it is an
	// error. Saving a size below the latest one must not change
	// LatestCheckpoint.
	SaveCheckpoint(ctx context.Context, size int64, root tlog.Hash, signed []byte) error
}

// MemStorage is an in-memory [Storage] for tests, and the reference the
// conformance suite is checked against. The zero value is an empty log.
type MemStorage struct {
	mu      sync.RWMutex
	entries [][]byte
	hashes  []tlog.Hash         // by stored hash index
	roots   map[int64]tlog.Hash // every checkpoint saved, by size
	latest  []byte              // signed checkpoint with the largest size
	latestN int64
}

var _ Storage = (*MemStorage)(nil)

// Commit appends a batch, as the PostgreSQL store does inside the ledger's
// transaction. It is an error if b.FirstIndex is not the current size.
func (m *MemStorage) Commit(b Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("translog: mem commit: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.FirstIndex != int64(len(m.entries)) || b.FirstHashIndex != int64(len(m.hashes)) {
		return fmt.Errorf("translog: mem commit: batch starts at leaf %d, log has %d", b.FirstIndex, len(m.entries))
	}
	for _, e := range b.Entries {
		m.entries = append(m.entries, slices.Clone(e))
	}
	m.hashes = append(m.hashes, b.Hashes...)
	return nil
}

// ReadHashes implements [Storage].
func (m *MemStorage) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	hashes := make([]tlog.Hash, len(indexes))
	for i, idx := range indexes {
		if idx < 0 || idx >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("translog: mem: hash %d not stored (have %d)", idx, len(m.hashes))
		}
		hashes[i] = m.hashes[idx]
	}
	return hashes, nil
}

// ReadEntries implements [Storage].
func (m *MemStorage) ReadEntries(ctx context.Context, start, end int64) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if start < 0 || start > end || end > int64(len(m.entries)) {
		return nil, fmt.Errorf("translog: mem: entries [%d, %d) not stored (have %d)", start, end, len(m.entries))
	}
	out := make([][]byte, 0, end-start)
	for _, e := range m.entries[start:end] {
		out = append(out, slices.Clone(e))
	}
	return out, nil
}

// LatestCheckpoint implements [Storage].
func (m *MemStorage) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.latest), nil
}

// SaveCheckpoint implements [Storage].
func (m *MemStorage) SaveCheckpoint(ctx context.Context, size int64, root tlog.Hash, signed []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if size < 0 || len(signed) == 0 {
		return fmt.Errorf("translog: mem: save checkpoint: size %d with %d bytes", size, len(signed))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.roots[size]; ok {
		if r != root {
			return fmt.Errorf("translog: mem: save checkpoint: size %d already saved with root %v, not %v", size, r, root)
		}
		return nil
	}
	if m.roots == nil {
		m.roots = make(map[int64]tlog.Hash)
	}
	m.roots[size] = root
	if m.latest == nil || size > m.latestN {
		m.latest, m.latestN = slices.Clone(signed), size
	}
	return nil
}
