package translog

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
)

// Handler serves the log per c2sp.org/tlog-tiles, relative to where it is
// mounted (the hub mounts it with http.StripPrefix("/log", ...)):
//
//	GET /checkpoint                 latest signed checkpoint
//	GET /tile/<L>/<N>[.p/<W>]       hash tiles, tile height 8
//	GET /tile/entries/<N>[.p/<W>]   entry bundles
//
// Only data covered by the latest published checkpoint is served; a tile
// beyond it, or anything before the first checkpoint, is 404. A malformed
// tile path is 400, a method other than GET or HEAD is 405.
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	// "GET" patterns also match HEAD; ServeMux answers 405 (with Allow) to
	// other methods on these paths.
	mux.HandleFunc("GET /checkpoint", l.serveCheckpoint)
	mux.HandleFunc("GET /tile/", l.serveTile)
	return mux
}

func (l *Log) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	signed, _, err := l.Checkpoint(r.Context())
	if errors.Is(err, ErrNoCheckpoint) {
		http.Error(w, "no checkpoint published yet", http.StatusNotFound)
		return
	}
	if err != nil {
		internalError(w, r, err)
		return
	}
	// c2sp.org/tlog-tiles: the checkpoint is served with Content-Type
	// text/plain; charset=utf-8, and its headers SHOULD prevent caching
	// beyond a few seconds (it is mutable).
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(signed)))
	w.Write(signed)
}

func (l *Log) serveTile(w http.ResponseWriter, r *http.Request) {
	// c2sp.org/tlog-tiles: tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>],
	// <N> in zero-padded 3-digit x-prefixed path elements, <W> in 1..255,
	// no leading zeroes anywhere (torchwood.ParseTilePath round-trips the
	// path, so only the canonical spelling parses).
	t, err := torchwood.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/"))
	// c2sp.org/tlog-tiles: <L> MUST be between 0 and 63.
	if err != nil || t.L > 63 {
		http.Error(w, "malformed tile path", http.StatusBadRequest)
		return
	}
	_, tree, err := l.Checkpoint(r.Context())
	if errors.Is(err, ErrNoCheckpoint) {
		http.Error(w, "tile not covered by a checkpoint", http.StatusNotFound)
		return
	}
	if err != nil {
		internalError(w, r, err)
		return
	}
	if !tileCovered(t, tree.N) {
		http.Error(w, "tile not covered by the latest checkpoint", http.StatusNotFound)
		return
	}

	var data []byte
	if t.L == -1 {
		data, err = l.entryBundle(r, t)
	} else {
		// c2sp.org/tlog-tiles: the hashes of a level L tile are the stored
		// hashes at tree level 8·L (tlog.ReadTileData reads them in one
		// ReadHashes call).
		data, err = tlog.ReadTileData(t, l.HashReader(r.Context()))
	}
	if err != nil {
		internalError(w, r, err)
		return
	}

	w.Header().Set("Content-Type", "application/octet-stream")
	// c2sp.org/tlog-tiles: tiles and entry bundles are immutable, so their
	// caching headers SHOULD be long-lived. That holds for partial tiles
	// too: a path's width fixes its content; the log may stop serving a
	// partial tile, never change it.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if t.L == -1 && acceptsGzip(r) {
		// c2sp.org/tlog-tiles: entry bundles SHOULD be compressed at the
		// HTTP layer. (Hash tiles are random bytes: not worth it.)
		w.Header().Set("Vary", "Accept-Encoding")
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		data = buf.Bytes()
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// entryBundle reads the leaves of data tile t and encodes them as a
// c2sp.org/tlog-tiles entry bundle.
func (l *Log) entryBundle(r *http.Request, t tlog.Tile) ([]byte, error) {
	start := t.N << tileHeight
	entries, err := l.st.ReadEntries(r.Context(), start, start+int64(t.W))
	if err != nil {
		return nil, err
	}
	if len(entries) != t.W {
		return nil, fmt.Errorf("translog: storage returned %d entries for [%d, %d)", len(entries), start, start+int64(t.W))
	}
	var bundle []byte
	for _, e := range entries {
		// c2sp.org/tlog-tiles: big-endian uint16 length-prefixed entries.
		if bundle, err = torchwood.AppendTileEntry(bundle, e); err != nil {
			return nil, err
		}
	}
	return bundle, nil
}

// tileCovered reports whether tree size n has all the data of tile t.
// c2sp.org/tlog-tiles: the i-th hash of tile N at level L is
// MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L]), so a tile of width W
// needs the first (N·256 + W)·256^L leaves; an entry bundle needs the first
// N·256 + W.
func tileCovered(t tlog.Tile, n int64) bool {
	level := max(t.L, 0)
	shift := level * tileHeight
	if shift >= 63 {
		return false // 256^L > any int64 tree size
	}
	units := n >> shift // complete subtrees of 256^L leaves
	if t.N > units>>tileHeight {
		return false
	}
	return t.N<<tileHeight+int64(t.W) <= units
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			if ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

func internalError(w http.ResponseWriter, r *http.Request, err error) {
	slog.ErrorContext(r.Context(), "translog: serving log", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}
