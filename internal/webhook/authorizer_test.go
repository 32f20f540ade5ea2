package webhook

import (
	"context"
	"errors"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

type countingAuthorizer struct {
	calls  int
	admins map[string]bool
	err    error
}

func (c *countingAuthorizer) IsPlatformAdmin(_ context.Context, u authenticationv1.UserInfo) (bool, error) {
	c.calls++
	return c.admins[u.Username], c.err
}

func TestCachedAuthorizer(t *testing.T) {
	ctx := context.Background()
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
	next := &countingAuthorizer{admins: map[string]bool{"root": true}}
	a := newCachedAuthorizer(next, clock)
	root := authenticationv1.UserInfo{Username: "root", Groups: []string{"b", "a"}}
	alice := authenticationv1.UserInfo{Username: "alice"}

	for _, tc := range []struct {
		name      string
		user      authenticationv1.UserInfo
		after     time.Duration
		wantAdmin bool
		wantCalls int
	}{
		{"first question is asked", root, 0, true, 1},
		{"same user and groups in another order: remembered", authenticationv1.UserInfo{Username: "root", Groups: []string{"a", "b"}}, time.Second, true, 1},
		{"another user is asked", alice, 0, false, 2},
		{"same name, other groups: asked, groups may grant admin", authenticationv1.UserInfo{Username: "alice", Groups: []string{"system:masters"}}, 0, false, 3},
		{"a refusal is remembered too", alice, time.Second, false, 3},
		{"expired: asked again", root, platformAdminTTL, true, 4},
	} {
		clock.SetTime(clock.Now().Add(tc.after))
		got, err := a.IsPlatformAdmin(ctx, tc.user)
		if err != nil || got != tc.wantAdmin || next.calls != tc.wantCalls {
			t.Errorf("%s: admin %v, err %v, %d calls; want %v, nil, %d", tc.name, got, err, next.calls, tc.wantAdmin, tc.wantCalls)
		}
	}

	next.err = errors.New("API server unavailable")
	bob := authenticationv1.UserInfo{Username: "bob"}
	for range 2 {
		if _, err := a.IsPlatformAdmin(ctx, bob); err == nil {
			t.Error("an error must be returned, and not remembered as an answer")
		}
	}
	if next.calls != 6 {
		t.Errorf("%d calls, want 6: errors are asked again", next.calls)
	}
}
