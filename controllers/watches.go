package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// Event handlers and predicates more than one controller uses.

// burstDelay is how long member and pod events wait before they reconcile their organization.
const burstDelay = time.Second

// enqueueAfter maps an object to requests, as handler.EnqueueRequestsFromMapFunc does, and adds
// them after delay. A request already waiting keeps its earlier time, so events within the delay
// fold into one reconcile.
func enqueueAfter(delay time.Duration, fn handler.MapFunc) handler.EventHandler {
	add := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range fn(ctx, o) {
			q.AddAfter(req, delay)
		}
	}
	return onEveryEvent(add)
}

// debouncer adds a request once its events have paused for a quiet period, or at the latest a
// maximum after the first of them: a burst (members created one after another) makes one
// reconcile after it, where a fixed delay from the first event would reconcile in its middle and
// again at its end. While a stream of events goes on without a pause, each request added on its
// maximum doubles the next maximum, up to maxStreamWait: a large organization's reconcile
// rewrites bindings that list every member, and a stream of a thousand members then costs a few
// rewrites rather than one every maxBurstWait, however slowly it comes. Events that may take
// access away are added within the maximum all the same.
type debouncer struct {
	clock   clock.WithDelayedExecution
	mu      sync.Mutex
	pending map[reconcile.Request]*pendingRequest
	// streams are the requests last added on their maximum while their events went on.
	streams map[reconcile.Request]stream
}

// pendingRequest is a request waiting: when its last event came and its quiet period, the
// latest it is added (due), and the maximum its stretch of a stream was given.
type pendingRequest struct {
	last, due   time.Time
	quiet, most time.Duration
	timer       clock.Timer
}

// stream is a request added on its maximum: when its last event came, and the maximum its next
// stretch waits if the next event comes within the quiet period.
type stream struct {
	last time.Time
	most time.Duration
}

func newDebouncer(c clock.WithDelayedExecution) *debouncer {
	return &debouncer{clock: c, pending: map[reconcile.Request]*pendingRequest{}, streams: map[reconcile.Request]stream{}}
}

// maxStreamWait is the longest a stream of events without a pause holds its reconcile back.
const maxStreamWait = 30 * time.Second

// add (re)starts req's quiet period; the request is added at the latest most after the first
// event, or, when streaming and the stream goes on, after the stream's longer maximum. An event
// that does not stream is added within most of itself.
func (d *debouncer) add(req reconcile.Request, quiet, most time.Duration, streaming bool, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock.Now()
	if p := d.pending[req]; p != nil && p.timer.Stop() {
		p.last, p.quiet = now, quiet
		if !streaming && now.Add(most).Before(p.due) {
			p.due = now.Add(most)
		}
		p.timer.Reset(max(min(quiet, p.due.Sub(now)), 0))
		return
	}
	// The maximum of this stretch: the stream's, when it goes on.
	stretch := most
	if s, ok := d.streams[req]; ok {
		delete(d.streams, req)
		if now.Sub(s.last) < quiet {
			stretch = max(most, s.most)
		}
	}
	wait := most
	if streaming {
		wait = stretch
	}
	// None waiting, or its timer has fired: the request it adds may be read before this event.
	p := &pendingRequest{last: now, due: now.Add(wait), quiet: quiet, most: stretch}
	p.timer = d.clock.AfterFunc(min(quiet, wait), func() {
		d.mu.Lock()
		if d.pending[req] == p {
			delete(d.pending, req)
			// The timer fires at the earlier of the two: when due, the stream went on.
			if p.due.Before(p.last.Add(p.quiet)) {
				d.streams[req] = stream{last: p.last, most: min(2*p.most, maxStreamWait)}
			}
		}
		d.mu.Unlock()
		q.Add(req)
	})
	d.pending[req] = p
}

// enqueueDebounced maps an object to requests, as handler.EnqueueRequestsFromMapFunc does, and
// adds each once its events have been quiet for quiet(request), at most maxBurstWait after the
// first, or longer while they stream; see debouncer.
func enqueueDebounced(d *debouncer, quiet func(context.Context, reconcile.Request) time.Duration, fn handler.MapFunc) handler.EventHandler {
	return onEveryEvent(debounce(d, quiet, fn, true))
}

// enqueueDebouncedRemovalsSoon debounces events as enqueueDebounced does, but only creations may
// wait for a stream: a change or a deletion, which may take access away (a member removed or
// demoted, a project deleted), is added within maxBurstWait of itself.
func enqueueDebouncedRemovalsSoon(d *debouncer, quiet func(context.Context, reconcile.Request) time.Duration, fn handler.MapFunc) handler.EventHandler {
	streamed := enqueueDebounced(d, quiet, fn)
	soon := onEveryEvent(debounce(d, quiet, fn, false))
	return handler.Funcs{
		CreateFunc:  streamed.Create,
		UpdateFunc:  soon.Update,
		DeleteFunc:  soon.Delete,
		GenericFunc: soon.Generic,
	}
}

func debounce(d *debouncer, quiet func(context.Context, reconcile.Request) time.Duration, fn handler.MapFunc,
	streaming bool) func(context.Context, client.Object, workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, req := range fn(ctx, o) {
			wait := quiet(ctx, req)
			d.add(req, wait, max(wait, maxBurstWait), streaming, q)
		}
	}
}

// enqueueCreationsDebounced debounces creations as enqueueDebounced does and adds the requests of
// every other event at once.
func enqueueCreationsDebounced(d *debouncer, quiet func(context.Context, reconcile.Request) time.Duration, fn handler.MapFunc) handler.EventHandler {
	now := handler.EnqueueRequestsFromMapFunc(fn)
	debounced := enqueueDebounced(d, quiet, fn)
	return handler.Funcs{
		CreateFunc:  debounced.Create,
		UpdateFunc:  now.Update,
		DeleteFunc:  now.Delete,
		GenericFunc: now.Generic,
	}
}

// onEveryEvent calls add with the object of every event.
func onEveryEvent(add func(context.Context, client.Object, workqueue.TypedRateLimitingInterface[reconcile.Request])) handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}

// maxBurstWait is how long a stream of events can hold its reconcile back at most.
const maxBurstWait = 5 * time.Second

// namespaceChanged passes namespace events that change membership: creation, deletion, the
// organization label, the owner, and the start of termination.
func namespaceChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetLabels()[tenancyv1alpha1.OrganizationLabel] != n.GetLabels()[tenancyv1alpha1.OrganizationLabel] ||
				o.GetLabels()[tenancyv1alpha1.HomeNamespaceLabel] != n.GetLabels()[tenancyv1alpha1.HomeNamespaceLabel] ||
				o.GetDeletionTimestamp().IsZero() != n.GetDeletionTimestamp().IsZero() ||
				len(o.GetOwnerReferences()) != len(n.GetOwnerReferences())
		},
	}
}

// readyChanged passes updates that change an object's Ready condition, its own status writes
// included. The reconcile that follows compares against the status as stored: if the write was
// made from a stale cache (a later reconcile saw the world as it was before an earlier write), the
// difference shows and is fixed, instead of waiting for the next change. When all is in place it
// reads the cache and writes nothing.
func readyChanged() predicate.Predicate {
	return onlyUpdates(changedOnUpdate(func(o, n conditioned) bool {
		a := meta.FindStatusCondition(o.GetConditions(), tenancyv1alpha1.ReadyCondition)
		b := meta.FindStatusCondition(n.GetConditions(), tenancyv1alpha1.ReadyCondition)
		return (a == nil) != (b == nil) || (a != nil && (a.Status != b.Status || a.Reason != b.Reason || a.Message != b.Message))
	}))
}

// conditioned objects expose their status conditions.
type conditioned interface {
	GetConditions() []metav1.Condition
}

// changedOnUpdate passes every creation and deletion, and the updates for which changed says so;
// an update of an object that is not a T passes.
func changedOnUpdate[T any](changed func(old, new T) bool) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(T)
			n, ok2 := e.ObjectNew.(T)
			return !ok1 || !ok2 || changed(o, n)
		},
	}
}

// onlyUpdates keeps p's verdict on updates and passes nothing else.
func onlyUpdates(p predicate.Funcs) predicate.Funcs {
	p.CreateFunc = func(event.CreateEvent) bool { return false }
	p.DeleteFunc = func(event.DeleteEvent) bool { return false }
	p.GenericFunc = func(event.GenericEvent) bool { return false }
	return p
}
