package invitation

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("token %q is not base64url: %v", tok, err)
		}
		if len(raw) != TokenBytes {
			t.Fatalf("token carries %d bytes, want %d", len(raw), TokenBytes)
		}
		if seen[tok] {
			t.Fatalf("token %q minted twice", tok)
		}
		seen[tok] = true
	}
}

func TestMatches(t *testing.T) {
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	h := Hash(tok)
	for _, tc := range []struct {
		name        string
		token, hash string
		want        bool
	}{
		{"the token", tok, h, true},
		{"another token", tok + "x", h, false},
		{"the hash itself", h, h, false},
		{"an empty token", "", h, false},
		{"an empty hash", tok, "", false},
		{"both empty", "", "", false},
		{"a truncated hash", tok, h[:len(h)-1], false},
	} {
		if got := Matches(tc.token, tc.hash); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The SHA-256 of "abc", base64url: a fixed value so that the hash format cannot drift.
	if got, want := Hash("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"; got != want {
		t.Errorf("Hash(abc) = %s, want %s", got, want)
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(3, time.Minute)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := l.Allowed("eve", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("refused after %d failures", i)
		}
		l.Fail("eve", t0.Add(time.Duration(i)*time.Second))
	}
	ok, wait := l.Allowed("eve", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("after 3 failures: allowed=%v wait=%v, want refused for 50s", ok, wait)
	}
	if ok, _ := l.Allowed("mallory", t0.Add(10*time.Second)); !ok {
		t.Fatal("another user is refused for eve's failures")
	}
	if ok, _ := l.Allowed("eve", t0.Add(time.Minute)); !ok {
		t.Fatal("still refused once the first failure left the window")
	}
	l.Fail("eve", t0.Add(time.Minute))
	if ok, _ := l.Allowed("eve", t0.Add(time.Minute+500*time.Millisecond)); ok {
		t.Fatal("allowed with 3 failures in the last minute")
	}
	if ok, _ := l.Allowed("eve", t0.Add(3*time.Minute)); !ok {
		t.Fatal("refused long after the failures")
	}
	if len(l.failures) != 0 {
		t.Fatalf("the limiter keeps %d users with no recent failure", len(l.failures))
	}
}
