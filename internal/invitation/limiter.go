package invitation

import (
	"sync"
	"time"
)

// Limiter counts the failed redemptions of each user in a sliding window and refuses a user who
// reached the limit until the oldest failure leaves the window. It is in memory: each webhook
// replica counts on its own and a restart forgets, so N replicas allow N times the limit.
type Limiter struct {
	// Max failures per user in Window.
	Max    int
	Window time.Duration

	mu       sync.Mutex
	failures map[string][]time.Time
}

// NewLimiter allows max failures per user in window.
func NewLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{Max: max, Window: window, failures: map[string][]time.Time{}}
}

// Allowed reports whether user may try again at now, and if not, how long until it may.
func (l *Limiter) Allowed(user string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.prune(user, now)
	if len(f) < l.Max {
		return true, 0
	}
	return false, f[0].Add(l.Window).Sub(now)
}

// Fail records a failed redemption of user at now.
func (l *Limiter) Fail(user string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[user] = append(l.prune(user, now), now)
}

// prune drops the failures of user that left the window, and every user left with none, so that
// the map holds only users who failed in the last Window.
func (l *Limiter) prune(user string, now time.Time) []time.Time {
	for u, f := range l.failures {
		i := 0
		for i < len(f) && now.Sub(f[i]) >= l.Window {
			i++
		}
		if i == len(f) {
			delete(l.failures, u)
		} else {
			l.failures[u] = f[i:]
		}
	}
	return l.failures[user]
}
