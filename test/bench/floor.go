package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/patch"
)

const (
	// floorWriters is how many writers issue the floor's writes at once.
	floorWriters = 24
	// floorTarget is the converge time the project aims at, as a multiple of the floor.
	floorTarget = 1.3
	agentFloor  = "org-operator-bench/floor"
)

// Floor is the converge scenario's writes made as fast as this machine's control plane takes
// them, with no operator: the harness's creates plus the operator's fewest writes
// (convergeMinimum), issued by floorWriters writers without a client-side rate limit.
type Floor struct {
	Writers         int            `json:"writers"`
	Writes          int            `json:"writes"`
	Seconds         float64        `json:"seconds"`
	WritesPerSecond float64        `json:"writesPerSecond"`
	ByRequest       map[string]int `json:"byRequest"`
}

// measureFloor starts a control plane of its own (as the run's, without webhooks), measures the
// floor on it and stops it.
func measureFloor(ctx context.Context, cfg *config, workDir string) (*Floor, error) {
	dir := filepath.Join(workDir, "floor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf("Floor: starting a control plane of its own")
	cp, err := startControlPlane(cfg, dir, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			logf("Floor: stopping its control plane: %v", err)
		}
	}()
	user, err := cp.AddUser(benchUser, "system:masters")
	if err != nil {
		return nil, err
	}
	counter := newRequestCounter()
	rc := rest.CopyConfig(user)
	rc.UserAgent = agentFloor
	rc.QPS = -1
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, counter: counter} })
	cl, err := client.New(rc, client.Options{Scheme: benchScheme()})
	if err != nil {
		return nil, err
	}
	// Discovery of the kinds it writes, before the clock starts.
	for _, obj := range []client.Object{&tenancyv1alpha1.Organization{}, &tenancyv1alpha1.OrganizationMember{},
		&corev1.Namespace{}, &rbacv1.RoleBinding{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}} {
		gvk, err := cl.GroupVersionKindFor(obj)
		if err != nil {
			return nil, err
		}
		if _, err := cl.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, err
		}
	}

	before := counter.snapshot()
	start := time.Now()
	// Writers left over when there are fewer organizations than writers share an organization's
	// independent writes, as the operator's reconcile does.
	within := max(1, floorWriters/cfg.orgs)
	err = parallel(ctx, floorWriters, cfg.orgs, func(ctx context.Context, i int) error {
		return floorOrganization(ctx, cl, newOrgModel(cfg, i), within)
	})
	elapsed := time.Since(start).Seconds()
	if err != nil {
		return nil, err
	}
	f := &Floor{Writers: floorWriters, Seconds: round2(elapsed), ByRequest: map[string]int{}}
	for k, n := range diffCounts(before, counter.snapshot()) {
		if isWriteKey(k) {
			f.ByRequest[k] = n
			f.Writes += n
		}
	}
	f.WritesPerSecond = round1(float64(f.Writes) / elapsed)
	if diff := floorDifferences(cfg, f.ByRequest); len(diff) > 0 {
		return nil, fmt.Errorf("the floor's writes are not the converge scenario's: %s", strings.Join(diff, "; "))
	}
	logf("Floor: %d writes in %.2f s (%.0f writes/s)", f.Writes, f.Seconds, f.WritesPerSecond)
	return f, nil
}

// floorDifferences compares the floor's writes with the harness's creates plus the operator's
// fewest writes for cfg's organizations.
func floorDifferences(cfg *config, got map[string]int) []string {
	want := map[string]int{
		"create organizations":       cfg.orgs,
		"create namespaces":          cfg.orgs * cfg.extraNamespaces,
		"create organizationmembers": cfg.orgs * cfg.members,
	}
	for k, perOrg := range convergeMinimum(cfg) {
		want[k] += int(math.Round(perOrg * float64(cfg.orgs)))
	}
	var diff []string
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			diff = append(diff, fmt.Sprintf("%s: %d, want %d", k, got[k], want[k]))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s: %d, want none", k, got[k]))
		}
	}
	return diff
}

// floorOrganization makes, in the order they depend on each other, the writes that bring one
// organization of the converge scenario to converged: the harness's and the operator's. Writes
// that do not depend on each other (namespaces, members, RoleBindings, member statuses) go on
// within writers at once.
func floorOrganization(ctx context.Context, cl client.Client, o *orgModel, within int) error {
	now := metav1.Now()
	org := newOrganization(o.name)
	if err := cl.Create(ctx, org); err != nil { // harness
		return fmt.Errorf("creating organization %s: %w", o.name, err)
	}
	if err := patch.AddFinalizer(ctx, cl, org, tenancyv1alpha1.OrganizationFinalizer); err != nil {
		return err
	}
	labels := map[string]string{tenancyv1alpha1.OrganizationLabel: o.name, tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}
	owner := []metav1.OwnerReference{{APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "Organization",
		Name: org.Name, UID: org.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	home := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: labels, OwnerReferences: owner}}
	if err := cl.Create(ctx, home); err != nil {
		return fmt.Errorf("creating namespace %s: %w", home.Name, err)
	}
	extra := slices.DeleteFunc(slices.Clone(o.namespaces), func(ns string) bool { return ns == o.name })
	err := parallel(ctx, within, len(extra), func(ctx context.Context, i int) error {
		if err := cl.Create(ctx, newNamespace(extra[i], o.name)); err != nil { // harness
			return fmt.Errorf("creating namespace %s: %w", extra[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	names := sortedKeys(o.members)
	members := make([]tenancyv1alpha1.OrganizationMember, len(names))
	err = parallel(ctx, within, len(names), func(ctx context.Context, i int) error {
		member := newMember(o.name, o.members[names[i]])
		if err := cl.Create(ctx, member); err != nil { // harness
			return fmt.Errorf("creating member %s/%s: %w", o.name, names[i], err)
		}
		if err := patch.AddFinalizer(ctx, cl, member, tenancyv1alpha1.MemberFinalizer); err != nil {
			return err
		}
		members[i] = *member
		return nil
	})
	if err != nil {
		return err
	}
	subjects := make([]rbacv1.Subject, len(members))
	admins := 0
	for i := range members {
		subjects[i] = membership.Subject(&members[i])
		if members[i].Spec.Admin {
			admins++
		}
	}
	access := membership.Plan(members, nil)
	bindings := access.RoleBindings(org, o.namespaces)
	err = parallel(ctx, within, len(bindings), func(ctx context.Context, i int) error {
		if err := cl.Create(ctx, &bindings[i]); err != nil {
			return fmt.Errorf("creating rolebinding %s: %w", membership.Key(&bindings[i]), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(ctx, within, len(members), func(ctx context.Context, i int) error {
		member := &members[i]
		base := client.MergeFrom(member.DeepCopy())
		member.Status = tenancyv1alpha1.OrganizationMemberStatus{
			ObservedGeneration: member.Generation, Organization: o.name, Access: access.Of(member), JoinedAt: &now,
		}
		meta.SetStatusCondition(&member.Status.Conditions, readyCondition(member.Generation, tenancyv1alpha1.RoleBindingsAppliedReason, now))
		if err := cl.Status().Patch(ctx, member, base); err != nil {
			return fmt.Errorf("patching the status of member %s: %w", client.ObjectKeyFromObject(member), err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: membership.ReaderRoleName(o.name), Labels: labels, OwnerReferences: owner},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{tenancyv1alpha1.GroupVersion.Group}, Resources: []string{"organizations"},
			ResourceNames: []string{o.name}, Verbs: []string{"get", "watch"}}},
	}
	if err := cl.Create(ctx, role); err != nil {
		return fmt.Errorf("creating clusterrole %s: %w", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Labels: labels, OwnerReferences: owner},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   subjects,
	}
	if err := cl.Create(ctx, binding); err != nil {
		return fmt.Errorf("creating clusterrolebinding %s: %w", binding.Name, err)
	}

	base := client.MergeFrom(org.DeepCopy())
	org.Status = tenancyv1alpha1.OrganizationStatus{
		ObservedGeneration: org.Generation, HomeNamespace: o.name, Namespaces: o.namespaces,
		MemberCount: int32(len(o.members)), AdminCount: int32(admins),
	}
	meta.SetStatusCondition(&org.Status.Conditions, readyCondition(org.Generation, tenancyv1alpha1.ReconciledReason, now))
	if err := cl.Status().Patch(ctx, org, base); err != nil {
		return fmt.Errorf("patching the status of organization %s: %w", o.name, err)
	}
	return nil
}

func readyCondition(generation int64, reason string, at metav1.Time) metav1.Condition {
	return metav1.Condition{Type: tenancyv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, ObservedGeneration: generation,
		LastTransitionTime: at, Reason: reason, Message: "Ready"}
}
