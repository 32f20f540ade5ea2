package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

// settleTimeout bounds the wait for the operator to go quiet after a scenario converged.
const settleTimeout = 2 * time.Minute

// retry runs op until it succeeds, with a growing pause, until the deadline. AlreadyExists
// counts as success: an earlier attempt that timed out may have gone through.
func retry(ctx context.Context, deadline time.Time, retries *atomic.Int64, op func() error) error {
	pause := 20 * time.Millisecond
	for {
		err := op()
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		retries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// parallel runs fn for 0..n-1 on the given number of workers and returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}

func orgName(i int) string { return fmt.Sprintf("bench-%04d", i) }

func newOrganization(name string) *tenancyv1alpha1.Organization {
	return &tenancyv1alpha1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.OrganizationSpec{
			DisplayName: name, ContactEmail: "platform@" + name + ".example.com",
			DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade,
		},
	}
}

func newNamespace(name, org string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: org}}}
}

func newMember(org string, m *memberModel) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: m.name},
		Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email: fmt.Sprintf("%s@%s.example.com", m.name, org), Admin: m.admin, KubernetesRole: m.role,
		},
	}
}

// newOrgModel is the i-th organization of the converge scenario as the harness creates it.
func newOrgModel(cfg *config, i int) *orgModel {
	name := orgName(i)
	o := &orgModel{name: name, namespaces: []string{name}, members: map[string]*memberModel{}, pods: map[string]podModel{}}
	for j := 1; j <= cfg.extraNamespaces; j++ {
		o.namespaces = append(o.namespaces, fmt.Sprintf("%s-x%d", name, j))
	}
	sort.Strings(o.namespaces)
	for j := range cfg.members {
		m := &memberModel{name: fmt.Sprintf("m%d", j), admin: j < cfg.admins, role: tenancyv1alpha1.KubernetesRoleView}
		o.members[m.name] = m
	}
	return o
}

// convergeMinimum is the fewest operator writes, per organization, that make the converge
// scenario's objects: per organization its finalizer, home namespace, reader ClusterRole and
// ClusterRoleBinding, its RoleBindings (membership.Plan: one per namespace and role in use, plus
// the admins' in the home namespace) and one status write; per member its finalizer and one
// status write.
func convergeMinimum(cfg *config) map[string]float64 {
	o := newOrgModel(cfg, 0)
	bindings := len(membership.Plan(o.apiMembers(), nil).RoleBindings(newOrganization(o.name), o.namespaces))
	members := float64(cfg.members)
	return map[string]float64{
		"patch organizations":              1,
		"create namespaces":                1,
		"create clusterroles":              1,
		"create clusterrolebindings":       1,
		"patch organizations/status":       1,
		"patch organizationmembers":        members,
		"create rolebindings":              float64(bindings),
		"patch organizationmembers/status": members,
	}
}

// converge creates the organizations, their namespaces and members as fast as the API server
// takes them, and waits until every organization and member is Ready for its generation.
func (b *bench) converge(ctx context.Context) error {
	cfg := b.cfg
	cl := b.c.clients[agentCreate]
	for i := range cfg.orgs {
		o := newOrgModel(cfg, i)
		b.world.orgs[o.name] = o
	}
	nsPerOrg := 1 + cfg.extraNamespaces
	pr := b.begin("converge", fmt.Sprintf("Create %d organizations × %d members × %d namespaces; wait until all are Ready",
		cfg.orgs, cfg.members, nsPerOrg), cfg.orgs, "org")
	start := pr.start
	deadline := start.Add(cfg.phaseTimeout)

	// Organizations and their labelled namespaces first; members once the operator has made the
	// home namespace they live in (creating one earlier fails, and is retried).
	var retries atomic.Int64
	// Creators left over when there are fewer organizations than creators share an
	// organization's members and namespaces: one organization of many members is not created
	// by one creator alone.
	within := max(1, cfg.creators/cfg.orgs)
	var createErr error
	var createdAt time.Time
	created := make(chan struct{})
	orgQueue := make(chan *orgModel, cfg.orgs)
	go func() {
		defer func() {
			createdAt = time.Now()
			close(created)
		}()
		var wg sync.WaitGroup
		var memberErr error
		var once sync.Once
		var memberFailed atomic.Bool
		for range cfg.creators {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for o := range orgQueue {
					names := sortedKeys(o.members)
					_ = parallel(ctx, within, len(names), func(ctx context.Context, i int) error {
						// A creation fails only past the deadline: the others would fail as well, one by one.
						if memberFailed.Load() {
							return nil
						}
						m := o.members[names[i]]
						err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newMember(o.name, m)) })
						if err != nil {
							memberFailed.Store(true)
							once.Do(func() { memberErr = fmt.Errorf("creating member %s/%s: %w", o.name, m.name, err) })
							return nil
						}
						b.world.mu.Lock()
						m.created = time.Now()
						b.world.mu.Unlock()
						return nil
					})
				}
			}()
		}
		orgs := b.world.live()
		err := parallel(ctx, cfg.creators, len(orgs), func(ctx context.Context, i int) error {
			o := orgs[i]
			if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newOrganization(o.name)) }); err != nil {
				return fmt.Errorf("creating organization %s: %w", o.name, err)
			}
			b.world.mu.Lock()
			o.created = time.Now()
			b.world.mu.Unlock()
			extra := slices.DeleteFunc(slices.Clone(o.namespaces), func(ns string) bool { return ns == o.name })
			err := parallel(ctx, within, len(extra), func(ctx context.Context, i int) error {
				if err := retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newNamespace(extra[i], o.name)) }); err != nil {
					return fmt.Errorf("creating namespace %s: %w", extra[i], err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			orgQueue <- o
			return nil
		})
		close(orgQueue)
		wg.Wait()
		createErr = err
		if createErr == nil {
			createErr = memberErr
		}
	}()

	pollCtx, stopPolling := context.WithCancel(ctx)
	go func() {
		<-created
		if createErr != nil {
			stopPolling()
		}
	}()
	conv := b.poller.waitConverged(pollCtx, b.world, check{}, start, cfg.phaseTimeout, false, created)
	stopPolling()
	<-created
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	p := b.finish(pr, quietAt, false)
	p.setMinimum(convergeMinimum(cfg))
	if createErr != nil {
		return createErr
	}

	// Time to Ready of each object, from its creation.
	var orgTimes, memberTimes []float64
	b.world.mu.Lock()
	for _, o := range b.world.orgs {
		if t, ok := conv.ReadyAt["org/"+o.name]; ok {
			orgTimes = append(orgTimes, t.Sub(o.created).Seconds())
		}
		for _, m := range o.members {
			if t, ok := conv.ReadyAt["member/"+o.name+"/"+m.name]; ok {
				memberTimes = append(memberTimes, t.Sub(m.created).Seconds())
			}
		}
	}
	b.world.mu.Unlock()
	p.TimeToReady = map[string]Percentiles{"organization": percentiles(orgTimes).round(round2), "member": percentiles(memberTimes).round(round2)}
	p.Extra = map[string]any{
		"createSeconds":         round2(createdAt.Sub(start).Seconds()),
		"createRetries":         retries.Load(),
		"polls":                 conv.Polls,
		"writesPerSecond":       round1(float64(p.Operator.Writes) / max(p.SettledSeconds, 0.001)),
		"peakWritesPerSecondBy": peakPerSecond(p.records),
	}

	var orgNames, memberNames []string
	for _, o := range b.world.live() {
		orgNames = append(orgNames, o.name)
		for _, m := range sortedKeys(o.members) {
			memberNames = append(memberNames, o.name+"/"+m)
		}
	}
	p.Distributions = map[string]Distribution{
		"organizations/status patches per organization":    perObject(filterRecords(p.records, "patch", "organizations", "status"), orgNames),
		"organizationmembers/status patches per member":    perObject(filterRecords(p.records, "patch", "organizationmembers", "status"), memberNames),
		"clusterrolebinding writes per organization":       perObject(filterRecords(p.records, "", "clusterrolebindings", ""), orgNames),
		"organization patches (metadata) per organization": perObject(filterRecords(p.records, "patch", "organizations", ""), orgNames),
		"member patches (metadata) per member":             perObject(filterRecords(p.records, "patch", "organizationmembers", ""), memberNames),
	}
	b.verifyNow(ctx, "converge")
	b.res.Bars = append(b.res.Bars, convergeBar(cfg.orgs, p))
	if f := b.res.Floor; f != nil && f.Seconds > 0 {
		p.FloorRatio = round2(p.Seconds / f.Seconds)
		b.res.Bars = append(b.res.Bars, Bar{What: "converge-floor", Target: fmt.Sprintf("converge ≤ %.1f× floor (%.2f s)", floorTarget, f.Seconds),
			Value: p.FloorRatio, Unit: "× floor", Met: p.Converged && p.FloorRatio <= floorTarget})
	}
	if !conv.Converged {
		return fmt.Errorf("not converged after %v; pending: %s", cfg.phaseTimeout, strings.Join(conv.Pending, ", "))
	}
	return nil
}

func convergeBar(orgs int, p *Phase) Bar {
	target, limit := "", 0.0
	switch {
	case orgs <= 100:
		target, limit = fmt.Sprintf("%d orgs Ready in < 10 s (bar for 100)", orgs), 10
	case orgs <= 1000:
		target, limit = fmt.Sprintf("%d orgs Ready in < 60 s (bar for 1,000)", orgs), 60
	default:
		target, limit = fmt.Sprintf("%d orgs (no bar above 1,000; 60 s shown)", orgs), 60
	}
	return Bar{What: "converge", Target: target, Value: p.Seconds, Unit: "s", Met: p.Converged && p.Seconds < limit}
}

func filterRecords(records []auditRecord, verb, resource, subresource string) []auditRecord {
	var out []auditRecord
	for _, r := range records {
		if (verb == "" || r.Verb == verb) && r.Resource == resource && r.Subresource == subresource && r.class() == classWrite {
			out = append(out, r)
		}
	}
	return out
}

// peakPerSecond returns, per kind of write, the most requests received in one second; with the
// client-side rate limit, writes of one resource stall at the manager's --kube-api-qps.
func peakPerSecond(records []auditRecord) map[string]int {
	counts := map[string]map[int64]int{}
	for _, r := range records {
		if r.class() != classWrite {
			continue
		}
		if counts[r.key()] == nil {
			counts[r.key()] = map[int64]int{}
		}
		counts[r.key()][r.At.Unix()]++
	}
	out := map[string]int{}
	for k, per := range counts {
		for _, n := range per {
			out[k] = max(out[k], n)
		}
	}
	return out
}

func (b *bench) verifyNow(ctx context.Context, after string) {
	problems, err := verify(ctx, b.c.clients[agentVerify], b.world)
	if err != nil {
		problems = append(problems, "verification failed: "+err.Error())
	}
	if problems == nil {
		problems = []string{}
	}
	b.res.Verification[after] = problems
	if len(problems) > 0 {
		logf("Verification after %s found %d differences, e.g. %s", after, len(problems), problems[0])
	}
}

// idle watches the operator while nothing changes, then restarts it: the new process lists
// everything and reconciles every object once (a forced full resync), and must write nothing.
func (b *bench) idle(ctx context.Context) error {
	pr := b.begin("idle", fmt.Sprintf("No change for %v", b.cfg.idle), b.cfg.orgs, "org")
	b.smp.setHeapEvery(60) // one metrics scrape every 30 s: idle CPU is then the operator's own
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.cfg.idle):
	}
	b.smp.setHeapEvery(4)
	pr.p.Seconds, pr.p.Converged, pr.p.Settled = round1(b.cfg.idle.Seconds()), true, true
	p := b.finish(pr, time.Now(), false)
	perMinute := float64(p.Operator.Writes) / b.cfg.idle.Minutes()
	p.Extra = map[string]any{"writesPerMinute": round2(perMinute)}
	b.res.Bars = append(b.res.Bars, Bar{What: "idle", Target: "0 writes while nothing changes", Value: float64(p.Operator.Writes), Unit: "writes", Met: p.Operator.Writes == 0})
	if !b.cfg.restart {
		return nil
	}

	live := b.world.live()
	members := 0
	for _, o := range live {
		members += o.liveMembers()
	}
	pr = b.begin("resync", "Restart the manager: it lists everything and reconciles every object once", len(live), "org")
	b.mgr.stop(30 * time.Second)
	if err := b.mgr.start(ctx, 5*time.Minute); err != nil {
		return err
	}
	startedAt := time.Since(pr.start)
	// Every object must have been reconciled once, then the operator must go quiet.
	deadline := time.Now().Add(b.cfg.phaseTimeout)
	var m metricsSample
	for {
		var err error
		m, err = b.mgr.scrape(ctx)
		if err == nil && m.Reconciles["organization"] >= float64(len(live)) && m.Reconciles["organizationmember"] >= float64(members) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after the restart, the manager did not reconcile every object within %v (%v)", b.cfg.phaseTimeout, m.Reconciles)
		}
		time.Sleep(500 * time.Millisecond)
	}
	reconciledAt := time.Since(pr.start)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.p.Seconds, pr.p.Converged, pr.p.Settled = round2(reconciledAt.Seconds()), true, quiet
	p = b.finish(pr, quietAt, true)
	p.Extra = map[string]any{"controllersStartedSeconds": round2(startedAt.Seconds()), "reconciledAllSeconds": round2(reconciledAt.Seconds())}
	p.Notes = append(p.Notes, "seconds is from the stop of the old manager until the new one had reconciled every organization and member once")
	b.res.Bars = append(b.res.Bars, Bar{What: "resync", Target: "0 writes after a restart", Value: float64(p.Operator.Writes), Unit: "writes", Met: p.Operator.Writes == 0})
	return nil
}

// churn changes 10 % of the members' roles, adds a namespace to 10 % of the organizations and
// deletes 5 % of them, one kind of change at a time, and times each until all has converged.
func (b *bench) churn(ctx context.Context) error {
	cl := b.c.clients[agentCreate]
	rng := rand.New(rand.NewSource(b.cfg.seed))
	live := b.world.live()
	var retries atomic.Int64

	// 1. Role changes, View to Edit.
	type memberRef struct {
		org *orgModel
		m   *memberModel
	}
	var candidates []memberRef
	for _, o := range live {
		for _, name := range sortedKeys(o.members) {
			if m := o.members[name]; m.role == tenancyv1alpha1.KubernetesRoleView {
				candidates = append(candidates, memberRef{o, m})
			}
		}
	}
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	roleChanges := candidates[:min(len(candidates), ceilDiv(b.cfg.orgs*b.cfg.members, 10))]
	// The minimum: every shared RoleBinding whose subjects the changes alter, written once, and
	// each member's status.
	wanted := func() map[string][]string {
		out := map[string][]string{}
		for _, r := range roleChanges {
			maps.Copy(out, r.org.wantedSubjects(r.org.namespaces))
		}
		return out
	}
	b.world.mu.Lock()
	before := wanted()
	for _, r := range roleChanges {
		r.m.role = tenancyv1alpha1.KubernetesRoleEdit
	}
	roleMinimum := bindingWrites(before, wanted())
	for _, r := range roleChanges {
		r.m.role = tenancyv1alpha1.KubernetesRoleView
	}
	b.world.mu.Unlock()
	roleMinimum["patch organizationmembers/status"] = float64(len(roleChanges))
	for k := range roleMinimum {
		roleMinimum[k] /= float64(max(1, len(roleChanges)))
	}
	err := b.churnStep(ctx, "churn-role", fmt.Sprintf("Change %d members (10 %%) from View to Edit", len(roleChanges)), len(roleChanges), "change",
		roleMinimum, false, func(ctx context.Context, deadline time.Time) error {
			return parallel(ctx, b.cfg.creators, len(roleChanges), func(ctx context.Context, i int) error {
				r := roleChanges[i]
				b.world.mu.Lock()
				r.m.role = tenancyv1alpha1.KubernetesRoleEdit
				b.world.mu.Unlock()
				patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"kubernetesRole":"Edit"}}`))
				return retry(ctx, deadline, &retries, func() error {
					return cl.Patch(ctx, &tenancyv1alpha1.OrganizationMember{ObjectMeta: metav1.ObjectMeta{Namespace: r.org.name, Name: r.m.name}}, patch)
				})
			})
		})
	if err != nil {
		return err
	}

	// 2. A new namespace in 10 % of the organizations.
	perm := rng.Perm(len(live))
	gain := make([]*orgModel, 0, ceilDiv(len(live), 10))
	for _, i := range perm[:ceilDiv(len(live), 10)] {
		gain = append(gain, live[i])
	}
	// The roles in use differ between organizations since the role changes: the mean of their minimums.
	joined := map[string]float64{}
	for _, o := range gain {
		for k, v := range joinMinimum(o) {
			joined[k] += v / float64(len(gain))
		}
	}
	err = b.churnStep(ctx, "churn-namespace", fmt.Sprintf("Label a new namespace into %d organizations (10 %%)", len(gain)), len(gain), "change",
		joined, false, func(ctx context.Context, deadline time.Time) error {
			return parallel(ctx, b.cfg.creators, len(gain), func(ctx context.Context, i int) error {
				o := gain[i]
				name := fmt.Sprintf("%s-x%d", o.name, len(o.namespaces))
				b.world.mu.Lock()
				o.namespaces = append(o.namespaces, name)
				sort.Strings(o.namespaces)
				b.world.mu.Unlock()
				return retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, newNamespace(name, o.name)) })
			})
		})
	if err != nil {
		return err
	}

	// 3. Delete 5 % of the organizations, with deletionPolicy Cascade.
	perm = rng.Perm(len(live))
	gone := make([]*orgModel, 0, ceilDiv(len(live), 20))
	for _, i := range perm[:ceilDiv(len(live), 20)] {
		gone = append(gone, live[i])
	}
	// Per deleted organization: delete each of its namespaces, release its finalizer and each
	// member's finalizer (the namespace controller deletes the members with the home namespace).
	members := float64(b.cfg.members)
	goneNamespaces := 0
	for _, o := range gone {
		goneNamespaces += len(o.namespaces)
	}
	err = b.churnStep(ctx, "churn-delete", fmt.Sprintf("Delete %d organizations (5 %%, deletionPolicy Cascade) until they and their namespaces are gone", len(gone)),
		len(gone), "change",
		map[string]float64{"delete namespaces": float64(goneNamespaces) / float64(len(gone)), "patch organizations": 1, "patch organizationmembers": members},
		true, func(ctx context.Context, deadline time.Time) error {
			return parallel(ctx, b.cfg.creators, len(gone), func(ctx context.Context, i int) error {
				o := gone[i]
				b.world.mu.Lock()
				o.deleted = true
				b.world.mu.Unlock()
				return retry(ctx, deadline, &retries, func() error {
					return client.IgnoreNotFound(cl.Delete(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: o.name}}))
				})
			})
		})
	if err != nil {
		return err
	}
	b.verifyNow(ctx, "churn")
	return nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// applyAndWait makes a scenario's changes while polling until the world has converged; it stops
// polling early when the changes fail. It returns how long the changes took to make.
func (b *bench) applyAndWait(ctx context.Context, pr *phaseRun, c check, withNamespaces bool,
	apply func(ctx context.Context, deadline time.Time) error) (convergence, error, time.Duration) {
	deadline := pr.start.Add(b.cfg.phaseTimeout)
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	applied := make(chan struct{})
	var applyErr error
	var took time.Duration
	go func() {
		applyErr = apply(ctx, deadline)
		took = time.Since(pr.start)
		if applyErr != nil {
			stopPolling()
		}
		close(applied)
	}()
	conv := b.poller.waitConverged(pollCtx, b.world, c, pr.start, b.cfg.phaseTimeout, withNamespaces, applied)
	<-applied
	return conv, applyErr, took
}

// churnStep applies one kind of change, waits until everything converged and the operator is
// quiet, and records the phase.
func (b *bench) churnStep(ctx context.Context, name, description string, units int, unitName string,
	minimum map[string]float64, withNamespaces bool, apply func(ctx context.Context, deadline time.Time) error) error {
	pr := b.begin(name, description, units, unitName)
	conv, applyErr, _ := b.applyAndWait(ctx, pr, check{}, withNamespaces, apply)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	p := b.finish(pr, quietAt, false)
	p.setMinimum(minimum)
	if name == "churn-delete" {
		// When did the organizations themselves go (their namespaces take longer)?
		var orgGone []float64
		b.world.mu.Lock()
		for _, o := range b.world.orgs {
			if t, ok := conv.ReadyAt["gone/"+o.name]; ok && o.deleted {
				orgGone = append(orgGone, t.Sub(pr.start).Seconds())
			}
		}
		b.world.mu.Unlock()
		p.TimeToReady = map[string]Percentiles{"gone (organization and namespaces)": percentiles(orgGone).round(round2)}
	}
	if applyErr != nil {
		return applyErr
	}
	if !conv.Converged {
		return fmt.Errorf("%s: not converged after %v; pending: %s", name, b.cfg.phaseTimeout, strings.Join(conv.Pending, ", "))
	}
	return nil
}

// usage spreads pods over the organizations' namespaces and waits until every organization's
// status.usage is exact; then changes a few pods and waits again.
func (b *bench) usage(ctx context.Context) error {
	if b.cfg.pods <= 0 {
		return nil
	}
	cl := b.c.clients[agentCreate]
	rng := rand.New(rand.NewSource(b.cfg.seed + 1))
	live := b.world.live()
	var namespaces []struct {
		org *orgModel
		ns  string
	}
	for _, o := range live {
		for _, ns := range o.namespaces {
			namespaces = append(namespaces, struct {
				org *orgModel
				ns  string
			}{o, ns})
		}
	}
	var retries atomic.Int64
	seq := 0
	type podRef struct {
		org      *orgModel
		ns, name string
		cpu, mem int64
	}
	newPod := func(i int) podRef {
		target := namespaces[i%len(namespaces)]
		seq++
		return podRef{org: target.org, ns: target.ns, name: fmt.Sprintf("p%06d", seq),
			cpu: int64(50 + 10*(seq%10)), mem: int64(32+16*(seq%4)) << 20}
	}
	create := func(ctx context.Context, deadline time.Time, p podRef) error {
		b.world.mu.Lock()
		p.org.pods[p.ns+"/"+p.name] = podModel{cpuMilli: p.cpu, memBytes: p.mem}
		b.world.mu.Unlock()
		return retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, benchPod(p.ns, p.name, p.cpu, p.mem)) })
	}

	pods := make([]podRef, b.cfg.pods)
	for i := range pods {
		pods[i] = newPod(i)
	}
	orgsHit := len(live)
	touched := map[string]bool{}
	for _, p := range pods {
		touched[p.ns] = true
	}
	err := b.usageStep(ctx, "usage-create", fmt.Sprintf("Create %d pods (Pending, with requests) over %d namespaces", len(pods), len(namespaces)),
		len(pods), "pod", orgsHit, projectsIn(live, touched), func(ctx context.Context, deadline time.Time) error {
			return parallel(ctx, b.cfg.creators, len(pods), func(ctx context.Context, i int) error { return create(ctx, deadline, pods[i]) })
		})
	if err != nil {
		return err
	}

	// Change pods: delete half, create half, at random.
	nDelete := min(b.cfg.podDelta/2, len(pods))
	rng.Shuffle(len(pods), func(i, j int) { pods[i], pods[j] = pods[j], pods[i] })
	deletes := pods[:nDelete]
	creates := make([]podRef, b.cfg.podDelta-nDelete)
	for i := range creates {
		creates[i] = newPod(rng.Intn(len(namespaces)))
	}
	affected := map[string]bool{}
	touched = map[string]bool{}
	for _, p := range slices.Concat(deletes, creates) {
		affected[p.org.name] = true
		touched[p.ns] = true
	}
	return b.usageStep(ctx, "usage-change", fmt.Sprintf("Delete %d pods and create %d, in %d organizations", len(deletes), len(creates), len(affected)),
		len(deletes)+len(creates), "pod", len(affected), projectsIn(live, touched), func(ctx context.Context, deadline time.Time) error {
			return parallel(ctx, b.cfg.creators, len(deletes)+len(creates), func(ctx context.Context, i int) error {
				if i < len(creates) {
					return create(ctx, deadline, creates[i])
				}
				p := deletes[i-len(creates)]
				b.world.mu.Lock()
				delete(p.org.pods, p.ns+"/"+p.name)
				b.world.mu.Unlock()
				return retry(ctx, deadline, &retries, func() error {
					return client.IgnoreNotFound(cl.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}}))
				})
			})
		})
}

// projectsIn counts the projects of orgs whose namespace is one of namespaces.
func projectsIn(orgs []*orgModel, namespaces map[string]bool) int {
	n := 0
	for _, o := range orgs {
		for _, ns := range o.projects {
			if namespaces[ns] {
				n++
			}
		}
	}
	return n
}

func (b *bench) usageStep(ctx context.Context, name, description string, units int, unitName string, orgsHit, projectsHit int,
	apply func(ctx context.Context, deadline time.Time) error) error {
	pr := b.begin(name, description, units, unitName)
	conv, applyErr, applied := b.applyAndWait(ctx, pr, check{usage: true}, false, apply)
	quietAt, quiet := b.waitQuiet(ctx, settleTimeout)
	pr.converged(conv, quiet)
	p := b.finish(pr, quietAt, false)
	// At least one status write per organization, and per project, whose usage changed.
	minimum := map[string]float64{"patch organizations/status": float64(orgsHit) / float64(units)}
	if projectsHit > 0 {
		minimum["patch organizationprojects/status"] = float64(projectsHit) / float64(units)
	}
	p.setMinimum(minimum)
	p.Extra = map[string]any{"applySeconds": round2(applied.Seconds()), "organizationsAffected": orgsHit,
		"statusWritesPerAffectedOrganization": round2(float64(p.Operator.ByRequest["patch organizations/status"]) / float64(orgsHit))}
	if applyErr != nil {
		return applyErr
	}
	if !conv.Converged {
		return fmt.Errorf("%s: not converged after %v; pending: %s", name, b.cfg.phaseTimeout, strings.Join(conv.Pending, ", "))
	}
	return nil
}

// benchPod is a pod no kubelet will run: it stays Pending, and counts in usage with its requests.
func benchPod(ns, name string, cpuMilli, memBytes int64) *corev1.Pod {
	req := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memBytes, resource.BinarySI),
	}
	lim := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(2*cpuMilli, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(2*memBytes, resource.BinarySI),
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.invalid/bench:1",
				Resources: corev1.ResourceRequirements{Requests: req, Limits: lim},
			}},
		},
	}
}
