package translog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

// GenerateKey returns a new Ed25519 signed-note key pair named name
// (c2sp.org/signed-note): skey is "PRIVATE+KEY+<name>+<hash>+<base64 key>",
// vkey "<name>+<hash>+<base64 key>". The name is the checkpoint origin, so it
// SHOULD be the log's URL prefix without scheme (c2sp.org/tlog-tiles).
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("translog: generate key %q: %w", name, err)
	}
	return skey, vkey, nil
}

// LoadOrCreateKey returns the signer for the skey in the file at path and
// its vkey. If the file does not exist it generates a key named name and
// writes it there (mode 0600, parent directories 0700). It is an error if
// the key in the file is not named name.
func LoadOrCreateKey(path, name string) (note.Signer, string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = createKey(path, name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("translog: key %s: %w", path, err)
	}
	skey := strings.TrimSpace(string(data))
	signer, err := note.NewSigner(skey)
	if err != nil {
		// Don't echo the file: it holds a private key.
		return nil, "", fmt.Errorf("translog: key %s: malformed signer key", path)
	}
	if signer.Name() != name {
		return nil, "", fmt.Errorf("translog: key %s is named %q, want %q", path, signer.Name(), name)
	}
	vkey, err := verifierKey(skey, signer)
	if err != nil {
		return nil, "", fmt.Errorf("translog: key %s: %w", path, err)
	}
	return signer, vkey, nil
}

// createKey writes a new skey to path, unless another process got there
// first, in which case it returns what that process wrote.
func createKey(path, name string) ([]byte, error) {
	skey, _, err := GenerateKey(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(skey + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	return []byte(skey), nil
}

// verifierKey derives the vkey of a signer key: "PRIVATE+KEY+<name>+<hash>+"
// then base64(0x01 || Ed25519 seed) (c2sp.org/signed-note). note has no
// function for it, so it takes the seed apart and checks the result against
// the signer's key hash.
func verifierKey(skey string, signer note.Signer) (string, error) {
	// The base64 key may itself contain '+': split off the first four fields only.
	f := strings.SplitN(skey, "+", 5)
	if len(f) != 5 {
		return "", errors.New("malformed signer key (fields)")
	}
	key, err := base64.StdEncoding.DecodeString(f[4])
	// c2sp.org/signed-note: algorithm 0x01 is Ed25519, a 32-byte seed.
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("malformed signer key (not Ed25519)")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return "", err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil || v.KeyHash() != signer.KeyHash() {
		return "", errors.New("signer key hash does not match its key")
	}
	return vkey, nil
}

// VerifyCheckpoint parses a signed c2sp.org/tlog-checkpoint and checks that
// its origin is the name of vkey and that vkey signed it. Other signatures
// (witness cosignatures) are ignored. It is what the auditor
// (`spice ledger verify`) and clients run on /log/checkpoint.
func VerifyCheckpoint(signed []byte, vkey string) (torchwood.Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return torchwood.Checkpoint{}, fmt.Errorf("translog: verify checkpoint: vkey: %w", err)
	}
	// c2sp.org/tlog-checkpoint: the origin line identifies the log; ours is
	// the key name, and the log's signature is required.
	policy := torchwood.ThresholdPolicy(2, torchwood.OriginPolicy(v.Name()), torchwood.SingleVerifierPolicy(v))
	c, _, err := torchwood.VerifyCheckpoint(signed, policy)
	if err != nil {
		return torchwood.Checkpoint{}, fmt.Errorf("translog: verify checkpoint: %w", err)
	}
	return c, nil
}
