package translog

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestAppenderMatchesPlainTlog(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
	}{
		{"OneLeafAtATime", []int{1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"OneBigBatch", []int{1000}},
		{"EmptyBatches", []int{0, 3, 0, 0, 5, 0}},
		{"BatchesCrossingTiles", []int{255, 1, 256, 2, 510, 3}},
		{"PowersOfTwo", []int{1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512}},
		{"OddSizes", []int{7, 13, 255, 257, 3, 511}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLog(t)
			for _, k := range tt.sizes {
				before := l.app.Size()
				firstHash := int64(len(l.plain.hashes))
				var entries [][]byte
				for i := range k {
					entries = append(entries, testEntry(int(before)+i))
				}
				b, err := l.app.Append(entries)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					l.plain.add(t, e)
				}
				if err := b.Validate(); err != nil {
					t.Fatalf("batch at %d invalid: %v", before, err)
				}
				if b.FirstIndex != before || b.FirstHashIndex != firstHash || b.FirstHashIndex != tlog.StoredHashIndex(0, before) {
					t.Fatalf("batch at %d: FirstIndex %d FirstHashIndex %d, want %d %d", before, b.FirstIndex, b.FirstHashIndex, before, firstHash)
				}
				want := l.plain.hashes[firstHash:]
				if len(b.Hashes) != len(want) {
					t.Fatalf("batch at %d: %d hashes, want %d", before, len(b.Hashes), len(want))
				}
				for i := range want {
					if b.Hashes[i] != want[i] {
						t.Fatalf("batch at %d: hash %d = %v, want %v", before, firstHash+int64(i), b.Hashes[i], want[i])
					}
				}
				got, err := l.app.TreeHash()
				if err != nil {
					t.Fatal(err)
				}
				if wantTree := l.plain.tree(t, l.app.Size()); got != wantTree.Hash {
					t.Fatalf("TreeHash at %d = %v, want %v", l.app.Size(), got, wantTree.Hash)
				}
				if len(l.app.frontier) != len(frontierIndexes(l.app.Size())) {
					t.Errorf("frontier of %d holds %d hashes, want %d (not pruned)", l.app.Size(), len(l.app.frontier), len(frontierIndexes(l.app.Size())))
				}
				if err := l.st.Commit(b); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestNewAppenderContinuesStoredTree(t *testing.T) {
	// At every size, an Appender loaded from stored hashes (a restarted
	// ledger) computes the same hashes as the one that never stopped.
	l := newTestLog(t)
	l.append(t, 700)
	for n := int64(0); n+3 <= 700; n++ {
		a, err := NewAppender(t.Context(), n, l.plain)
		if err != nil {
			t.Fatalf("NewAppender(%d): %v", n, err)
		}
		if got, err := a.TreeHash(); err != nil || got != l.plain.tree(t, n).Hash {
			t.Fatalf("NewAppender(%d).TreeHash = %v, %v; want %v", n, got, err, l.plain.tree(t, n).Hash)
		}
		b, err := a.Append(l.plain.entries[n : n+3])
		if err != nil {
			t.Fatal(err)
		}
		want := l.plain.hashes[tlog.StoredHashIndex(0, n):tlog.StoredHashIndex(0, n+3)]
		if len(b.Hashes) != len(want) {
			t.Fatalf("at %d: %d hashes, want %d", n, len(b.Hashes), len(want))
		}
		for i := range want {
			if b.Hashes[i] != want[i] {
				t.Fatalf("at %d: hash %d differs after restart", n, i)
			}
		}
	}
}

func TestAppenderErrors(t *testing.T) {
	t.Run("EntryTooLargeLeavesAppenderUnchanged", func(t *testing.T) {
		l := newTestLog(t)
		l.append(t, 5)
		before, _ := l.app.TreeHash()
		_, err := l.app.Append([][]byte{[]byte("ok"), make([]byte, MaxEntrySize+1)})
		if err == nil || !strings.Contains(err.Error(), "more than 65535") {
			t.Fatalf("Append(65536-byte entry) = %v, want size error", err)
		}
		after, _ := l.app.TreeHash()
		if l.app.Size() != 5 || after != before {
			t.Errorf("failed Append changed the appender: size %d", l.app.Size())
		}
	})
	t.Run("LargestAndEmptyEntriesAccepted", func(t *testing.T) {
		l := newTestLog(t)
		b, err := l.app.Append([][]byte{bytes.Repeat([]byte{1}, MaxEntrySize), {}, nil})
		if err != nil {
			t.Fatalf("Append(65535-byte, empty, nil) = %v", err)
		}
		// RFC 6962 §2.1: the leaf hash of the empty string is SHA-256(0x00).
		if h := b.Hashes[tlog.StoredHashIndex(0, 2)]; h != tlog.RecordHash(nil) {
			t.Errorf("hash of empty leaf = %v, want %v", h, tlog.RecordHash(nil))
		}
	})
	t.Run("NegativeSizeRejected", func(t *testing.T) {
		if _, err := NewAppender(t.Context(), -1, nil); err == nil {
			t.Error("NewAppender(-1) succeeded")
		}
	})
	t.Run("MissingFrontierRejected", func(t *testing.T) {
		st := new(MemStorage)
		_, err := NewAppender(t.Context(), 3, New(st, mustSigner(t, testSkey)).HashReader(t.Context()))
		if err == nil {
			t.Error("NewAppender(3) over empty storage succeeded")
		}
	})
	t.Run("CanceledContextRejected", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := NewAppender(ctx, 0, nil); err == nil {
			t.Error("NewAppender with canceled context succeeded")
		}
	})
	t.Run("EmptyTreeHashIsRFC6962Empty", func(t *testing.T) {
		a, _ := NewAppender(t.Context(), 0, nil)
		h, err := a.TreeHash()
		// RFC 6962 §2.1: MTH({}) = SHA-256().
		want, _ := tlog.ParseHash("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
		if err != nil || h != want {
			t.Errorf("empty TreeHash = %v, %v; want %v", h, err, want)
		}
	})
}

// BenchmarkAppend8190 appends batches of 8190 leaves of 200 bytes (a full
// ledger group commit) to a tree of about a million leaves.
func BenchmarkAppend8190(b *testing.B) {
	const start = 1<<20 + 12345
	a, err := NewAppender(b.Context(), start, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return make([]tlog.Hash, len(idx)), nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	entries := make([][]byte, 8190)
	for i := range entries {
		entries[i] = bytes.Repeat([]byte{byte(i)}, 200)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Append(entries); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/8190, "ns/leaf")
}
