package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"sync"
	"time"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// observer keeps the organizations and members (and, when asked, namespaces and projects) as
// the API server has them, from one List and then a watch of each. Waiting on it costs the API
// server a few watch events per change, where polling listed every object a few times a
// second; on the big organization those Lists cost kube-apiserver about as much CPU as the
// operator's own.
type observer struct {
	mu      sync.Mutex
	kinds   map[string]*observedKind // by collection path
	changed chan struct{}            // receives (without blocking) after each applied event
}

type observedKind struct {
	objects map[string]*slimObject // "namespace/name"
	synced  bool
}

// observeInterval is the least time between two evaluations of the watched state: how precise
// convergence times are.
const observeInterval = 100 * time.Millisecond

const (
	orgsPath       = "/apis/tenancy.orgoperator.io/v1alpha1/organizations"
	membersPath    = "/apis/tenancy.orgoperator.io/v1alpha1/organizationmembers"
	projectsPath   = "/apis/tenancy.orgoperator.io/v1alpha1/organizationprojects"
	namespacesPath = "/api/v1/namespaces"
)

// observe starts list-and-watch loops that run until ctx is done.
func (p *poller) observe(ctx context.Context, withNamespaces, withProjects bool) *observer {
	o := &observer{kinds: map[string]*observedKind{}, changed: make(chan struct{}, 1)}
	paths := map[string]url.Values{orgsPath: nil, membersPath: nil}
	if withNamespaces {
		paths[namespacesPath] = url.Values{"labelSelector": {tenancyv1alpha1.OrganizationLabel}}
	}
	if withProjects {
		paths[projectsPath] = nil
	}
	for path, query := range paths {
		o.kinds[path] = &observedKind{objects: map[string]*slimObject{}}
		go p.listAndWatch(ctx, o, path, query)
	}
	return o
}

// listAndWatch lists path, then watches it from the List's resourceVersion; it lists again
// whenever the watch ends with an error or its resourceVersion is too old.
func (p *poller) listAndWatch(ctx context.Context, o *observer, path string, query url.Values) {
	failures := 0
	for ctx.Err() == nil {
		rv, err := p.relist(ctx, o, path, query)
		if err == nil {
			err = p.watch(ctx, o, path, query, rv)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if failures++; failures == 1 || failures%20 == 0 {
				logf("Watching %s (failure %d): %v", path, failures, err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (p *poller) relist(ctx context.Context, o *observer, path string, query url.Values) (string, error) {
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []slimObject `json:"items"`
	}
	if err := p.get(ctx, withQuery(path, query), &list); err != nil {
		return "", err
	}
	objects := make(map[string]*slimObject, len(list.Items))
	for i := range list.Items {
		objects[list.Items[i].key()] = &list.Items[i]
	}
	o.mu.Lock()
	o.kinds[path].objects, o.kinds[path].synced = objects, true
	o.mu.Unlock()
	o.notify()
	return list.Metadata.ResourceVersion, nil
}

// watch applies the events of one watch request until it ends. It returns nil when the
// server closed the watch normally (a fresh one continues from the last resourceVersion seen
// after the next List), and an error otherwise.
func (p *poller) watch(ctx context.Context, o *observer, path string, query url.Values, rv string) error {
	q := url.Values{"watch": {"1"}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"}, "timeoutSeconds": {"300"}}
	for k, v := range query {
		q[k] = v
	}
	body, err := p.open(ctx, withQuery(path, q))
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil // cancelled, or the server's timeoutSeconds ran out
			}
			return fmt.Errorf("watch %s ended: %w", path, err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED":
			obj := &slimObject{}
			if err := json.Unmarshal(ev.Object, obj); err != nil {
				return err
			}
			o.mu.Lock()
			if ev.Type == "DELETED" {
				delete(o.kinds[path].objects, obj.key())
			} else {
				o.kinds[path].objects[obj.key()] = obj
			}
			o.mu.Unlock()
			o.notify()
		case "BOOKMARK":
		default: // ERROR, e.g. 410 Gone: list again
			return fmt.Errorf("watch %s: %s event: %.200s", path, ev.Type, ev.Object)
		}
	}
}

func (o *observer) notify() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// snapshot is the observed state now, or nil before every kind has been listed once. Objects
// are replaced, never changed, by the watches, so sharing them is safe.
func (o *observer) snapshot() *snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range o.kinds {
		if !k.synced {
			return nil
		}
	}
	s := &snapshot{at: time.Now(), orgs: map[string]*slimObject{}, members: maps.Clone(o.kinds[membersPath].objects)}
	for _, v := range o.kinds[orgsPath].objects {
		s.orgs[v.Metadata.Name] = v
	}
	if k, ok := o.kinds[namespacesPath]; ok {
		s.namespaces = map[string]bool{}
		for _, v := range k.objects {
			s.namespaces[v.Metadata.Name] = true
		}
	}
	if k, ok := o.kinds[projectsPath]; ok {
		s.projects = maps.Clone(k.objects)
	}
	return s
}

func (v *slimObject) key() string { return v.Metadata.Namespace + "/" + v.Metadata.Name }

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// sameObjects says whether two snapshots hold the same objects at the same resourceVersions.
func sameObjects(a, b *snapshot) bool {
	sameVersions := func(x, y map[string]*slimObject) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w.Metadata.ResourceVersion != v.Metadata.ResourceVersion {
				return false
			}
		}
		return true
	}
	return sameVersions(a.orgs, b.orgs) && sameVersions(a.members, b.members) &&
		sameVersions(a.projects, b.projects) && maps.Equal(a.namespaces, b.namespaces)
}
