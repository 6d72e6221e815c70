package translog

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Batch is what one ledger commit adds to the log. The store writes it in the
// same database transaction as the ledger rows.
//
// Hashes are numbered by tlog.StoredHashIndex: the hashes a tree of n leaves
// stores are exactly indexes [0, tlog.StoredHashIndex(0, n)), each leaf
// adding its own RFC 6962 leaf hash and the hashes of the subtrees it
// completes. So a batch adds one contiguous run of hash indexes.
type Batch struct {
	FirstIndex     int64       // index of Entries[0]
	Entries        [][]byte    // the leaves
	FirstHashIndex int64       // tlog.StoredHashIndex(0, FirstIndex)
	Hashes         []tlog.Hash // tlog stored hashes added by these entries, in stored-hash-index order, starting at FirstHashIndex
}

// Validate checks the batch's index arithmetic and entry sizes; it does not
// recompute hashes. Stores call it before writing.
func (b Batch) Validate() error {
	if b.FirstIndex < 0 {
		return fmt.Errorf("translog: batch: negative first index %d", b.FirstIndex)
	}
	if want := tlog.StoredHashIndex(0, b.FirstIndex); b.FirstHashIndex != want {
		return fmt.Errorf("translog: batch: first hash index %d, want %d for first index %d", b.FirstHashIndex, want, b.FirstIndex)
	}
	end := b.FirstIndex + int64(len(b.Entries))
	if want := tlog.StoredHashIndex(0, end) - b.FirstHashIndex; int64(len(b.Hashes)) != want {
		return fmt.Errorf("translog: batch: %d hashes for entries [%d, %d), want %d", len(b.Hashes), b.FirstIndex, end, want)
	}
	for i, e := range b.Entries {
		if len(e) > MaxEntrySize {
			return fmt.Errorf("translog: batch: entry %d is %d bytes, more than %d", b.FirstIndex+int64(i), len(e), MaxEntrySize)
		}
	}
	return nil
}

// Appender keeps the right edge of the tree in memory and computes the stored
// hashes of new leaves without touching storage.
//
// Not safe for concurrent use: the ledger's single writer owns it. After a
// failed commit the Appender is ahead of storage; build a new one with
// [NewAppender].
type Appender struct {
	size int64
	// frontier holds, by stored hash index, the hash of each maximal complete
	// subtree of the tree of size leaves (one per bit set in size). They are
	// all a new leaf can need (tlog.StoredHashes reads left siblings of the
	// subtrees it completes), and all tlog.TreeHash needs.
	frontier map[int64]tlog.Hash
	// buf is reused for tlog.HashReader results during Append.
	buf []tlog.Hash
}

// NewAppender returns an Appender that continues a tree of size leaves whose
// hashes hr reads. It reads the frontier hashes (at most 63) in one call;
// for size 0 it reads nothing and hr may be nil.
func NewAppender(ctx context.Context, size int64, hr tlog.HashReader) (*Appender, error) {
	if size < 0 {
		return nil, fmt.Errorf("translog: new appender: negative size %d", size)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("translog: new appender: %w", err)
	}
	a := &Appender{size: size, frontier: make(map[int64]tlog.Hash)}
	indexes := frontierIndexes(size)
	if len(indexes) == 0 {
		return a, nil
	}
	hashes, err := hr.ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("translog: new appender: read frontier of tree %d: %w", size, err)
	}
	if len(hashes) != len(indexes) {
		return nil, fmt.Errorf("translog: new appender: read %d frontier hashes, got %d", len(indexes), len(hashes))
	}
	for i, idx := range indexes {
		a.frontier[idx] = hashes[i]
	}
	return a, nil
}

// frontierIndexes returns the stored hash indexes of the maximal complete
// subtrees of a tree of n leaves: for each bit l set in n, the subtree of
// 2^l leaves ending at the last leaf covered by the bits above it.
func frontierIndexes(n int64) []int64 {
	var indexes []int64
	for l := 0; n>>l != 0; l++ {
		if (n>>l)&1 == 1 {
			indexes = append(indexes, tlog.StoredHashIndex(l, n>>l-1))
		}
	}
	return indexes
}

// Size is the number of leaves in the tentative tree.
func (a *Appender) Size() int64 { return a.size }

// TreeHash is the RFC 6962 root hash of the tentative tree
// (the hash of the empty string for the empty tree).
func (a *Appender) TreeHash() (tlog.Hash, error) {
	h, err := tlog.TreeHash(a.size, a.frontierReader())
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("translog: tree hash %d: %w", a.size, err)
	}
	return h, nil
}

func (a *Appender) frontierReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hashes := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			h, ok := a.frontier[idx]
			if !ok {
				return nil, fmt.Errorf("translog: hash %d not on the frontier of tree %d", idx, a.size)
			}
			hashes[i] = h
		}
		return hashes, nil
	})
}

// Append adds entries to the tentative tree and returns the batch to store.
// Empty entries are allowed (RFC 6962 hashes any byte string); an entry longer
// than [MaxEntrySize] is an error and leaves the Appender unchanged.
// The returned Batch.Entries is entries itself, not a copy.
func (a *Appender) Append(entries [][]byte) (Batch, error) {
	for i, e := range entries {
		if len(e) > MaxEntrySize {
			return Batch{}, fmt.Errorf("translog: append: entry %d of batch is %d bytes, more than %d", i, len(e), MaxEntrySize)
		}
	}
	first := a.size
	end := first + int64(len(entries))
	firstHash := tlog.StoredHashIndex(0, first)
	hashes := make([]tlog.Hash, 0, tlog.StoredHashIndex(0, end)-firstHash)

	// Hashes below firstHash come from the frontier, the others from this
	// batch; tlog.StoredHashes never asks for anything else.
	read := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := a.buf[:0]
		for _, idx := range indexes {
			if idx >= firstHash {
				if idx-firstHash >= int64(len(hashes)) {
					return nil, fmt.Errorf("translog: hash %d not computed yet", idx)
				}
				out = append(out, hashes[idx-firstHash])
				continue
			}
			h, ok := a.frontier[idx]
			if !ok {
				return nil, fmt.Errorf("translog: hash %d not on the frontier of tree %d", idx, first)
			}
			out = append(out, h)
		}
		a.buf = out
		return out, nil
	})
	for i, e := range entries {
		// RFC 6962 §2.1: leaf hash SHA-256(0x00 || entry); then one interior
		// hash per subtree this leaf completes.
		hs, err := tlog.StoredHashesForRecordHash(first+int64(i), tlog.RecordHash(e), read)
		if err != nil {
			return Batch{}, fmt.Errorf("translog: append leaf %d: %w", first+int64(i), err)
		}
		hashes = append(hashes, hs...)
	}

	// Prune to the frontier of the new tree.
	frontier := make(map[int64]tlog.Hash, 64)
	idx := frontierIndexes(end)
	fh, err := read.ReadHashes(idx)
	if err != nil {
		return Batch{}, fmt.Errorf("translog: append: frontier of tree %d: %w", end, err)
	}
	for i, x := range idx {
		frontier[x] = fh[i]
	}
	a.frontier = frontier
	a.size = end
	return Batch{FirstIndex: first, Entries: entries, FirstHashIndex: firstHash, Hashes: hashes}, nil
}
