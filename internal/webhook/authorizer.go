package webhook

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/utils/clock"
)

// platformAdminTTL is how long an answer about a user is reused. Namespaces are labelled in
// bursts (a GitOps sync, the operator creating home namespaces): one review per user and burst,
// not one per namespace. A user granted or refused platform admin waits at most this long.
const platformAdminTTL = 10 * time.Second

// cachedAuthorizer remembers a PlatformAuthorizer's answers for platformAdminTTL, per user,
// groups and extra, so that the same request always gets the same answer.
type cachedAuthorizer struct {
	next  PlatformAuthorizer
	clock clock.PassiveClock

	mu      sync.Mutex
	answers map[string]cachedAnswer
}

type cachedAnswer struct {
	admin   bool
	expires time.Time
}

func newCachedAuthorizer(next PlatformAuthorizer, c clock.PassiveClock) *cachedAuthorizer {
	return &cachedAuthorizer{next: next, clock: c, answers: map[string]cachedAnswer{}}
}

func (a *cachedAuthorizer) IsPlatformAdmin(ctx context.Context, user authenticationv1.UserInfo) (bool, error) {
	key := userKey(user)
	now := a.clock.Now()
	a.mu.Lock()
	answer, ok := a.answers[key]
	a.mu.Unlock()
	if ok && now.Before(answer.expires) {
		return answer.admin, nil
	}
	admin, err := a.next.IsPlatformAdmin(ctx, user)
	if err != nil {
		return false, err // errors are not remembered
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.answers { // a handful of users at a time: drop what expired
		if !now.Before(v.expires) {
			delete(a.answers, k)
		}
	}
	a.answers[key] = cachedAnswer{admin: admin, expires: now.Add(platformAdminTTL)}
	return admin, nil
}

// userKey identifies everything an authorizer may decide on.
func userKey(u authenticationv1.UserInfo) string {
	groups := slices.Clone(u.Groups)
	slices.Sort(groups)
	extra := make([]string, 0, len(u.Extra))
	for k, v := range u.Extra {
		values := slices.Clone(v)
		slices.Sort(values)
		extra = append(extra, k+"="+strings.Join(values, ","))
	}
	slices.Sort(extra)
	return strings.Join([]string{u.Username, u.UID, strings.Join(groups, ","), strings.Join(extra, ";")}, "\x00")
}
