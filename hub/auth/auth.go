// Package auth is who may call the hub: principals, their roles, and API
// tokens. A token is shown once at creation; only its SHA-256 is stored.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/spiceroute/spiceroute/hub/coded"
)

// Role is what a principal is to the hub.
type Role string

const (
	RoleOperator    Role = "operator"    // runs the hub: issues Spice, creates tokens, sees everything
	RoleRenter      Role = "renter"      // spends Spice on jobs
	RoleContributor Role = "contributor" // earns Spice for capacity
	// RoleMachine is a contributor's machine, as its agent authenticates:
	// it owns no account and reaches only the agent protocol (/api/agent/).
	// Its tokens are issued at join, never through ParseRole's callers.
	RoleMachine Role = "machine"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleOperator, RoleRenter, RoleContributor:
		return r, nil
	}
	return "", coded.Errorf("invalid", "unknown role %q (want operator, renter or contributor)", s)
}

// Principal is an authenticated caller.
type Principal struct {
	Name string `json:"name"` // owns accounts whose Owner is Name
	Role Role   `json:"role"`
}

// IsOperator reports whether p runs the hub.
func (p Principal) IsOperator() bool { return p.Role == RoleOperator }

// TokenPrefix starts every SpiceRoute API token, so scanners can spot leaks.
const TokenPrefix = "spice_"

// NewToken returns a fresh secret token and the hash to store.
func NewToken() (secret string, hash [32]byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// HashToken is what is stored for a token: SHA-256 of the secret. Tokens
// have 256 bits of entropy, so a fast hash is enough (no password stretching).
func HashToken(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// ValidName checks a principal name: 1-64 of [a-z0-9._-], starting with a
// letter or digit. Names appear in account owners, Nomad namespaces and logs.
func ValidName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("name must be 1 to 64 characters")
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("._-", r)
		if !ok {
			return fmt.Errorf("name %q: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated principal p; the
// API's authentication sets it on every request with a valid token, so
// handlers mounted outside the API's router (the Nomad gateway) see it too.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal WithPrincipal put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
