package metering

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/orgoperator/org-operator/internal/podcache"
)

// Tracker follows the pods of the compact pod cache through its events, and keeps the pods
// that were deleted until their usage is in a checkpoint. It keeps its own view of the live
// pods, so that a pod deleted between two reads is always in exactly one of them: never lost,
// never counted twice.
type Tracker struct {
	clock clock.PassiveClock
	// keep is how long a deleted pod waits to be taken into a checkpoint before it is dropped
	// (its namespace may belong to no organization).
	keep time.Duration

	mu   sync.Mutex
	live map[string]map[types.UID]*podcache.Pod
	gone map[string][]*podcache.Pod

	synced toolscache.InformerSynced
}

// NewTracker returns a tracker; Register it on the pod cache's informer.
func NewTracker(c clock.PassiveClock, keep time.Duration) *Tracker {
	return &Tracker{clock: c, keep: keep, live: map[string]map[types.UID]*podcache.Pod{}, gone: map[string][]*podcache.Pod{}}
}

// Register adds the tracker's handler to the informer.
func (t *Tracker) Register(inf toolscache.SharedIndexInformer) error {
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.set(o) },
		UpdateFunc: func(_, o any) { t.set(o) },
		DeleteFunc: t.delete,
	})
	if err != nil {
		return err
	}
	t.synced = reg.HasSynced
	return nil
}

// HasSynced reports whether the tracker has seen every pod of the informer's first list.
func (t *Tracker) HasSynced() bool { return t.synced != nil && t.synced() }

func (t *Tracker) set(o any) {
	p, ok := o.(*podcache.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ns := t.live[p.Namespace]
	if ns == nil {
		ns = map[types.UID]*podcache.Pod{}
		t.live[p.Namespace] = ns
	}
	if prev := ns[p.UID]; prev != nil && prev.Start != 0 && prev.End == 0 && p.Start != 0 {
		p = t.resizedLocked(prev, p)
	}
	ns[p.UID] = p
}

func (t *Tracker) delete(o any) {
	if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*podcache.Pod)
	if !ok {
		return
	}
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if ns := t.live[p.Namespace]; ns != nil {
		if prev := ns[p.UID]; prev != nil && p.Start != 0 {
			p = sinceSplit(prev, p)
		}
		delete(ns, p.UID)
		if len(ns) == 0 {
			delete(t.live, p.Namespace)
		}
	}
	if p.Start == 0 {
		return // never started: it used nothing
	}
	if p.End == 0 {
		// Deleted without an end time the watch showed (its last update was missed): it ended
		// when its deletion was seen.
		c := *p
		c.End = now.Unix()
		p = &c
	}
	gone := append(t.gone[p.Namespace], p)
	// Drop what no checkpoint took in time.
	cut := now.Add(-t.keep).Unix()
	kept := gone[:0]
	for _, g := range gone {
		if g.End > cut {
			kept = append(kept, g)
		}
	}
	t.gone[p.Namespace] = kept
}

// resizedLocked carries an earlier resize of a running pod into its update and, when the update
// changes what the pod holds (an in-place resize), splits its lifetime there: the part before is
// kept as a deleted pod's would be, with the old amounts, and the pod counts from then on with the
// new ones. The split is at the write that changed them, as the API server timed it.
func (t *Tracker) resizedLocked(prev, p *podcache.Pod) *podcache.Pod {
	p = sinceSplit(prev, p)
	if prev.Requests == p.Requests && prev.Limits == p.Limits {
		return p
	}
	at := p.Written
	if at == 0 {
		at = t.clock.Now().Unix()
	}
	at = max(at, prev.Start)
	if p.End != 0 {
		at = min(at, p.End)
	}
	if at > prev.Start {
		before := *prev
		before.End = at
		t.gone[p.Namespace] = append(t.gone[p.Namespace], &before)
	}
	c := *p
	c.Start = at
	return &c
}

// sinceSplit is p counted from where the tracker last split the pod (prev, the tracker's view of
// it): the part before is kept already.
func sinceSplit(prev, p *podcache.Pod) *podcache.Pod {
	if prev.Start <= p.Start {
		return p
	}
	c := *p
	c.Start = prev.Start
	return &c
}

// Pods returns the namespace's live pods and the deleted ones not yet forgotten. The pods are
// the tracker's own: do not modify them.
func (t *Tracker) Pods(namespace string) (live, gone []*podcache.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.live[namespace] {
		live = append(live, p)
	}
	return live, append([]*podcache.Pod(nil), t.gone[namespace]...)
}

// Forget drops the namespace's deleted pods that ended at or before upTo (Unix seconds): a
// checkpoint at upTo holds all they used.
func (t *Tracker) Forget(namespace string, upTo int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := t.gone[namespace]
	kept := gone[:0]
	for _, g := range gone {
		if g.End > upTo {
			kept = append(kept, g)
		}
	}
	if len(kept) == 0 {
		delete(t.gone, namespace)
		return
	}
	t.gone[namespace] = kept
}
