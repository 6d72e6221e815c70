package translog

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"filippo.io/torchwood"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// get requests path from the handler mounted as the hub mounts it.
func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, "/log"+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	http.StripPrefix("/log", h).ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// 256² + 3·256 + 5 leaves: 259 full level-0 tiles and one of width 5, one
// full level-1 tile and one of width 3, one level-2 tile of width 1.
const handlerTreeSize = 256*256 + 3*256 + 5

func TestHandler(t *testing.T) {
	l := newTestLog(t)
	h := l.Handler()

	t.Run("NotFoundBeforeFirstCheckpoint", func(t *testing.T) {
		l.append(t, 10)
		for _, p := range []string{"/checkpoint", "/tile/0/000.p/1", "/tile/entries/000.p/1"} {
			if resp := get(t, h, "GET", p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
			}
		}
	})

	tree := l.append(t, handlerTreeSize-10)
	l.publish(t, tree)
	l.append(t, 300) // committed but not published: must not be served

	t.Run("CheckpointVerifies", func(t *testing.T) {
		resp := get(t, h, "GET", "/checkpoint")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
		c, err := VerifyCheckpoint(body(t, resp), testVkey)
		if err != nil {
			t.Fatalf("VerifyCheckpoint: %v", err)
		}
		if c.Tree != tree || c.Origin != "hub.example.org/log" {
			t.Errorf("checkpoint %v %v, want %v", c.Origin, c.Tree, tree)
		}
	})

	tests := []struct {
		name      string
		path      string
		status    int
		wantBytes int // body length for 200
		immutable bool
	}{
		{"FullLevel0Tile", "/tile/0/000", 200, 256 * 32, true},
		{"LastFullLevel0Tile", "/tile/0/258", 200, 256 * 32, true},
		{"PartialLevel0Tile", "/tile/0/259.p/5", 200, 5 * 32, true},
		{"NarrowerPartialOfFullTile", "/tile/0/001.p/7", 200, 7 * 32, true},
		{"FullLevel1Tile", "/tile/1/000", 200, 256 * 32, true},
		{"PartialLevel1Tile", "/tile/1/001.p/3", 200, 3 * 32, true},
		{"PartialLevel2Tile", "/tile/2/000.p/1", 200, 32, true},
		{"FullEntryBundle", "/tile/entries/000", 200, -1, true},
		{"PartialEntryBundle", "/tile/entries/259.p/5", 200, -1, true},
		{"NotFoundFullTileBeyondCheckpoint", "/tile/0/259", 404, 0, false},
		{"NotFoundWiderPartialTile", "/tile/0/259.p/6", 404, 0, false},
		{"NotFoundUnpublishedTile", "/tile/0/260.p/1", 404, 0, false},
		{"NotFoundFullLevel1BeyondCheckpoint", "/tile/1/001", 404, 0, false},
		{"NotFoundLevel2Width2", "/tile/2/000.p/2", 404, 0, false},
		{"NotFoundLevel3", "/tile/3/000.p/1", 404, 0, false},
		{"NotFoundLevel63", "/tile/63/000.p/1", 404, 0, false},
		{"NotFoundEntriesBeyondCheckpoint", "/tile/entries/259", 404, 0, false},
		{"NotFoundWiderPartialEntries", "/tile/entries/259.p/6", 404, 0, false},
		{"NotFoundHugeIndex", "/tile/0/x999/x999/x999/x999/x999/999", 404, 0, false},
		{"BadRequestUnpaddedIndex", "/tile/0/1", 400, 0, false},
		{"BadRequestLeadingZeroLevel", "/tile/00/000", 400, 0, false},
		{"BadRequestLevel64", "/tile/64/000.p/1", 400, 0, false},
		{"BadRequestNegativeLevel", "/tile/-1/000", 400, 0, false},
		{"BadRequestWidthZero", "/tile/0/000.p/0", 400, 0, false},
		{"BadRequestWidth256", "/tile/0/000.p/256", 400, 0, false},
		{"BadRequestWidthLeadingZero", "/tile/0/000.p/05", 400, 0, false},
		{"BadRequestMissingWidth", "/tile/0/000.p", 400, 0, false},
		{"BadRequestMissingX", "/tile/0/001/000", 400, 0, false},
		{"BadRequestNotATile", "/tile/abc", 400, 0, false},
		{"BadRequestSumDBDataPath", "/tile/8/data/000", 400, 0, false},
		{"NotFoundUnknownPath", "/nothing", 404, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, h, "GET", tt.path)
			b := body(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d %q, want %d", tt.path, resp.StatusCode, b, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if tt.wantBytes >= 0 && len(b) != tt.wantBytes {
				t.Errorf("GET %s: %d bytes, want %d", tt.path, len(b), tt.wantBytes)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); tt.immutable && cc != "public, max-age=31536000, immutable" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}

	t.Run("MethodNotAllowed", func(t *testing.T) {
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			for _, p := range []string{"/checkpoint", "/tile/0/000"} {
				if resp := get(t, h, m, p); resp.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("%s %s = %d, want 405", m, p, resp.StatusCode)
				}
			}
		}
		if resp := get(t, h, "HEAD", "/checkpoint"); resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD /checkpoint = %d, want 200", resp.StatusCode)
		}
	})

	t.Run("TilesMatchTheTree", func(t *testing.T) {
		// tlog.TileHashReader authenticates every tile it reads against the
		// tree hash; read every leaf hash through it.
		tr := &handlerTileReader{t: t, h: h}
		hr := tlog.TileHashReader(tree, tr)
		idx := make([]int64, tree.N)
		for i := range idx {
			idx[i] = tlog.StoredHashIndex(0, int64(i))
		}
		got, err := hr.ReadHashes(idx)
		if err != nil {
			t.Fatalf("reading leaf hashes through tiles: %v", err)
		}
		for i := range idx {
			if got[i] != tlog.RecordHash(l.plain.entries[i]) {
				t.Fatalf("leaf hash %d from tiles differs", i)
			}
		}
		// c2sp.org/tlog-tiles: hash i of a level-1 tile is the Merkle
		// root of full level-0 tile i. Recompute it with another RFC 6962
		// implementation.
		l1 := body(t, get(t, h, "GET", "/tile/1/000"))
		for _, i := range []int{0, 1, 100, 255} {
			l0 := body(t, get(t, h, "GET", fmt.Sprintf("/tile/0/%03d", i)))
			if root := merkleRoot(l0); !bytes.Equal(root, l1[i*32:(i+1)*32]) {
				t.Errorf("level-1 hash %d is not the root of level-0 tile %d", i, i)
			}
		}
	})

	t.Run("EntryBundlesMatchLevel0Tiles", func(t *testing.T) {
		for _, p := range [][2]string{{"000", ""}, {"042", ""}, {"259", ".p/5"}, {"003", ".p/100"}} {
			bundle := body(t, get(t, h, "GET", "/tile/entries/"+p[0]+p[1]))
			hashes := body(t, get(t, h, "GET", "/tile/0/"+p[0]+p[1]))
			var n int
			for ; len(bundle) > 0; n++ {
				e, rest, err := torchwood.ReadTileEntry(bundle)
				if err != nil {
					t.Fatalf("bundle %s: entry %d: %v", p, n, err)
				}
				if rh := tlog.RecordHash(e); !bytes.Equal(rh[:], hashes[n*32:(n+1)*32]) {
					t.Fatalf("bundle %s: entry %d does not hash to the level-0 tile", p, n)
				}
				bundle = rest
			}
			if n*32 != len(hashes) {
				t.Errorf("bundle %s has %d entries, tile %d hashes", p, n, len(hashes)/32)
			}
		}
	})

	t.Run("EntryBundlesGzipWhenAccepted", func(t *testing.T) {
		plain := body(t, get(t, h, "GET", "/tile/entries/001"))
		resp := get(t, h, "GET", "/tile/entries/001", "Accept-Encoding", "br, gzip;q=0.8")
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain) {
			t.Errorf("gunzipped bundle differs from identity bundle (%v)", err)
		}
		resp = get(t, h, "GET", "/tile/entries/001", "Accept-Encoding", "gzip;q=0")
		if resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("gzip;q=0: Content-Encoding %q, want none", resp.Header.Get("Content-Encoding"))
		}
	})
}

// merkleRoot is the RFC 6962 root of a power-of-two list of hashes.
func merkleRoot(hashes []byte) []byte {
	level := make([][]byte, 0, len(hashes)/32)
	for i := 0; i < len(hashes); i += 32 {
		level = append(level, hashes[i:i+32])
	}
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			next = append(next, rfc6962.DefaultHasher.HashChildren(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

// handlerTileReader is a tlog.TileReader fetching c2sp.org/tlog-tiles paths
// from a handler.
type handlerTileReader struct {
	t *testing.T
	h http.Handler
}

func (r *handlerTileReader) Height() int { return torchwood.TileHeight }

func (r *handlerTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		resp := get(r.t, r.h, "GET", "/"+torchwood.TilePath(tile))
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d", torchwood.TilePath(tile), resp.StatusCode)
		}
		out[i] = body(r.t, resp)
	}
	return out, nil
}

func (r *handlerTileReader) SaveTiles([]tlog.Tile, [][]byte) {}
