package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
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
					d.add(req, time.Second, 5*time.Second, true, q)
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

// A stream of events without a pause doubles the wait of each request added on its maximum, up to
// maxStreamWait; a pause ends the stream, and the next one starts from the maximum again. An
// event that does not stream (a member removed) is added within the maximum of itself all the
// same, and the stream goes on doubling after it.
func TestDebouncerStreamWaitsDouble(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "acme"}}
	streaming := func(at time.Duration) bool {
		return at <= 60*time.Second || (at >= 70*time.Second && at <= 80*time.Second)
	}
	for _, tt := range []struct {
		name string
		// removal is when an event that does not stream comes; none when 0.
		removal time.Duration
		added   []time.Duration
	}{
		{"creations only", 0, []time.Duration{5 * time.Second, 15 * time.Second, 35 * time.Second, 61 * time.Second, 75 * time.Second, 81 * time.Second}},
		{"a removal at 20 s", 20 * time.Second, []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 55 * time.Second, 61 * time.Second, 75 * time.Second, 81 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(start)
			// The fake clock calls a timer's function within SetTime: the step being set is when it adds.
			var step time.Duration
			q := &recordingQueue{TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]()), at: &step}
			defer q.ShutDown()
			d := newDebouncer(clk)
			for step = 0; step <= 100*time.Second; step += 500 * time.Millisecond {
				clk.SetTime(start.Add(step))
				if streaming(step) {
					d.add(req, time.Second, 5*time.Second, true, q)
				}
				if tt.removal != 0 && step == tt.removal {
					d.add(req, time.Second, 5*time.Second, false, q)
				}
			}
			if !slices.Equal(q.added, tt.added) {
				t.Fatalf("added at %v, want at %v", q.added, tt.added)
			}
		})
	}
}

// recordingQueue records the moment (*at) of every Add.
type recordingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	at    *time.Duration
	added []time.Duration
}

func (q *recordingQueue) Add(r reconcile.Request) {
	q.added = append(q.added, *q.at)
	q.TypedRateLimitingInterface.Add(r)
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

// A namespace's creation waits for the burst to be quiet; its deletion (or a change) is added at
// once, so that bindings in a namespace that leaves go without delay.
func TestCreationsDebouncedOtherEventsAtOnce(t *testing.T) {
	start := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	quiet := func(context.Context, reconcile.Request) time.Duration { return time.Second }
	h := enqueueCreationsDebounced(newDebouncer(clk), quiet, namespaceToOrganizations)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "acme-dev", Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: "acme"}}}
	ctx := context.Background()

	h.Create(ctx, event.CreateEvent{Object: ns}, q)
	if q.Len() != 0 {
		t.Fatalf("a creation was added at once (%d requests), want after the quiet period", q.Len())
	}
	clk.Step(time.Second)
	waitForLen(t, q, 2) // the organization it joins and the one named after it
	for q.Len() > 0 {
		req, _ := q.Get()
		q.Done(req)
		q.Forget(req)
	}

	h.Delete(ctx, event.DeleteEvent{Object: ns}, q)
	if q.Len() != 2 {
		t.Fatalf("%d requests after a deletion, want 2 at once", q.Len())
	}
}

// Members created one after another stream; a member then deleted, or changed, during the stream
// is added within the maximum of that event, not after the stream's longer one.
func TestRemovalsSoonDuringAStreamOfCreations(t *testing.T) {
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	quiet := func(context.Context, reconcile.Request) time.Duration { return time.Second }
	toAcme := func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: "acme"}}}
	}
	member := func(i int) *tenancyv1alpha1.OrganizationMember {
		return &tenancyv1alpha1.OrganizationMember{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: fmt.Sprintf("m%d", i)}}
	}
	for _, tt := range []struct {
		name   string
		remove func(h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request])
	}{
		{"deleted", func(h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Delete(ctx, event.DeleteEvent{Object: member(0)}, q)
		}},
		{"changed", func(h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Update(ctx, event.UpdateEvent{ObjectOld: member(0), ObjectNew: member(0)}, q)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(start)
			var step time.Duration
			q := &recordingQueue{TypedRateLimitingInterface: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]()), at: &step}
			defer q.ShutDown()
			h := enqueueDebouncedRemovalsSoon(newDebouncer(clk), quiet, toAcme)
			for i := 0; step <= 40*time.Second; i, step = i+1, step+500*time.Millisecond {
				clk.SetTime(start.Add(step))
				h.Create(ctx, event.CreateEvent{Object: member(i + 1)}, q)
				if step == 20*time.Second {
					tt.remove(h, q)
				}
			}
			// Creations alone are added at 5, 15 and 35 s; the removal at 20 s is added by 25 s.
			if !slices.Contains(q.added, 25*time.Second) {
				t.Fatalf("added at %v, want one at 25 s, within 5 s of the removal", q.added)
			}
		})
	}
}
