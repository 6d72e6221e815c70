package translog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Log signs checkpoints of the tree in a [Storage], serves the log over HTTP
// and produces proofs. Methods are safe for concurrent use.
//
// Proofs and tiles are only served for trees no larger than the latest
// published checkpoint: clients can verify nothing larger.
type Log struct {
	st     Storage
	signer note.Signer
	hashes *hashCache

	pubMu sync.Mutex // serializes Publish and the first load from storage

	mu  sync.RWMutex
	cur *published // latest published checkpoint; nil until published or loaded
}

type published struct {
	signed []byte
	tree   tlog.Tree
}

// New returns the Log of st, signing with signer. The checkpoint origin line
// is signer.Name() (c2sp.org/tlog-tiles: the origin SHOULD be the log's URL
// prefix without scheme, e.g. "hub.example.org/log").
func New(st Storage, signer note.Signer) *Log {
	return &Log{st: st, signer: signer, hashes: newHashCache(hashCacheSize)}
}

// Publish signs a c2sp.org/tlog-checkpoint for tree, saves it with
// Storage.SaveCheckpoint and then serves it.
//
// A tree no larger than the latest checkpoint is a no-op (an error if it has
// the same size and a different hash). Before signing, Publish checks that
// storage holds the tree (tlog.TreeHash over stored hashes equals
// tree.Hash) and that it is consistent with the previous checkpoint, and
// refuses otherwise: the log never signs what it cannot serve.
func (l *Log) Publish(ctx context.Context, tree tlog.Tree) error {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	prev, err := l.loadLocked(ctx)
	if err != nil {
		return fmt.Errorf("translog: publish %d: %w", tree.N, err)
	}
	if tree.N < 0 {
		return fmt.Errorf("translog: publish: negative tree size %d", tree.N)
	}
	if prev != nil && tree.N <= prev.tree.N {
		if tree.N == prev.tree.N && tree.Hash != prev.tree.Hash {
			return fmt.Errorf("translog: publish %d: hash %v differs from published %v", tree.N, tree.Hash, prev.tree.Hash)
		}
		return nil
	}
	hr := l.HashReader(ctx)
	// RFC 6962 §2.1: MTH of the first tree.N leaves, from stored hashes.
	h, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		return fmt.Errorf("translog: publish %d: tree not in storage: %w", tree.N, err)
	}
	if h != tree.Hash {
		return fmt.Errorf("translog: publish %d: hash %v, storage has %v", tree.N, tree.Hash, h)
	}
	if prev != nil && prev.tree.N > 0 {
		// RFC 6962 §2.1.2: the new tree must extend the published one.
		p, err := tlog.ProveTree(tree.N, prev.tree.N, hr)
		if err != nil {
			return fmt.Errorf("translog: publish %d: prove consistency with %d: %w", tree.N, prev.tree.N, err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, prev.tree.N, prev.tree.Hash); err != nil {
			return fmt.Errorf("translog: publish %d: inconsistent with published %d: %w", tree.N, prev.tree.N, err)
		}
	}
	// c2sp.org/tlog-checkpoint: origin, size, base64 root, each on its own
	// line; c2sp.org/signed-note: blank line, then "— <name> <base64 sig>".
	text := torchwood.Checkpoint{Origin: l.signer.Name(), Tree: tree}.String()
	signed, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		return fmt.Errorf("translog: publish %d: sign: %w", tree.N, err)
	}
	if err := l.st.SaveCheckpoint(ctx, tree.N, tree.Hash, signed); err != nil {
		return fmt.Errorf("translog: publish %d: save: %w", tree.N, err)
	}
	l.mu.Lock()
	l.cur = &published{signed: signed, tree: tree}
	l.mu.Unlock()
	return nil
}

// Checkpoint returns the latest published signed checkpoint and its tree,
// loading it from storage the first time (after a restart). It returns
// [ErrNoCheckpoint] if none was ever published.
func (l *Log) Checkpoint(ctx context.Context) (signed []byte, tree tlog.Tree, err error) {
	l.mu.RLock()
	cur := l.cur
	l.mu.RUnlock()
	if cur == nil {
		l.pubMu.Lock()
		cur, err = l.loadLocked(ctx)
		l.pubMu.Unlock()
		if err != nil {
			return nil, tlog.Tree{}, fmt.Errorf("translog: checkpoint: %w", err)
		}
		if cur == nil {
			return nil, tlog.Tree{}, ErrNoCheckpoint
		}
	}
	return bytes.Clone(cur.signed), cur.tree, nil
}

// loadLocked returns the current checkpoint, loading it from storage if it
// is not in memory. It returns nil, nil if storage has none. l.pubMu must be
// held.
func (l *Log) loadLocked(ctx context.Context) (*published, error) {
	l.mu.RLock()
	cur := l.cur
	l.mu.RUnlock()
	if cur != nil {
		return cur, nil
	}
	signed, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("load latest checkpoint: %w", err)
	}
	if signed == nil {
		return nil, nil
	}
	// The stored note must be ours: signed by this key for this origin...
	policy := torchwood.ThresholdPolicy(2,
		torchwood.OriginPolicy(l.signer.Name()),
		torchwood.SingleVerifierPolicy(signerVerifier{l.signer}))
	c, _, err := torchwood.VerifyCheckpoint(signed, policy)
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint not signed by %s: %w", l.signer.Name(), err)
	}
	// ...and describe the tree in storage.
	h, err := tlog.TreeHash(c.N, l.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint %d: tree not in storage: %w", c.N, err)
	}
	if h != c.Hash {
		return nil, fmt.Errorf("stored checkpoint %d: hash %v, storage has %v", c.N, c.Hash, h)
	}
	cur = &published{signed: signed, tree: c.Tree}
	l.mu.Lock()
	l.cur = cur
	l.mu.Unlock()
	return cur, nil
}

// signerVerifier verifies signatures by signing again: Ed25519 signatures
// are deterministic (RFC 8032 §5.1.6), so a note verifies iff re-signing its
// text gives the same bytes. It lets the Log check the checkpoint it finds in
// storage with nothing but its note.Signer. For a signer of a randomized
// scheme it rejects everything, which fails loudly (at load) rather than
// unsafely.
type signerVerifier struct{ s note.Signer }

func (v signerVerifier) Name() string    { return v.s.Name() }
func (v signerVerifier) KeyHash() uint32 { return v.s.KeyHash() }
func (v signerVerifier) Verify(msg, sig []byte) bool {
	s, err := v.s.Sign(msg)
	return err == nil && bytes.Equal(s, sig)
}

// published returns the tree of the latest checkpoint, or ErrNotPublished.
func (l *Log) publishedTree(ctx context.Context) (tlog.Tree, error) {
	_, tree, err := l.Checkpoint(ctx)
	if errors.Is(err, ErrNoCheckpoint) {
		return tlog.Tree{}, ErrNotPublished
	}
	return tree, err
}

// InclusionProof returns the RFC 6962 §2.1.1 inclusion proof of leaf index
// in the tree of treeSize leaves, as checked by tlog.CheckRecord.
// treeSize must not exceed the latest checkpoint ([ErrNotPublished]).
func (l *Log) InclusionProof(ctx context.Context, index, treeSize int64) (tlog.RecordProof, error) {
	if index < 0 || index >= treeSize {
		return nil, fmt.Errorf("translog: inclusion proof of %d in %d: %w", index, treeSize, ErrInvalidRange)
	}
	tree, err := l.publishedTree(ctx)
	if err != nil {
		return nil, fmt.Errorf("translog: inclusion proof of %d in %d: %w", index, treeSize, err)
	}
	if treeSize > tree.N {
		return nil, fmt.Errorf("translog: inclusion proof of %d in %d (published %d): %w", index, treeSize, tree.N, ErrNotPublished)
	}
	p, err := tlog.ProveRecord(treeSize, index, l.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("translog: inclusion proof of %d in %d: %w", index, treeSize, err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 §2.1.2 consistency proof between the
// trees of oldSize and newSize leaves (1 <= oldSize <= newSize), as checked
// by tlog.CheckTree. newSize must not exceed the latest checkpoint
// ([ErrNotPublished]).
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("translog: consistency proof %d to %d: %w", oldSize, newSize, ErrInvalidRange)
	}
	tree, err := l.publishedTree(ctx)
	if err != nil {
		return nil, fmt.Errorf("translog: consistency proof %d to %d: %w", oldSize, newSize, err)
	}
	if newSize > tree.N {
		return nil, fmt.Errorf("translog: consistency proof %d to %d (published %d): %w", oldSize, newSize, tree.N, ErrNotPublished)
	}
	p, err := tlog.ProveTree(newSize, oldSize, l.HashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("translog: consistency proof %d to %d: %w", oldSize, newSize, err)
	}
	return p, nil
}

// HashReader returns a tlog.HashReader over the Storage's stored hashes,
// bound to ctx. Hashes are immutable, so it serves repeated reads from a
// bounded in-memory cache shared by the Log, and fetches all misses of one
// ReadHashes call with one Storage.ReadHashes.
func (l *Log) HashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.readHashes(ctx, indexes)
	})
}

func (l *Log) readHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	var where []int // position in out of each missing index
	l.hashes.mu.Lock()
	for i, idx := range indexes {
		if h, ok := l.hashes.getLocked(idx); ok {
			out[i] = h
			continue
		}
		missing = append(missing, idx)
		where = append(where, i)
	}
	l.hashes.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := l.st.ReadHashes(ctx, missing)
	if err != nil {
		return nil, err
	}
	if len(got) != len(missing) {
		return nil, fmt.Errorf("translog: storage returned %d hashes for %d indexes", len(got), len(missing))
	}
	l.hashes.mu.Lock()
	for i, h := range got {
		out[where[i]] = h
		l.hashes.putLocked(missing[i], h)
	}
	l.hashes.mu.Unlock()
	return out, nil
}

// hashCacheSize bounds the hash cache: at most 2×hashCacheSize hashes
// (a few MB), i.e. 512 full tiles' worth.
const hashCacheSize = 1 << 16

// hashCache is a bounded cache of immutable stored hashes. It keeps two
// generations: lookups promote hits from the old generation into the
// current one, and when the current one is full it becomes the old one.
// That approximates LRU without per-entry bookkeeping.
type hashCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[int64]tlog.Hash
}

func newHashCache(max int) *hashCache {
	return &hashCache{max: max, cur: make(map[int64]tlog.Hash)}
}

func (c *hashCache) getLocked(idx int64) (tlog.Hash, bool) {
	if h, ok := c.cur[idx]; ok {
		return h, true
	}
	h, ok := c.old[idx]
	if ok {
		c.putLocked(idx, h)
	}
	return h, ok
}

func (c *hashCache) putLocked(idx int64, h tlog.Hash) {
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[int64]tlog.Hash, c.max)
	}
	c.cur[idx] = h
}
