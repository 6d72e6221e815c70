package translog

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestTorchwoodClientReadsLog has a third-party c2sp.org/tlog-tiles client
// (filippo.io/torchwood) read and authenticate the whole log over HTTP.
func TestTorchwoodClientReadsLog(t *testing.T) {
	l := newTestLog(t)
	// 1000 leaves in uneven batches: three full tiles and a partial one.
	tree := l.append(t, 1, 99, 300, 256, 344)
	l.publish(t, tree)
	l.append(t, 20) // committed, not published

	srv := httptest.NewServer(http.StripPrefix("/log", l.Handler()))
	t.Cleanup(srv.Close)
	ctx := t.Context()

	fetcher, err := torchwood.NewTileFetcher(srv.URL+"/log/", torchwood.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := fetcher.ReadEndpoint(ctx, "checkpoint")
	if err != nil {
		t.Fatalf("fetching checkpoint: %v", err)
	}
	v, err := note.NewVerifier(testVkey)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := torchwood.VerifyCheckpoint(signed, torchwood.ThresholdPolicy(2,
		torchwood.OriginPolicy(v.Name()), torchwood.SingleVerifierPolicy(v)))
	if err != nil {
		t.Fatalf("torchwood.VerifyCheckpoint: %v", err)
	}
	if c.Tree != tree {
		t.Fatalf("checkpoint tree %v, want %v", c.Tree, tree)
	}

	client, err := torchwood.NewClient(fetcher, torchwood.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("AllEntriesReadBackExactly", func(t *testing.T) {
		var next int64
		for i, e := range client.AllEntries(ctx, c.Tree, 0) {
			if i != next {
				t.Fatalf("entry %d yielded after %d", i, next-1)
			}
			if !bytes.Equal(e, l.plain.entries[i]) {
				t.Fatalf("entry %d = %q, want %q", i, e, l.plain.entries[i])
			}
			next++
		}
		if err := client.Err(); err != nil {
			t.Fatalf("client: %v", err)
		}
		if next != tree.N {
			t.Fatalf("read %d entries, want %d", next, tree.N)
		}
	})

	t.Run("EntriesFromMiddleStopBeforePartialBundle", func(t *testing.T) {
		var got []int64
		for i := range client.Entries(ctx, c.Tree, 700) {
			got = append(got, i)
		}
		if err := client.Err(); err != nil {
			t.Fatalf("client: %v", err)
		}
		// torchwood's Entries skips the trailing partial bundle when
		// full ones remain: 700..767.
		if len(got) != 68 || got[0] != 700 || got[len(got)-1] != 767 {
			t.Errorf("Entries(700) yielded %d entries %v..., want 700..767", len(got), got[:min(3, len(got))])
		}
	})

	t.Run("EntryWithInclusionProofVerifies", func(t *testing.T) {
		for _, i := range []int64{0, 255, 256, 777, 999} {
			e, p, err := client.Entry(ctx, c.Tree, i)
			if err != nil {
				t.Fatalf("Entry(%d): %v", i, err)
			}
			if !bytes.Equal(e, l.plain.entries[i]) {
				t.Errorf("Entry(%d) = %q", i, e)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(e)); err != nil {
				t.Errorf("Entry(%d) proof: %v", i, err)
			}
			// The proof from tiles is the one the Log computes.
			lp, err := l.InclusionProof(ctx, i, tree.N)
			if err != nil || len(lp) != len(p) {
				t.Fatalf("InclusionProof(%d): %v (%d hashes, client %d)", i, err, len(lp), len(p))
			}
			for j := range p {
				if p[j] != lp[j] {
					t.Errorf("Entry(%d): proof hash %d differs from Log.InclusionProof", i, j)
				}
			}
		}
	})
}
