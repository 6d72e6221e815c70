// Package translog is the hub's Merkle transparency log.
//
// Every leaf the ledger commits (an opaque byte string; its encoding belongs
// to the ledger) is a record of one append-only RFC 6962 Merkle tree. The
// package has four parts:
//
//   - [Appender] keeps the right edge of the tree in memory and computes, at
//     commit time and without touching storage, the hashes a batch of leaves
//     adds. The ledger writes them in the same database transaction as its
//     own rows ([Batch]).
//   - [Storage] is where leaves, hashes and checkpoints live (the hub's
//     PostgreSQL store; [MemStorage] for tests). [StorageSuite] is its
//     conformance suite.
//   - [Log] signs checkpoints, serves the log over HTTP ([Log.Handler]) and
//     produces inclusion and consistency proofs. [Publisher] decides when to
//     sign.
//   - [GenerateKey], [LoadOrCreateKey] and [VerifyCheckpoint] handle the
//     hub's Ed25519 signed-note key.
//
// Specifications followed:
//
//   - RFC 6962 §2.1: Merkle tree hash, SHA-256(0x00 || leaf) for leaves and
//     SHA-256(0x01 || left || right) for interior nodes; §2.1.1 inclusion
//     (audit) proofs; §2.1.2 consistency proofs. All of it is computed by
//     golang.org/x/mod/sumdb/tlog, whose "stored hash index" numbering
//     (tlog.StoredHashIndex) is also the storage layout of hashes.
//   - c2sp.org/tlog-checkpoint: the tree head, signed as a
//     c2sp.org/signed-note (golang.org/x/mod/sumdb/note) with an Ed25519 key
//     whose name is the checkpoint origin (see the format below).
//   - c2sp.org/tlog-tiles with tile height 8: hash tiles at
//     tile/<L>/<N>[.p/<W>] and entry bundles (big-endian uint16
//     length-prefixed leaves, hence [MaxEntrySize]) at
//     tile/entries/<N>[.p/<W>] (filippo.io/torchwood).
//
// A signed checkpoint is the origin line, the tree size in decimal and the
// base64 root hash, each ending in a newline, then a blank line and one line
// per signature: "— ", the key name, a space and the base64 of the 4-byte key
// hash followed by the 64-byte Ed25519 signature of the text above the blank
// line:
//
//	hub.example.org/log
//	3
//	NmQuc8JUCrEh46a/lUWwokmCzYMOsT080Z3jzmwCHsE=
//
//	— hub.example.org/log RWaYwE3fAydRTaI6xwnQkP1Vrnd2eQI0XV8/d8nsc3m+ixBE4cj4JvdGfO66AHrSrNJIqW8spnDKPaj4SIpiesJcDAY=
//
// (the checkpoint of the leaves "a", "b", "c", from the example of [Log.Checkpoint]).
package translog

import (
	"errors"

	"filippo.io/torchwood"
)

// MaxEntrySize is the largest leaf the log accepts.
// c2sp.org/tlog-tiles: entry bundles are sequences of big-endian uint16
// length-prefixed log entries.
const MaxEntrySize = 1<<16 - 1

// tileHeight is the height of c2sp.org/tlog-tiles tiles: 256 hashes wide.
const tileHeight = torchwood.TileHeight

// Errors callers branch on (the hub maps them to HTTP statuses).
var (
	// ErrNoCheckpoint: no checkpoint has been published yet.
	ErrNoCheckpoint = errors.New("translog: no checkpoint published yet")
	// ErrNotPublished: a proof was asked for a tree larger than the latest
	// published checkpoint.
	ErrNotPublished = errors.New("translog: tree size beyond the latest checkpoint")
	// ErrInvalidRange: a proof was asked for an index or tree size that
	// cannot exist (negative, index outside the tree, old size > new size).
	ErrInvalidRange = errors.New("translog: invalid index or tree size")
)
