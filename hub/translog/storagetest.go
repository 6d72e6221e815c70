package translog

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// StorageSuite is the conformance suite of [Storage]. open returns a fresh,
// empty storage and the function that commits a [Batch] to it the way the
// ledger does (for the PostgreSQL store: in its own transaction). Each
// subtest opens its own storage. The suite is run against [MemStorage] by
// this package's tests, and against the PostgreSQL store by its tests.
//
// It lives in a non-test file so other packages' tests can run it, as
// golang.org/x/mod/sumdb/storage.TestStorage does.
func StorageSuite(t *testing.T, open func(t *testing.T) (Storage, func(Batch) error)) {
	t.Run("EmptyStorageHasNothing", func(t *testing.T) {
		st, _ := open(t)
		ctx := t.Context()
		signed, err := st.LatestCheckpoint(ctx)
		if err != nil || signed != nil {
			t.Errorf("LatestCheckpoint = %q, %v; want nil, nil", signed, err)
		}
		if _, err := st.ReadHashes(ctx, []int64{0}); err == nil {
			t.Errorf("ReadHashes([0]) succeeded on empty storage")
		}
		if _, err := st.ReadEntries(ctx, 0, 1); err == nil {
			t.Errorf("ReadEntries(0, 1) succeeded on empty storage")
		}
		if got, err := st.ReadEntries(ctx, 0, 0); err != nil || len(got) != 0 {
			t.Errorf("ReadEntries(0, 0) = %d entries, %v; want 0, nil", len(got), err)
		}
	})

	t.Run("CommittedBatchesReadBack", func(t *testing.T) {
		st, commit := open(t)
		ctx := t.Context()
		ref := suiteCommit(t, st, commit, suiteBatchSizes)

		all := make([]int64, len(ref.hashes))
		for i := range all {
			all[i] = int64(i)
		}
		got, err := st.ReadHashes(ctx, all)
		if err != nil {
			t.Fatalf("ReadHashes(all %d): %v", len(all), err)
		}
		suiteCheckHashes(t, "in order", all, got, ref.hashes)

		shuffled := append([]int64(nil), all...)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[:10]...) // repeats
		got, err = st.ReadHashes(ctx, shuffled)
		if err != nil {
			t.Fatalf("ReadHashes(shuffled): %v", err)
		}
		suiteCheckHashes(t, "shuffled with repeats", shuffled, got, ref.hashes)

		if got, err := st.ReadHashes(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("ReadHashes(nil) = %d hashes, %v; want 0, nil", len(got), err)
		}

		n := int64(len(ref.entries))
		for _, r := range [][2]int64{{0, n}, {0, 1}, {n - 1, n}, {255, 513}, {300, 300}, {n, n}} {
			got, err := st.ReadEntries(ctx, r[0], r[1])
			if err != nil {
				t.Errorf("ReadEntries(%d, %d): %v", r[0], r[1], err)
				continue
			}
			want := ref.entries[r[0]:r[1]]
			if len(got) != len(want) {
				t.Errorf("ReadEntries(%d, %d) = %d entries, want %d", r[0], r[1], len(got), len(want))
				continue
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("ReadEntries(%d, %d)[%d] = %d bytes %.16q, want %d bytes %.16q", r[0], r[1], i, len(got[i]), got[i], len(want[i]), want[i])
				}
			}
		}
	})

	t.Run("UnwrittenDataIsAnError", func(t *testing.T) {
		st, commit := open(t)
		ctx := t.Context()
		ref := suiteCommit(t, st, commit, []int{3, 5})
		n, nh := int64(len(ref.entries)), int64(len(ref.hashes))
		for _, idx := range [][]int64{{nh}, {0, nh}, {nh + 1000}, {-1}, {1, -1}} {
			if _, err := st.ReadHashes(ctx, idx); err == nil {
				t.Errorf("ReadHashes(%v) succeeded with %d hashes stored", idx, nh)
			}
		}
		for _, r := range [][2]int64{{0, n + 1}, {n, n + 1}, {-1, 1}, {3, 2}} {
			if _, err := st.ReadEntries(ctx, r[0], r[1]); err == nil {
				t.Errorf("ReadEntries(%d, %d) succeeded with %d entries stored", r[0], r[1], n)
			}
		}
	})

	t.Run("BatchAtWrongIndexIsRejected", func(t *testing.T) {
		st, commit := open(t)
		ref := suiteCommit(t, st, commit, []int{4})
		// A batch computed for a tree of 2 leaves overlaps; one for 6 leaves
		// leaves a gap.
		for _, size := range []int64{2, 6} {
			a, err := NewAppender(t.Context(), size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				return make([]tlog.Hash, len(idx)), nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			b, err := a.Append([][]byte{[]byte("misplaced")})
			if err != nil {
				t.Fatal(err)
			}
			if err := commit(b); err == nil {
				t.Errorf("commit of a batch at leaf %d succeeded on a log of %d", size, len(ref.entries))
			}
		}
		got, err := st.ReadEntries(t.Context(), 0, 4)
		if err != nil || len(got) != 4 {
			t.Fatalf("after rejected batches, ReadEntries(0, 4) = %d, %v", len(got), err)
		}
		if _, err := st.ReadEntries(t.Context(), 0, 5); err == nil {
			t.Errorf("after rejected batches, leaf 4 exists")
		}
	})

	t.Run("CheckpointsRoundTripIdempotently", func(t *testing.T) {
		st, commit := open(t)
		ctx := t.Context()
		ref := suiteCommit(t, st, commit, []int{10, 10})
		signer := suiteSigner(t)
		cp := func(n int64) (tlog.Hash, []byte) {
			t.Helper()
			root, err := tlog.TreeHash(n, ref.reader())
			if err != nil {
				t.Fatal(err)
			}
			text := torchwood.Checkpoint{Origin: signer.Name(), Tree: tlog.Tree{N: n, Hash: root}}.String()
			signed, err := note.Sign(&note.Note{Text: text}, signer)
			if err != nil {
				t.Fatal(err)
			}
			return root, signed
		}
		latest := func(want []byte, when string) {
			t.Helper()
			got, err := st.LatestCheckpoint(ctx)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: LatestCheckpoint = %q, %v; want %q", when, got, err, want)
			}
		}
		root10, signed10 := cp(10)
		root20, signed20 := cp(20)

		if err := st.SaveCheckpoint(ctx, 10, root10, signed10); err != nil {
			t.Fatalf("SaveCheckpoint(10): %v", err)
		}
		latest(signed10, "after saving 10")
		if err := st.SaveCheckpoint(ctx, 10, root10, signed10); err != nil {
			t.Errorf("SaveCheckpoint(10) again: %v, want nil (idempotent)", err)
		}
		latest(signed10, "after saving 10 again")
		if err := st.SaveCheckpoint(ctx, 10, root20, signed20); err == nil {
			t.Errorf("SaveCheckpoint(10) with a different root succeeded")
		}
		latest(signed10, "after saving 10 with another root")
		if err := st.SaveCheckpoint(ctx, 20, root20, signed20); err != nil {
			t.Fatalf("SaveCheckpoint(20): %v", err)
		}
		latest(signed20, "after saving 20")
		_, signed5 := cp(5)
		root5, _ := tlog.TreeHash(5, ref.reader())
		_ = st.SaveCheckpoint(ctx, 5, root5, signed5) // may or may not be an error
		latest(signed20, "after saving the older 5")
	})

	t.Run("LogPublishesAndProvesFromStorage", func(t *testing.T) {
		st, commit := open(t)
		ctx := t.Context()
		ref := suiteCommit(t, st, commit, []int{1, 256, 100})
		n := int64(len(ref.entries))
		root, err := tlog.TreeHash(n, ref.reader())
		if err != nil {
			t.Fatal(err)
		}
		signer := suiteSigner(t)
		l := New(st, signer)
		if err := l.Publish(ctx, tlog.Tree{N: n, Hash: root}); err != nil {
			t.Fatalf("Publish(%d): %v", n, err)
		}
		// A new Log over the same storage (a restarted hub) loads it.
		l = New(st, signer)
		_, tree, err := l.Checkpoint(ctx)
		if err != nil || tree != (tlog.Tree{N: n, Hash: root}) {
			t.Fatalf("Checkpoint after restart = %v, %v; want %v", tree, err, tlog.Tree{N: n, Hash: root})
		}
		for _, i := range []int64{0, 1, 255, 256, n - 1} {
			p, err := l.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, n, err)
			}
			if err := tlog.CheckRecord(p, n, root, i, tlog.RecordHash(ref.entries[i])); err != nil {
				t.Errorf("inclusion proof of %d in %d does not verify: %v", i, n, err)
			}
		}
	})

	t.Run("ConcurrentReadsAgree", func(t *testing.T) {
		st, commit := open(t)
		ref := suiteCommit(t, st, commit, []int{600})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Go(func() {
				idx := []int64{int64(g), int64(len(ref.hashes) - 1 - g)}
				got, err := st.ReadHashes(t.Context(), idx)
				if err != nil {
					errs <- err
					return
				}
				if got[0] != ref.hashes[idx[0]] || got[1] != ref.hashes[idx[1]] {
					errs <- fmt.Errorf("goroutine %d read wrong hashes", g)
					return
				}
				if _, err := st.ReadEntries(t.Context(), int64(g), int64(600-g)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// suiteBatchSizes cross tile boundaries, include an empty batch and a batch
// of one, and end in a partial tile.
var suiteBatchSizes = []int{1, 2, 0, 253, 256, 300, 1, 7}

// suiteRef is the suite's independent in-memory copy of what it committed.
type suiteRef struct {
	entries [][]byte
	hashes  []tlog.Hash
}

func (r *suiteRef) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(r.hashes)) {
				return nil, fmt.Errorf("reference: hash %d not stored", x)
			}
			out[i] = r.hashes[x]
		}
		return out, nil
	})
}

// suiteEntry is leaf i: varied sizes, including empty and the largest allowed.
func suiteEntry(i int) []byte {
	switch {
	case i == 1:
		return []byte{}
	case i == 2:
		return bytes.Repeat([]byte{0xa5}, MaxEntrySize)
	default:
		return fmt.Appendf(nil, "leaf %d %s", i, bytes.Repeat([]byte{'x'}, i%50))
	}
}

// suiteCommit commits batches of the given sizes, each through an Appender
// built from what the storage holds (as the ledger does after a restart),
// and returns the reference copy.
func suiteCommit(t *testing.T, st Storage, commit func(Batch) error, sizes []int) *suiteRef {
	t.Helper()
	ctx := t.Context()
	ref := &suiteRef{}
	for _, k := range sizes {
		n := int64(len(ref.entries))
		a, err := NewAppender(ctx, n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			return st.ReadHashes(ctx, idx)
		}))
		if err != nil {
			t.Fatalf("NewAppender(%d) over storage: %v", n, err)
		}
		var entries [][]byte
		for i := range k {
			entries = append(entries, suiteEntry(int(n)+i))
		}
		b, err := a.Append(entries)
		if err != nil {
			t.Fatalf("Append(%d entries at %d): %v", k, n, err)
		}
		if err := commit(b); err != nil {
			t.Fatalf("commit(%d entries at %d): %v", k, n, err)
		}
		for i, e := range entries {
			hs, err := tlog.StoredHashes(n+int64(i), e, ref.reader())
			if err != nil {
				t.Fatal(err)
			}
			ref.hashes = append(ref.hashes, hs...)
			ref.entries = append(ref.entries, bytes.Clone(e))
		}
	}
	return ref
}

func suiteCheckHashes(t *testing.T, what string, idx []int64, got, want []tlog.Hash) {
	t.Helper()
	if len(got) != len(idx) {
		t.Fatalf("ReadHashes(%s) = %d hashes for %d indexes", what, len(got), len(idx))
	}
	bad := 0
	for i, x := range idx {
		if got[i] != want[x] {
			t.Errorf("ReadHashes(%s): hash %d = %v, want %v", what, x, got[i], want[x])
			if bad++; bad == 5 {
				t.FailNow()
			}
		}
	}
}

func suiteSigner(t *testing.T) note.Signer {
	t.Helper()
	skey, _, err := GenerateKey("suite.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
