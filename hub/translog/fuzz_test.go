package translog

import (
	"bytes"
	"testing"

	"filippo.io/torchwood"
)

// FuzzVerifyCheckpoint feeds arbitrary bytes to the checkpoint and
// signed-note parser. It must never panic, and since only the one checkpoint
// in the seed corpus was ever signed by the test key, anything that verifies
// must be that checkpoint: no mutation may change what a valid signature
// vouches for. (A mutation may still verify if it leaves the content and
// signature unchanged, e.g. in the ignored low bits of the signature's
// last base64 character or by adding an unknown cosignature.)
//
// The seed corpus is in testdata/fuzz/FuzzVerifyCheckpoint.
func FuzzVerifyCheckpoint(f *testing.F) {
	good := signCheckpoint(f, testSkey, "hub.example.org/log", testTree)
	want := torchwood.Checkpoint{Origin: "hub.example.org/log", Tree: testTree}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(bytes.Replace(good, []byte("— "), []byte("-- "), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := VerifyCheckpoint(data, testVkey)
		if err != nil {
			return
		}
		if c != want {
			t.Fatalf("mutated checkpoint verifies as %+v, want %+v", c, want)
		}
		if c2, err := torchwood.ParseCheckpoint(c.String()); err != nil || c2 != c {
			t.Fatalf("verified checkpoint does not round-trip: %v %+v", err, c2)
		}
	})
}
