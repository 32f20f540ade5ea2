package main

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// requestInfo is what the benchmark keeps of one API request, whether it comes from the
// harness's own clients or from the API server's audit log.
type requestInfo struct {
	Verb        string // get, list, watch, create, update, patch, delete, deletecollection
	Resource    string // plural resource, "" for non-resource URLs (discovery, /version)
	Subresource string
	Namespace   string
	Name        string
	Code        int
}

// key names the request as "verb resource[/subresource]".
func (r requestInfo) key() string {
	res := r.Resource
	if res == "" {
		res = "(non-resource)"
	}
	if r.Subresource != "" {
		res += "/" + r.Subresource
	}
	return r.Verb + " " + res
}

// Request classes. Events and reviews are writes to the API server but not to objects the
// operator manages: they are counted apart so that "writes" means state that must be stored.
const (
	classRead   = "read"   // get, list
	classWatch  = "watch"  // watch (long-running)
	classWrite  = "write"  // create, update, patch, delete of a stored object
	classEvent  = "event"  // events (core or events.k8s.io)
	classReview = "review" // SubjectAccessReviews and the like: POSTs that store nothing
	classOther  = "other"  // non-resource URLs
)

func (r requestInfo) class() string {
	switch {
	case r.Resource == "":
		return classOther
	case r.Verb == "watch":
		return classWatch
	case r.Verb == "get" || r.Verb == "list":
		return classRead
	case r.Resource == "events":
		return classEvent
	case strings.HasSuffix(r.Resource, "reviews"):
		return classReview
	default:
		return classWrite
	}
}

// classify derives verb, resource, namespace and name from a request, as the API server's
// RequestInfo does for the paths a Kubernetes client uses.
func classify(method string, u *url.URL) requestInfo {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	}
	info := requestInfo{}
	if len(rest) > 0 {
		if rest[0] == "namespaces" && len(rest) >= 3 && rest[2] != "status" && rest[2] != "finalize" {
			info.Namespace = rest[1]
			rest = rest[2:]
		}
		info.Resource = rest[0]
		if len(rest) > 1 {
			info.Name = rest[1]
		}
		if len(rest) > 2 {
			info.Subresource = rest[2]
		}
		if info.Resource == "namespaces" && info.Namespace == "" && info.Name != "" {
			info.Namespace = info.Name
		}
	}
	watch := u.Query().Get("watch")
	switch method {
	case http.MethodGet:
		switch {
		case watch == "true" || watch == "1":
			info.Verb = "watch"
		case info.Name == "" && info.Resource != "":
			info.Verb = "list"
		default:
			info.Verb = "get"
		}
	case http.MethodPost:
		info.Verb = "create"
	case http.MethodPut:
		info.Verb = "update"
	case http.MethodPatch:
		info.Verb = "patch"
	case http.MethodDelete:
		if info.Name == "" {
			info.Verb = "deletecollection"
		} else {
			info.Verb = "delete"
		}
	default:
		info.Verb = strings.ToLower(method)
	}
	return info
}

// requestCounter counts requests by "verb resource" and by class.
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRequestCounter() *requestCounter { return &requestCounter{counts: map[string]int{}} }

func (c *requestCounter) add(r requestInfo) {
	c.mu.Lock()
	c.counts[r.key()]++
	c.mu.Unlock()
}

// snapshot returns a copy of the counts.
func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// diffCounts returns after - before, without zero entries.
func diffCounts(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// countingTransport counts every request that goes through it; it is installed with
// rest.Config.Wrap, under client-go's own transports.
type countingTransport struct {
	next    http.RoundTripper
	counter *requestCounter
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := classify(req.Method, req.URL)
	resp, err := t.next.RoundTrip(req)
	if resp != nil {
		info.Code = resp.StatusCode
	}
	t.counter.add(info)
	return resp, err
}
