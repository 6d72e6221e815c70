package translog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// signCheckpoint signs the checkpoint (origin, tree) with skey.
func signCheckpoint(t testing.TB, skey, origin string, tree tlog.Tree) []byte {
	t.Helper()
	text := torchwood.Checkpoint{Origin: origin, Tree: tree}.String()
	signed, err := note.Sign(&note.Note{Text: text}, mustSigner(t, skey))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

var testTree = tlog.Tree{N: 3, Hash: tlog.RecordHash([]byte("root"))}

func TestVerifyCheckpoint(t *testing.T) {
	good := signCheckpoint(t, testSkey, "hub.example.org/log", testTree)
	skeyWitness, vkeyWitness, err := GenerateKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: torchwood.Checkpoint{Origin: "hub.example.org/log", Tree: testTree}.String()},
		mustSigner(t, testSkey), mustSigner(t, skeyWitness))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		signed []byte
		vkey   string
		ok     bool
	}{
		{"Verifies", good, testVkey, true},
		{"VerifiesWithUnknownCosignature", cosigned, testVkey, true},
		{"ErrOtherKeySameName", good, otherVkey, false},
		{"ErrKeyOfAnotherName", good, vkeyWitness, false},
		{"ErrOriginNotKeyName", signCheckpoint(t, testSkey, "evil.example/log", testTree), testVkey, false},
		{"ErrSignedByOtherKey", signCheckpoint(t, otherSkey, "hub.example.org/log", testTree), testVkey, false},
		{"ErrSizeChanged", bytes.Replace(good, []byte("\n3\n"), []byte("\n4\n"), 1), testVkey, false},
		{"ErrSignatureMissing", good[:bytes.Index(good, []byte("\n\n"))+2], testVkey, false},
		{"ErrMalformedVkey", good, "not a vkey", false},
		{"ErrEmpty", nil, testVkey, false},
		{"ErrNotACheckpoint", signNote(t, testSkey, "hello\n"), testVkey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := VerifyCheckpoint(tt.signed, tt.vkey)
			if tt.ok {
				if err != nil {
					t.Fatalf("VerifyCheckpoint: %v", err)
				}
				if c.Tree != testTree || c.Origin != "hub.example.org/log" {
					t.Errorf("checkpoint %q %v", c.Origin, c.Tree)
				}
				return
			}
			if err == nil {
				t.Errorf("VerifyCheckpoint succeeded: %v", c)
			}
		})
	}
}

func signNote(t testing.TB, skey, text string) []byte {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: text}, mustSigner(t, skey))
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// TestVerifyCheckpointRejectsEveryBitFlip flips each bit of a signed
// checkpoint. A flip in the signed text must fail; a flip in the signature
// line may only verify if it decodes to the same signature (Go's base64
// decoder ignores the unused low bits of the last character before '='),
// so the checkpoint is unchanged.
func TestVerifyCheckpointRejectsEveryBitFlip(t *testing.T) {
	good := signCheckpoint(t, testSkey, "hub.example.org/log", testTree)
	textEnd := bytes.Index(good, []byte("\n\n")) + 1
	lax := 0
	for i := range len(good) * 8 {
		m := bytes.Clone(good)
		m[i/8] ^= 1 << (i % 8)
		c, err := VerifyCheckpoint(m, testVkey)
		if err != nil {
			continue
		}
		if i/8 < textEnd {
			t.Errorf("flipping bit %d of byte %d (in the text) still verifies", i%8, i/8)
		} else if c.Tree != testTree || c.Origin != "hub.example.org/log" {
			t.Errorf("flipping bit %d of byte %d verifies as a different checkpoint %v", i%8, i/8, c)
		} else {
			lax++
		}
	}
	t.Logf("%d of %d bit flips verified as the same checkpoint (lax base64 padding bits)", lax, len(good)*8)
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "log.key")

	t.Run("CreatesPrivateKeyFile", func(t *testing.T) {
		signer, vkey, err := LoadOrCreateKey(path, "hub.example.org/log")
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		data, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(data), "PRIVATE+KEY+hub.example.org/log+") {
			t.Errorf("key file does not hold a note signer key")
		}
		signed := signCheckpoint(t, strings.TrimSpace(string(data)), "hub.example.org/log", testTree)
		if _, err := VerifyCheckpoint(signed, vkey); err != nil {
			t.Errorf("checkpoint signed with the file's key does not verify with the returned vkey: %v", err)
		}
		if signer.Name() != "hub.example.org/log" {
			t.Errorf("signer name %q", signer.Name())
		}
	})

	t.Run("LoadsSameKeyAgain", func(t *testing.T) {
		_, vkey1, err := LoadOrCreateKey(path, "hub.example.org/log")
		if err != nil {
			t.Fatal(err)
		}
		signer, vkey2, err := LoadOrCreateKey(path, "hub.example.org/log")
		if err != nil || vkey1 != vkey2 {
			t.Fatalf("second load: %v, vkey %q then %q", err, vkey1, vkey2)
		}
		signed, err := note.Sign(&note.Note{Text: torchwood.Checkpoint{Origin: signer.Name(), Tree: testTree}.String()}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyCheckpoint(signed, vkey1); err != nil {
			t.Errorf("loaded signer does not match vkey: %v", err)
		}
	})

	t.Run("ErrNameMismatch", func(t *testing.T) {
		if _, _, err := LoadOrCreateKey(path, "other.example/log"); err == nil {
			t.Error("loading a key under another name succeeded")
		}
	})

	t.Run("ErrMalformedFileWithoutLeakingIt", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.key")
		os.WriteFile(bad, []byte("PRIVATE+KEY+secret-ish garbage\n"), 0o600)
		_, _, err := LoadOrCreateKey(bad, "hub.example.org/log")
		if err == nil {
			t.Fatal("loading garbage succeeded")
		}
		if strings.Contains(err.Error(), "garbage") {
			t.Errorf("error echoes the key file: %v", err)
		}
	})

	t.Run("KeyWithPlusInBase64Loads", func(t *testing.T) {
		// The base64 key may contain '+', the field separator.
		var skey, vkey string
		for strings.Count(skey, "+") <= 4 {
			var err error
			if skey, vkey, err = GenerateKey("hub.example.org/log"); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(dir, "plus.key")
		os.WriteFile(p, []byte(skey+"\n"), 0o600)
		_, got, err := LoadOrCreateKey(p, "hub.example.org/log")
		if err != nil || got != vkey {
			t.Errorf("LoadOrCreateKey(%d-field key) = %q, %v; want %q", strings.Count(skey, "+")+1, got, err, vkey)
		}
	})

	t.Run("KnownKeyGivesKnownVkey", func(t *testing.T) {
		p := filepath.Join(dir, "known.key")
		os.WriteFile(p, []byte(testSkey+"\n"), 0o600)
		_, vkey, err := LoadOrCreateKey(p, "hub.example.org/log")
		if err != nil || vkey != testVkey {
			t.Errorf("vkey = %q, %v; want %q", vkey, err, testVkey)
		}
	})
}
