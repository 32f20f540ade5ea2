package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

// maxOrganizationBindings is the most RoleBindings one organization should need, whatever its
// size: shared bindings grow with namespaces and roles, not with members.
const maxOrganizationBindings = 100

// join labels -joins new namespaces into the organization with the most members, one at a time,
// each until the operator has bound its members there; then takes them out again, one at a time,
// until their bindings are gone. It measures the operator's writes per join and per leave.
func (b *bench) join(ctx context.Context) error {
	o := b.largestOrganization()
	if o == nil {
		return errors.New("no organization left to join namespaces into")
	}
	names := make([]string, b.cfg.joins)
	for i := range names {
		names[i] = fmt.Sprintf("%s-join%d", o.name, i+1)
	}
	// Made before the phases, without the label: a join is then the label alone.
	if err := b.createUnlabelled(ctx, names); err != nil {
		return err
	}
	if err := b.countBindings(ctx, o); err != nil {
		return err
	}
	joinErr := b.joinStep(ctx, o, names, true)
	leaveErr := b.joinStep(ctx, o, names, false)
	// The namespaces stay, unlabelled: they are no organization's, and no later scenario sees them.
	b.verifyNow(ctx, "join")
	return errors.Join(joinErr, leaveErr, b.verificationError("join"))
}

// largestOrganization is the live organization with the most members, the first by name of those.
func (b *bench) largestOrganization() *orgModel {
	var largest *orgModel
	for _, o := range b.world.live() {
		if largest == nil || o.liveMembers() > largest.liveMembers() {
			largest = o
		}
	}
	return largest
}

func (b *bench) createUnlabelled(ctx context.Context, names []string) error {
	cl := b.c.clients[agentCreate]
	deadline := time.Now().Add(b.cfg.phaseTimeout)
	var retries atomic.Int64
	return parallel(ctx, b.cfg.creators, len(names), func(ctx context.Context, i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		return retry(ctx, deadline, &retries, func() error { return cl.Create(ctx, ns) })
	})
}

// countBindings records how many RoleBindings the organization has, against maxOrganizationBindings.
func (b *bench) countBindings(ctx context.Context, o *orgModel) error {
	list := &rbacv1.RoleBindingList{}
	if err := b.c.clients[agentVerify].List(ctx, list, client.MatchingLabels{tenancyv1alpha1.OrganizationLabel: o.name}); err != nil {
		return fmt.Errorf("counting the RoleBindings of %s: %w", o.name, err)
	}
	b.world.mu.Lock()
	target := fmt.Sprintf("≤ %d RoleBindings for organization %s (%d members, %d namespaces)",
		maxOrganizationBindings, o.name, o.liveMembers(), len(o.namespaces))
	b.world.mu.Unlock()
	n := len(list.Items)
	b.res.Bars = append(b.res.Bars, Bar{What: "organization-rolebindings", Target: target, Value: float64(n), Unit: "RoleBindings", Met: n <= maxOrganizationBindings})
	return nil
}

// bindingsPerNamespace is how many RoleBindings the organization's members need in a namespace
// other than the home one: one per role in use, more when a role's subjects fill a binding.
func bindingsPerNamespace(o *orgModel) int {
	return len(membership.Plan(o.apiMembers(), nil).RoleBindings(newOrganization(o.name), []string{o.name + "-joined"}))
}

// joinMinimum is the fewest operator writes for a namespace joining o: its RoleBindings and the
// organization's status (status.namespaces). The namespace's quota objects would add to it; the
// harness's organizations have no plan.
func joinMinimum(o *orgModel) map[string]float64 {
	return map[string]float64{"create rolebindings": float64(bindingsPerNamespace(o)), "patch organizations/status": 1}
}

// leaveMinimum is the fewest operator writes for a namespace leaving o: deleting its RoleBindings
// and the organization's status.
func leaveMinimum(o *orgModel) map[string]float64 {
	return map[string]float64{"delete rolebindings": float64(bindingsPerNamespace(o)), "patch organizations/status": 1}
}

// joinStep labels each namespace into o (joining) or takes it out, in turn; after each it waits
// until the change has converged and the operator is quiet, so that each change's writes are its
// own. It records the phase, each change in it, and the target of writes per change.
func (b *bench) joinStep(ctx context.Context, o *orgModel, names []string, joining bool) error {
	b.world.mu.Lock()
	name, minimum := "leave", leaveMinimum(o)
	description := fmt.Sprintf("Take %d namespaces out of %s (remove the organization label), one at a time", len(names), o.name)
	if joining {
		name, minimum = "join", joinMinimum(o)
		description = fmt.Sprintf("Label %d new namespaces into %s (%d members), one at a time", len(names), o.name, o.liveMembers())
	}
	b.world.mu.Unlock()
	pr := b.begin(name, description, len(names), name)
	var changes []Change
	var windows [][2]time.Time
	var failed error
	converged, quiet := true, true
	total := 0.0
	for _, ns := range names {
		from := time.Now()
		b.moveNamespace(o, ns, joining)
		if err := b.labelNamespace(ctx, ns, o.name, joining); err != nil {
			failed = err
			break
		}
		took, pending := b.waitNamespace(ctx, o, ns, from)
		quietAt, settled := b.waitQuiet(ctx, settleTimeout)
		changes = append(changes, Change{What: ns, Seconds: round2(took.Seconds()), Converged: pending == ""})
		windows = append(windows, [2]time.Time{from, quietAt})
		total += took.Seconds()
		converged, quiet = converged && pending == "", quiet && settled
		if pending != "" {
			failed = fmt.Errorf("%s: namespace %s not converged after %v; pending: %s", name, ns, b.cfg.phaseTimeout, pending)
			break
		}
	}
	pr.p.Seconds, pr.p.Converged, pr.p.Settled = round2(total), converged && failed == nil, quiet
	end := time.Now()
	if len(windows) > 0 {
		end = windows[len(windows)-1][1]
	}
	p := b.finish(pr, end, false)
	p.setMinimum(minimum)
	p.Notes = append(p.Notes, "seconds is the sum of the changes' times to converge; after each, the harness waited until the operator was quiet")
	var times []float64
	most := 0
	for i := range changes {
		c := &changes[i]
		c.ByRequest = map[string]int{}
		for _, r := range p.records {
			if r.class() == classWrite && !r.At.Before(windows[i][0]) && r.At.Before(windows[i][1]) {
				c.ByRequest[r.key()]++
				c.Writes++
			}
		}
		times = append(times, c.Seconds)
		most = max(most, c.Writes)
	}
	p.Changes = changes
	p.TimeToReady = map[string]Percentiles{"namespace " + name: percentiles(times).round(round2)}
	goal := p.MinimumWritesPerUnit
	b.res.Bars = append(b.res.Bars, Bar{What: name,
		Target: fmt.Sprintf("writes per %s ≤ roles in use + the organization's status write (%.0f); most of one %s", name, goal, name),
		Value:  float64(most), Unit: "writes", Met: p.Converged && len(changes) == len(names) && float64(most) <= goal})
	return failed
}

// moveNamespace puts ns into o's namespaces in the world, or takes it out.
func (b *bench) moveNamespace(o *orgModel, ns string, joining bool) {
	b.world.mu.Lock()
	defer b.world.mu.Unlock()
	o.namespaces = slices.DeleteFunc(o.namespaces, func(n string) bool { return n == ns })
	if joining {
		o.namespaces = append(o.namespaces, ns)
		sort.Strings(o.namespaces)
	}
}

// labelNamespace sets the organization label on ns, or removes it, with a merge patch.
func (b *bench) labelNamespace(ctx context.Context, ns, org string, joining bool) error {
	var value any // null removes the label
	if joining {
		value = org
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{tenancyv1alpha1.OrganizationLabel: value}}})
	if err != nil {
		return err
	}
	cl := b.c.clients[agentCreate]
	var retries atomic.Int64
	return retry(ctx, time.Now().Add(b.cfg.phaseTimeout), &retries, func() error {
		return cl.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, data))
	})
}

// waitNamespace polls until ns's change has converged (namespacePending), from the change at
// from to the phase timeout. It returns how long that took, and what was still pending if it did
// not converge.
func (b *bench) waitNamespace(ctx context.Context, o *orgModel, ns string, from time.Time) (time.Duration, string) {
	deadline := from.Add(b.cfg.phaseTimeout)
	for {
		pending, err := b.namespacePending(ctx, o, ns)
		if err != nil {
			pending = err.Error()
		}
		if pending == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(from), pending
		}
		select {
		case <-ctx.Done():
		case <-time.After(b.poller.interval):
		}
	}
}

// namespacePending says what is not yet as the world has it, in one poll: the organization Ready
// for its generation with the world's namespaces, and the RoleBindings in ns listing exactly the
// members that should be bound there (none once ns has left).
func (b *bench) namespacePending(ctx context.Context, o *orgModel, ns string) (string, error) {
	org := &slimObject{}
	if err := b.poller.get(ctx, "/apis/tenancy.orgoperator.io/v1alpha1/organizations/"+o.name, org); err != nil {
		return "", err
	}
	selector := url.QueryEscape(tenancyv1alpha1.ManagedByLabel + "=" + tenancyv1alpha1.ManagedByValue)
	bindings := &rbacv1.RoleBindingList{}
	if err := b.poller.get(ctx, "/apis/rbac.authorization.k8s.io/v1/namespaces/"+ns+"/rolebindings?labelSelector="+selector, bindings); err != nil {
		return "", err
	}
	b.world.mu.Lock()
	defer b.world.mu.Unlock()
	var pending []string
	if !o.convergedIn(org) {
		pending = append(pending, fmt.Sprintf("organization %s (status.namespaces %v)", o.name, org.Status.Namespaces))
	}
	want := map[string][]string{}
	if slices.Contains(o.namespaces, ns) {
		want = o.wantedSubjects([]string{ns})
	}
	have := subjectsByRole(bindings.Items)
	for _, k := range differentSubjects(want, have) {
		pending = append(pending, fmt.Sprintf("RoleBindings of %s list %d subjects, want %d", k, len(have[k]), len(want[k])))
	}
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; !ok {
			pending = append(pending, fmt.Sprintf("RoleBindings of %s should not exist", k))
		}
	}
	return strings.Join(pending, "; "), nil
}

// verificationError fails the scenario when the verification after it found differences.
func (b *bench) verificationError(after string) error {
	problems := b.res.Verification[after]
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("verification after %s: %d differences, e.g. %s", after, len(problems), problems[0])
}

// changesMarkdown lists, for the phases that make their changes one at a time, each change's
// time to converge and the operator's writes for it.
func changesMarkdown(r *Result) string {
	var b strings.Builder
	for _, p := range r.Phases {
		if len(p.Changes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n### %s, one %s at a time\n\n| Namespace | Converged (s) | Operator writes | By request |\n|---|---:|---:|---|\n", p.Name, p.UnitName)
		for _, c := range p.Changes {
			t := fmt.Sprintf("%.2f", c.Seconds)
			if !c.Converged {
				t += " (not converged)"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", c.What, t, c.Writes, formatInts(c.ByRequest))
		}
	}
	return b.String()
}
