// Package invitation holds what invitations need beyond the API: one-time tokens (minted from
// crypto/rand, kept only as a SHA-256 hash, compared in constant time) and the limiter of failed
// redemptions per user.
package invitation

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// TokenBytes is how many random bytes a token carries: 256 bits.
const TokenBytes = 32

// NewToken returns a fresh token: TokenBytes from crypto/rand, base64url without padding.
func NewToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes for a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is what status keeps of a token: its SHA-256, base64url without padding.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Matches reports whether token hashes to hash, in time that does not depend on where they differ.
// An empty hash matches nothing.
func Matches(token, hash string) bool {
	if hash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(Hash(token)), []byte(hash)) == 1
}
