package translog

import (
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// TestProofsExhaustive grows a log one leaf at a time to 300 leaves through
// Appender and MemStorage, publishing every size, and checks at each size n:
// the tree hash against the plain tlog computation; for every leaf i < n an
// inclusion proof, and for every 1 <= m <= n a consistency proof, verifying
// with tlog and with transparency-dev/merkle (an independent RFC 6962
// implementation); and that each proof with one bit flipped in any one of
// its hashes fails.
func TestProofsExhaustive(t *testing.T) {
	const maxN = 300
	l := newTestLog(t)
	ctx := t.Context()
	roots := []tlog.Hash{{}} // roots[n]: root of the first n leaves
	failures := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		if failures++; failures >= 10 {
			t.FailNow()
		}
	}
	// flip returns p's hashes with bit (salt mod 256) of hash j flipped.
	flip := func(p []tlog.Hash, j, salt int) []tlog.Hash {
		q := append([]tlog.Hash(nil), p...)
		bit := salt % 256
		q[j][bit/8] ^= 1 << (bit % 8)
		return q
	}
	bytesOf := func(p []tlog.Hash) [][]byte {
		out := make([][]byte, len(p))
		for i := range p {
			out[i] = p[i][:]
		}
		return out
	}
	var inclusion, consistency, flipped int
	for n := int64(1); n <= maxN; n++ {
		tree := l.append(t, 1)
		if want := l.plain.tree(t, n); tree != want {
			t.Fatalf("size %d: Appender tree %v, plain tlog %v", n, tree, want)
		}
		l.publish(t, tree)
		roots = append(roots, tree.Hash)

		for i := range n {
			p, err := l.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, n, err)
			}
			inclusion++
			leaf := tlog.RecordHash(l.plain.entries[i])
			if err := tlog.CheckRecord(p, n, tree.Hash, i, leaf); err != nil {
				fail("inclusion of %d in %d: tlog.CheckRecord: %v", i, n, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), leaf[:], bytesOf(p), tree.Hash[:]); err != nil {
				fail("inclusion of %d in %d: merkle proof.VerifyInclusion: %v", i, n, err)
			}
			for j := range p {
				flipped++
				if tlog.CheckRecord(flip(p, j, int(i+n)+j*31), n, tree.Hash, i, leaf) == nil {
					fail("inclusion of %d in %d verifies with a bit of hash %d flipped", i, n, j)
				}
			}
		}

		for m := int64(1); m <= n; m++ {
			p, err := l.ConsistencyProof(ctx, m, n)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			consistency++
			if err := tlog.CheckTree(p, n, tree.Hash, m, roots[m]); err != nil {
				fail("consistency %d to %d: tlog.CheckTree: %v", m, n, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(m), uint64(n), bytesOf(p), roots[m][:], tree.Hash[:]); err != nil {
				fail("consistency %d to %d: merkle proof.VerifyConsistency: %v", m, n, err)
			}
			for j := range p {
				flipped++
				if tlog.CheckTree(flip(p, j, int(m+n)+j*31), n, tree.Hash, m, roots[m]) == nil {
					fail("consistency %d to %d verifies with a bit of hash %d flipped", m, n, j)
				}
			}
		}
	}
	t.Logf("checked %d inclusion and %d consistency proofs, %d with a flipped bit", inclusion, consistency, flipped)
}

func TestProofRequests(t *testing.T) {
	l := newTestLog(t)
	ctx := t.Context()
	t.Run("ErrNotPublishedBeforeFirstCheckpoint", func(t *testing.T) {
		l.append(t, 10)
		if _, err := l.InclusionProof(ctx, 0, 1); !errors.Is(err, ErrNotPublished) {
			t.Errorf("InclusionProof before any checkpoint = %v, want ErrNotPublished", err)
		}
		if _, err := l.ConsistencyProof(ctx, 1, 2); !errors.Is(err, ErrNotPublished) {
			t.Errorf("ConsistencyProof before any checkpoint = %v, want ErrNotPublished", err)
		}
	})
	tree := l.append(t, 0)
	l.publish(t, tree)
	l.append(t, 5) // committed, not published
	tests := []struct {
		name    string
		proof   func() error
		wantErr error
	}{
		{"InclusionInPublishedTree", func() error { _, err := l.InclusionProof(ctx, 9, 10); return err }, nil},
		{"InclusionOfOnlyLeafIsEmpty", func() error {
			p, err := l.InclusionProof(ctx, 0, 1)
			if err == nil && len(p) != 0 {
				return errors.New("non-empty proof")
			}
			return err
		}, nil},
		{"ErrNotPublishedBeyondCheckpoint", func() error { _, err := l.InclusionProof(ctx, 0, 11); return err }, ErrNotPublished},
		{"ErrInvalidRangeIndexAtSize", func() error { _, err := l.InclusionProof(ctx, 10, 10); return err }, ErrInvalidRange},
		{"ErrInvalidRangeNegativeIndex", func() error { _, err := l.InclusionProof(ctx, -1, 10); return err }, ErrInvalidRange},
		{"ConsistencySameSizeIsEmpty", func() error {
			p, err := l.ConsistencyProof(ctx, 10, 10)
			if err == nil && len(p) != 0 {
				return errors.New("non-empty proof")
			}
			return err
		}, nil},
		{"ErrNotPublishedConsistencyBeyondCheckpoint", func() error { _, err := l.ConsistencyProof(ctx, 5, 15); return err }, ErrNotPublished},
		{"ErrInvalidRangeOldSizeZero", func() error { _, err := l.ConsistencyProof(ctx, 0, 10); return err }, ErrInvalidRange},
		{"ErrInvalidRangeOldAboveNew", func() error { _, err := l.ConsistencyProof(ctx, 9, 8); return err }, ErrInvalidRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.proof()
			if tt.wantErr == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
