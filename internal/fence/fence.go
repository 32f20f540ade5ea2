// Package fence keeps a leader whose lease may have lapsed from writing. A leader that stops
// for a while (a long GC pause, a frozen VM, SIGSTOP) resumes with reconciles half done and
// writes from a stale view before its leader election notices that another replica leads.
// The API server refuses most such writes (resourceVersion conflicts), but not all, and not
// events. The fence sees the leader's own lease renewals go by and, once the last one is older
// than the renew deadline, fails the writes of reconciles and events until the next renewal:
// by then controller-runtime has given up leadership and the process exits.
//
// Webhook requests are not fenced: every replica serves them, leader or not, and what they
// write is arbitrated by resourceVersion.
package fence

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/controller"
)

// Fence wraps the transport of every client of the manager.
type Fence struct {
	// lease is the path suffix of the leader election Lease: /namespaces/<ns>/leases/<name>.
	lease    string
	validFor time.Duration
	now      func() time.Time
	// fromReconcile says whether a request is made by a reconcile.
	fromReconcile func(context.Context) bool

	mu      sync.Mutex
	leading bool
	renewed time.Time // when the last successful renewal was sent
}

// New fences writes validFor after the last renewal of the Lease namespace/name.
func New(namespace, name string, validFor time.Duration) *Fence {
	return &Fence{
		lease:    "/namespaces/" + namespace + "/leases/" + name,
		validFor: validFor,
		now:      time.Now,
		fromReconcile: func(ctx context.Context) bool {
			return controller.ReconcileIDFromContext(ctx) != ""
		},
	}
}

// Wrap is a rest.Config WrapTransport.
func (f *Fence) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			return rt.RoundTrip(req)
		}
		if strings.HasSuffix(req.URL.Path, f.lease) {
			sent := f.now()
			resp, err := rt.RoundTrip(req)
			if err == nil && resp.StatusCode < 300 && (req.Method == http.MethodPut || req.Method == http.MethodPost) {
				f.mu.Lock()
				f.leading, f.renewed = true, sent
				f.mu.Unlock()
			}
			return resp, err
		}
		if f.lapsed() && (f.fromReconcile(req.Context()) || strings.Contains(req.URL.Path, "/events")) {
			return nil, fmt.Errorf("not sending %s %s: the last lease renewal is older than %v, another replica may lead", req.Method, req.URL.Path, f.validFor)
		}
		return rt.RoundTrip(req)
	})
}

// lapsed reports whether this process has led and its last renewal is older than validFor.
func (f *Fence) lapsed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leading && f.now().Sub(f.renewed) > f.validFor
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
