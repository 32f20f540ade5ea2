package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// A burst of events makes one request once it has been quiet for the quiet period, or once it
// has lasted the maximum; a request already added is not held back by later events.
func TestDebouncerFoldsABurstIntoOneRequest(t *testing.T) {
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "acme"}}
	for _, tt := range []struct {
		name string
		// events are the moments of the burst's events, after start.
		events []time.Duration
		// added is when the request must be added, after start.
		added time.Duration
	}{
		{"one event", []time.Duration{0}, time.Second},
		{"a burst with pauses under the quiet period", []time.Duration{0, 500 * time.Millisecond, 1400 * time.Millisecond, 2 * time.Second}, 3 * time.Second},
		{"a stream longer than the maximum", []time.Duration{0, 900 * time.Millisecond, 1800 * time.Millisecond, 2700 * time.Millisecond, 3600 * time.Millisecond, 4500 * time.Millisecond}, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(start)
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			d := newDebouncer(clk)
			next := 0
			for step := time.Duration(0); step <= 6*time.Second; step += 100 * time.Millisecond {
				clk.SetTime(start.Add(step))
				for next < len(tt.events) && tt.events[next] <= step {
					d.add(req, time.Second, 5*time.Second, q)
					next++
				}
				// A timer's function runs on its own goroutine: give it the moment to add.
				if step == tt.added {
					waitForLen(t, q, 1)
				} else if step < tt.added && q.Len() != 0 {
					t.Fatalf("added at %s, want at %s", step, tt.added)
				}
			}
			if q.Len() != 1 {
				t.Fatalf("%d requests queued, want 1", q.Len())
			}
		})
	}
}

func waitForLen(t *testing.T, q workqueue.TypedRateLimitingInterface[reconcile.Request], n int) {
	t.Helper()
	for range 1000 {
		if q.Len() == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d requests queued, want %d", q.Len(), n)
}
