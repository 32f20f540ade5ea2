package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

// world is what the harness asked for: the state every scenario waits for the operator to reach.
type world struct {
	mu   sync.Mutex
	orgs map[string]*orgModel
}

type orgModel struct {
	name       string
	namespaces []string // sorted, the home namespace among them
	members    map[string]*memberModel
	deleted    bool
	created    time.Time
	pods       map[string]podModel // "namespace/name"
	projects   map[string]string   // project name -> its namespace (also in namespaces)
}

type memberModel struct {
	name    string
	admin   bool
	role    tenancyv1alpha1.KubernetesRole
	created time.Time
}

type podModel struct {
	cpuMilli, memBytes int64
}

func (o *orgModel) liveMembers() int { return len(o.members) }

func (o *orgModel) admins() int {
	n := 0
	for _, m := range o.members {
		if m.admin {
			n++
		}
	}
	return n
}

func (o *orgModel) usage() (pods int, cpuMilli, memBytes int64) {
	for _, p := range o.pods {
		pods++
		cpuMilli += p.cpuMilli
		memBytes += p.memBytes
	}
	return pods, cpuMilli, memBytes
}

// live returns the organizations that are not deleted, sorted by name.
func (w *world) live() []*orgModel {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*orgModel, 0, len(w.orgs))
	for _, o := range w.orgs {
		if !o.deleted {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// slim views of what the poller reads: only the fields convergence depends on.
type slimCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type slimObject struct {
	Metadata struct {
		Name              string  `json:"name"`
		Namespace         string  `json:"namespace"`
		Generation        int64   `json:"generation"`
		ResourceVersion   string  `json:"resourceVersion"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration int64           `json:"observedGeneration"`
		Conditions         []slimCondition `json:"conditions"`
		MemberCount        int32           `json:"memberCount"`
		Namespaces         []string        `json:"namespaces"`
		Namespace          string          `json:"namespace"` // a project's
		Access             []struct {
			ClusterRole string `json:"clusterRole"`
			Namespaces  string `json:"namespaces"`
		} `json:"access"`
		Usage *struct {
			Pods     int32             `json:"pods"`
			Requests map[string]string `json:"requests"`
		} `json:"usage"`
	} `json:"status"`
}

func (o *slimObject) ready() bool {
	if o.Metadata.DeletionTimestamp != nil || o.Status.ObservedGeneration != o.Metadata.Generation {
		return false
	}
	for _, c := range o.Status.Conditions {
		if c.Type == tenancyv1alpha1.ReadyCondition {
			return c.Status == "True"
		}
	}
	return false
}

type slimList struct {
	Items []slimObject `json:"items"`
}

// snapshot is one poll: every organization and member, as the API server has them.
type snapshot struct {
	at         time.Time
	orgs       map[string]*slimObject
	members    map[string]*slimObject // "namespace/name"
	namespaces map[string]bool        // only when asked for
	projects   map[string]*slimObject // "namespace/name", only when asked for
}

// poller lists organizations and members (and, when asked, namespaces) through its own counted
// client, so that its requests are told apart from the operator's.
type poller struct {
	c        *cluster
	interval time.Duration
}

func (p *poller) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body, err := p.open(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(into)
}

// open sends a GET of path (JSON) through the poller's counted client and returns the body of
// a 200 response; the caller closes it.
func (p *poller) open(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.c.host+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.c.poll.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return resp.Body, nil
}

func (p *poller) snapshot(ctx context.Context, withNamespaces, withProjects bool) (*snapshot, error) {
	s := &snapshot{orgs: map[string]*slimObject{}, members: map[string]*slimObject{}}
	var orgs, members slimList
	if err := p.get(ctx, "/apis/tenancy.orgoperator.io/v1alpha1/organizations", &orgs); err != nil {
		return nil, err
	}
	if err := p.get(ctx, "/apis/tenancy.orgoperator.io/v1alpha1/organizationmembers", &members); err != nil {
		return nil, err
	}
	s.at = time.Now()
	for i := range orgs.Items {
		s.orgs[orgs.Items[i].Metadata.Name] = &orgs.Items[i]
	}
	for i := range members.Items {
		m := &members.Items[i]
		s.members[m.Metadata.Namespace+"/"+m.Metadata.Name] = m
	}
	if withNamespaces {
		var namespaces slimList
		if err := p.get(ctx, "/api/v1/namespaces?labelSelector="+tenancyv1alpha1.OrganizationLabel, &namespaces); err != nil {
			return nil, err
		}
		s.namespaces = map[string]bool{}
		for _, ns := range namespaces.Items {
			s.namespaces[ns.Metadata.Name] = true
		}
	}
	if withProjects {
		var projects slimList
		if err := p.get(ctx, "/apis/tenancy.orgoperator.io/v1alpha1/organizationprojects", &projects); err != nil {
			return nil, err
		}
		s.projects = map[string]*slimObject{}
		for i := range projects.Items {
			pr := &projects.Items[i]
			s.projects[pr.Metadata.Namespace+"/"+pr.Metadata.Name] = pr
		}
	}
	return s, nil
}

// check says which objects of the world have converged in a snapshot, and whether all have.
// Keys are "org/<name>", "member/<namespace>/<name>" and "project/<namespace>/<name>"; deleted
// organizations are "gone/<name>" once the organization and all its namespaces are gone.
type check struct {
	usage    bool // organizations must also report exact usage
	projects bool // projects must be Ready for their generation, with their namespace
}

func (c check) evaluate(w *world, s *snapshot) (ready map[string]bool, pending []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ready = map[string]bool{}
	mark := func(key string, ok bool) {
		if ok {
			ready[key] = true
		} else {
			pending = append(pending, key)
		}
	}
	for _, o := range w.orgs {
		if o.deleted {
			_, orgLeft := s.orgs[o.name]
			gone := !orgLeft
			if s.namespaces != nil {
				for _, ns := range o.namespaces {
					gone = gone && !s.namespaces[ns]
				}
			}
			mark("gone/"+o.name, gone)
			continue
		}
		v := s.orgs[o.name]
		ok := o.convergedIn(v)
		key := "org/" + o.name
		if ok && c.usage {
			pods, cpu, mem := o.usage()
			u := v.Status.Usage
			ok = u != nil && int(u.Pods) == pods && quantityMilli(u.Requests["cpu"]) == cpu && quantityValue(u.Requests["memory"]) == mem
			if !ok && u != nil {
				key += fmt.Sprintf(" (status.usage: %d pods, %s cpu, %s memory; want %d, %dm, %d)",
					u.Pods, u.Requests["cpu"], u.Requests["memory"], pods, cpu, mem)
			}
		}
		if ok {
			key = "org/" + o.name
		}
		mark(key, ok)
		for _, m := range o.members {
			mv := s.members[o.name+"/"+m.name]
			var want, have []string
			if role, ok := membership.ClusterRoleFor(m.role); ok {
				want = append(want, role+"/"+string(tenancyv1alpha1.AccessScopeOrganization))
			}
			if m.admin {
				want = append(want, membership.OrganizationAdminClusterRole+"/"+string(tenancyv1alpha1.AccessScopeHome))
			}
			if mv != nil {
				for _, a := range mv.Status.Access {
					have = append(have, a.ClusterRole+"/"+a.Namespaces)
				}
			}
			mark("member/"+o.name+"/"+m.name, mv != nil && mv.ready() && slices.Equal(sortedCopy(have), sortedCopy(want)))
		}
		if c.projects {
			for name, ns := range o.projects {
				pv := s.projects[o.name+"/"+name]
				mark("project/"+o.name+"/"+name, pv != nil && pv.ready() && pv.Status.Namespace == ns)
			}
		}
	}
	sort.Strings(pending)
	return ready, pending
}

// convergedIn says whether the organization as the API server has it (nil: absent) is Ready
// for its generation with the members and namespaces the world gave it. The caller holds the
// world's lock.
func (o *orgModel) convergedIn(v *slimObject) bool {
	return v != nil && v.ready() && int(v.Status.MemberCount) == o.liveMembers() &&
		slices.Equal(sortedCopy(v.Status.Namespaces), o.namespaces)
}

func sortedCopy(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	return out
}

func quantityMilli(s string) int64 {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return -1
	}
	return q.MilliValue()
}

func quantityValue(s string) int64 {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return -1
	}
	return q.Value()
}

// convergence is the outcome of waiting for the world.
type convergence struct {
	Converged bool          `json:"converged"`
	Elapsed   time.Duration `json:"-"`
	Seconds   float64       `json:"seconds"`
	Polls     int           `json:"polls"`
	// ReadyAt is, per object, when it was last seen becoming converged (it may flap before).
	ReadyAt map[string]time.Time `json:"-"`
	// Pending names a few objects that had not converged at the deadline.
	Pending []string `json:"pending,omitempty"`
}

// waitConverged waits until every object of the world has converged, from start (the moment
// the scenario began changing things) to the deadline. It watches the objects (observe) and
// evaluates what it has seen at most every observeInterval.
//
// What the watches show counts as converged only when a List made after applied was closed
// (every change of the scenario made) agrees: before that, objects not changed yet would look
// converged, and a watch may not have delivered the last changes yet. The time is that of the
// watched state when the List found every object at the same resourceVersion, and the List's
// own time otherwise.
func (p *poller) waitConverged(ctx context.Context, w *world, c check, start time.Time, timeout time.Duration,
	withNamespaces bool, applied <-chan struct{}) convergence {
	res := convergence{ReadyAt: map[string]time.Time{}}
	deadline := start.Add(timeout)
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	obs := p.observe(watchCtx, withNamespaces, c.projects)
	var pending []string
	failures := 0
	for {
		complete := false
		select {
		case <-applied:
			complete = true
		default:
		}
		if s := obs.snapshot(); s != nil {
			res.Polls++
			ready, notYet := c.evaluate(w, s)
			for k := range res.ReadyAt {
				if !ready[k] {
					delete(res.ReadyAt, k)
				}
			}
			for k := range ready {
				if _, ok := res.ReadyAt[k]; !ok {
					res.ReadyAt[k] = s.at
				}
			}
			pending = notYet
			if !complete {
				pending = append(pending, "(the scenario's changes are still being made)")
			}
			if len(pending) == 0 {
				listed, err := p.snapshot(ctx, withNamespaces, c.projects)
				switch {
				case err != nil:
					if failures++; failures == 1 || failures%20 == 0 {
						logf("Confirming with a List (failure %d): %v", failures, err)
					}
				case func() bool { _, notYet := c.evaluate(w, listed); return len(notYet) == 0 }():
					at := listed.at
					if sameObjects(s, listed) {
						at = s.at
					}
					res.Converged = true
					res.Elapsed = at.Sub(start)
					res.Seconds = res.Elapsed.Seconds()
					return res
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			res.Elapsed = time.Since(start)
			res.Seconds = res.Elapsed.Seconds()
			if len(pending) > 10 {
				pending = append(pending[:10], fmt.Sprintf("... %d more", len(pending)-10))
			}
			res.Pending = pending
			return res
		}
		select {
		case <-ctx.Done():
		case <-time.After(observeInterval):
			select { // then wait for the next change, or a second at most
			case <-ctx.Done():
			case <-obs.changed:
			case <-time.After(time.Second):
			}
		}
	}
}

// verify compares the RBAC objects the operator made with what the world asks for. It returns
// a description of each difference (at most a few).
func verify(ctx context.Context, c client.Client, w *world) ([]string, error) {
	bindings := &rbacv1.RoleBindingList{}
	if err := c.List(ctx, bindings, client.MatchingLabels{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}); err != nil {
		return nil, err
	}
	have := subjectsByRole(bindings.Items)
	crbs := &rbacv1.ClusterRoleBindingList{}
	if err := c.List(ctx, crbs, client.MatchingLabels{tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}); err != nil {
		return nil, err
	}
	subjects := map[string]int{}
	for _, b := range crbs.Items {
		subjects[b.Name] = len(b.Subjects)
	}
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	want := map[string][]string{}
	w.mu.Lock()
	for _, o := range w.orgs {
		if o.deleted {
			continue
		}
		// An organization without members has no ClusterRoleBinding: none is missing then.
		if n, ok := subjects[membership.ReaderRoleName(o.name)]; n != len(o.members) {
			report("ClusterRoleBinding of %s has %d subjects, want %d (present: %v)", o.name, n, len(o.members), ok)
		}
		maps.Copy(want, o.wantedSubjects(o.namespaces))
	}
	w.mu.Unlock()
	for _, k := range differentSubjects(want, have) {
		report("RoleBindings of %s list %d subjects, want %d", k, len(have[k]), len(want[k]))
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			// Bindings in namespaces that are terminating may linger until the namespace goes.
			ns := &corev1.Namespace{}
			if err := c.Get(ctx, client.ObjectKey{Name: strings.SplitN(k, "/", 2)[0]}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
				report("RoleBindings of %s should not exist", k)
			}
		}
	}
	return problems, nil
}

// apiMembers are the organization's members as the harness created them.
func (o *orgModel) apiMembers() []tenancyv1alpha1.OrganizationMember {
	out := make([]tenancyv1alpha1.OrganizationMember, 0, len(o.members))
	for _, name := range sortedKeys(o.members) {
		out = append(out, *newMember(o.name, o.members[name]))
	}
	return out
}

// subjectsByRole maps "namespace/clusterRole" to the subjects the bindings list, all shards of
// the role together.
func subjectsByRole(bindings []rbacv1.RoleBinding) map[string][]string {
	out := map[string][]string{}
	for _, rb := range bindings {
		key := rb.Namespace + "/" + rb.RoleRef.Name
		for _, s := range rb.Subjects {
			out[key] = append(out[key], s.Name)
		}
	}
	return out
}

// wantedSubjects is subjectsByRole of the RoleBindings the organization's members should have in
// the given namespaces (membership.Plan, as the operator computes it).
func (o *orgModel) wantedSubjects(namespaces []string) map[string][]string {
	return subjectsByRole(membership.Plan(o.apiMembers(), nil).RoleBindings(newOrganization(o.name), namespaces))
}

// bindingWrites counts the RoleBinding writes that turn the bindings of before into those of
// after (both as subjectsByRole): one create, patch or delete per binding whose subjects change.
func bindingWrites(before, after map[string][]string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range differentSubjects(after, before) {
		if len(before[k]) == 0 {
			out["create rolebindings"]++
		} else {
			out["patch rolebindings"]++
		}
	}
	for k, had := range before {
		if len(had) > 0 && len(after[k]) == 0 {
			out["delete rolebindings"]++
		}
	}
	return out
}

// differentSubjects returns, sorted, the keys of want whose subjects have does not list exactly.
func differentSubjects(want, have map[string][]string) []string {
	var keys []string
	for k, names := range want {
		if !slices.Equal(sortedCopy(have[k]), sortedCopy(names)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}
