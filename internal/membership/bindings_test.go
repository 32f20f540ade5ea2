package membership

import (
	"fmt"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

func member(name string, admin bool, role tenancyv1alpha1.KubernetesRole) tenancyv1alpha1.OrganizationMember {
	return tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: name},
		Spec:       tenancyv1alpha1.OrganizationMemberSpec{Email: name + "@acme.example", Admin: admin, KubernetesRole: role},
	}
}

var acme = &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1"}}

// summary is namespace/name=clusterRole:subjects for each binding.
func summary(bindings []rbacv1.RoleBinding) []string {
	out := make([]string, 0, len(bindings))
	for _, rb := range bindings {
		names := make([]string, 0, len(rb.Subjects))
		for _, s := range rb.Subjects {
			names = append(names, s.Name)
		}
		out = append(out, fmt.Sprintf("%s/%s=%s:%v", rb.Namespace, rb.Name, rb.RoleRef.Name, names))
	}
	return out
}

func TestRoleBindingsAreOnePerNamespaceAndRole(t *testing.T) {
	members := []tenancyv1alpha1.OrganizationMember{
		member("alice", true, tenancyv1alpha1.KubernetesRoleAdmin),
		member("bob", false, tenancyv1alpha1.KubernetesRoleView),
		member("carol", false, ""), // defaults to View
		member("dave", true, tenancyv1alpha1.KubernetesRoleNone),
		member("erin", false, tenancyv1alpha1.KubernetesRoleNone),
	}
	gone := member("frank", true, tenancyv1alpha1.KubernetesRoleEdit)
	gone.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	members = append(members, gone)

	got := summary(Plan(members, nil).RoleBindings(acme, []string{"acme", "acme-dev"}))
	want := []string{
		"acme/org-operator:admin=admin:[alice@acme.example]",
		"acme/org-operator:organization-admin=org-operator-organization-admin:[alice@acme.example dave@acme.example]",
		"acme/org-operator:view=view:[bob@acme.example carol@acme.example]",
		"acme-dev/org-operator:admin=admin:[alice@acme.example]",
		"acme-dev/org-operator:view=view:[bob@acme.example carol@acme.example]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bindings:\n got %q\nwant %q", got, want)
	}
	for _, rb := range Plan(members, nil).RoleBindings(acme, []string{"acme"}) {
		if !metav1.IsControlledBy(&rb, acme) || rb.Labels[tenancyv1alpha1.OrganizationLabel] != "acme" {
			t.Errorf("%s is not controlled and labelled by its organization: %v %v", rb.Name, rb.OwnerReferences, rb.Labels)
		}
	}
	if got := Plan(nil, nil).RoleBindings(acme, []string{"acme"}); len(got) != 0 {
		t.Errorf("an organization without members has bindings: %v", summary(got))
	}
}

func TestAccessOfAMember(t *testing.T) {
	members := []tenancyv1alpha1.OrganizationMember{member("alice", true, tenancyv1alpha1.KubernetesRoleEdit), member("erin", false, tenancyv1alpha1.KubernetesRoleNone)}
	access := Plan(members, nil)
	got := access.Of(&members[0])
	want := []tenancyv1alpha1.MemberAccess{
		{ClusterRole: "edit", Namespaces: tenancyv1alpha1.AccessScopeOrganization, RoleBinding: "org-operator:edit"},
		{ClusterRole: OrganizationAdminClusterRole, Namespaces: tenancyv1alpha1.AccessScopeHome, RoleBinding: "org-operator:organization-admin"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("access of alice: got %v, want %v", got, want)
	}
	if got := access.Of(&members[1]); len(got) != 0 {
		t.Errorf("a member with role None and no admin flag has access %v", got)
	}
}

// viewers returns n View members named m0000...
func viewers(from, to int) []tenancyv1alpha1.OrganizationMember {
	var out []tenancyv1alpha1.OrganizationMember
	for i := from; i < to; i++ {
		out = append(out, member(fmt.Sprintf("m%04d", i), false, tenancyv1alpha1.KubernetesRoleView))
	}
	return out
}

func shardsOf(bindings []rbacv1.RoleBinding) map[string]string {
	out := map[string]string{} // subject -> binding
	for _, rb := range bindings {
		for _, s := range rb.Subjects {
			out[s.Name] = rb.Name
		}
	}
	return out
}

func TestLargeOrganizationsSpillIntoFurtherBindingsAndNobodyMoves(t *testing.T) {
	const max = 3
	first := plan(viewers(0, 7), nil, true, nil, max).RoleBindings(acme, []string{"acme"})
	if got := summary(first); !slices.Equal(got, []string{
		"acme/org-operator:view=view:[m0000@acme.example m0001@acme.example m0002@acme.example]",
		"acme/org-operator:view:2=view:[m0003@acme.example m0004@acme.example m0005@acme.example]",
		"acme/org-operator:view:3=view:[m0006@acme.example]",
	}) {
		t.Fatalf("7 viewers, 3 per binding: %q", got)
	}

	// m0001 and m0004 leave, m0007..m0009 join: those who stay keep their binding, newcomers
	// fill the free places first.
	members := slices.DeleteFunc(viewers(0, 10), func(m tenancyv1alpha1.OrganizationMember) bool {
		return m.Name == "m0001" || m.Name == "m0004"
	})
	second := plan(members, nil, true, first, max).RoleBindings(acme, []string{"acme"})
	before, after := shardsOf(first), shardsOf(second)
	for subject, binding := range before {
		if now, ok := after[subject]; ok && now != binding {
			t.Errorf("%s moved from %s to %s", subject, binding, now)
		}
	}
	for _, rb := range second {
		if len(rb.Subjects) > max {
			t.Errorf("%s lists %d subjects, more than %d", rb.Name, len(rb.Subjects), max)
		}
	}
	if len(after) != 8 || len(second) != 3 {
		t.Errorf("8 viewers make %d bindings listing %d subjects: %q", len(second), len(after), summary(second))
	}

	// A binding someone stuffed past the limit is cut back to it.
	stuffed := first[0].DeepCopy()
	for _, m := range viewers(3, 7) {
		stuffed.Subjects = append(stuffed.Subjects, Subject(&m))
	}
	for _, rb := range plan(viewers(0, 7), nil, true, []rbacv1.RoleBinding{*stuffed}, max).RoleBindings(acme, []string{"acme"}) {
		if len(rb.Subjects) > max {
			t.Errorf("%s lists %d subjects, more than %d", rb.Name, len(rb.Subjects), max)
		}
	}
}

func TestRoleBindingNames(t *testing.T) {
	for _, tt := range []struct {
		clusterRole string
		shard       int
		name        string
	}{{"view", 0, "org-operator:view"}, {"view", 1, "org-operator:view:2"}, {OrganizationAdminClusterRole, 0, "org-operator:organization-admin"}} {
		if got := RoleBindingName(tt.clusterRole, tt.shard); got != tt.name {
			t.Errorf("RoleBindingName(%s, %d) = %s, want %s", tt.clusterRole, tt.shard, got, tt.name)
		}
		if shard, ok := shardOf(tt.name, tt.clusterRole); !ok || shard != tt.shard {
			t.Errorf("shardOf(%s) = %d, %v", tt.name, shard, ok)
		}
	}
	for _, name := range []string{"org-operator:view:1", "org-operator:view:02", "org-operator:view:x", "org-operator:viewer", "org-member-alice"} {
		if _, ok := shardOf(name, "view"); ok {
			t.Errorf("shardOf(%s) accepted a name RoleBindingName does not make", name)
		}
	}
}

func TestRank(t *testing.T) {
	if !(Rank(tenancyv1alpha1.KubernetesRoleNone) < Rank(tenancyv1alpha1.KubernetesRoleView) &&
		Rank(tenancyv1alpha1.KubernetesRoleView) == Rank("") &&
		Rank(tenancyv1alpha1.KubernetesRoleView) < Rank(tenancyv1alpha1.KubernetesRoleEdit) &&
		Rank(tenancyv1alpha1.KubernetesRoleEdit) < Rank(tenancyv1alpha1.KubernetesRoleAdmin)) {
		t.Error("Rank does not order None < View < Edit < Admin")
	}
}

// TestOnlyBindableRoles guards the operator's RBAC: it may bind only these ClusterRoles.
func TestOnlyBindableRoles(t *testing.T) {
	allowed := map[string]bool{"admin": true, "edit": true, "view": true, OrganizationAdminClusterRole: true}
	var members []tenancyv1alpha1.OrganizationMember
	for i, role := range []tenancyv1alpha1.KubernetesRole{"Admin", "Edit", "View", "None", "", "cluster-admin", "Owner"} {
		for _, admin := range []bool{false, true} {
			members = append(members, member(fmt.Sprintf("m%d-%v", i, admin), admin, role))
		}
	}
	for _, rb := range Plan(members, nil).RoleBindings(acme, []string{"acme", "acme-dev"}) {
		if !allowed[rb.RoleRef.Name] || rb.RoleRef.Kind != "ClusterRole" {
			t.Errorf("%s binds %s %s", rb.Name, rb.RoleRef.Kind, rb.RoleRef.Name)
		}
	}
}

// BenchmarkPlan measures a large organization's reconcile: planning its bindings from the
// current ones and making them for every namespace.
func BenchmarkPlan(b *testing.B) {
	namespaces := make([]string, 20)
	for i := range namespaces {
		namespaces[i] = fmt.Sprintf("acme-%03d", i)
	}
	members := viewers(0, 1000)
	current := Plan(members, nil).RoleBindings(acme, []string{"acme"})
	b.ReportAllocs()
	for b.Loop() {
		Plan(members, current).RoleBindings(acme, namespaces)
	}
}

func TestProjectRolesTakeThePlaceOfKubernetesRole(t *testing.T) {
	members := []tenancyv1alpha1.OrganizationMember{
		member("alice", true, tenancyv1alpha1.KubernetesRoleView),
		member("bob", false, tenancyv1alpha1.KubernetesRoleEdit),
		member("carol", false, tenancyv1alpha1.KubernetesRoleView),
	}
	roles := map[string]tenancyv1alpha1.KubernetesRole{
		"alice":  tenancyv1alpha1.KubernetesRoleAdmin, // higher here
		"bob":    tenancyv1alpha1.KubernetesRoleNone,  // no access here
		"nobody": tenancyv1alpha1.KubernetesRoleAdmin, // names no member: binds nothing
	}
	access := PlanProject(members, roles, nil)
	got := summary(access.RoleBindings(acme, []string{"acme-web"}))
	want := []string{
		"acme-web/org-operator:admin=admin:[alice@acme.example]",
		"acme-web/org-operator:view=view:[carol@acme.example]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("bindings:\n got %q\nwant %q", got, want)
	}
	// Even in a project named like the home namespace, the organization admin role is not bound.
	for _, rb := range access.RoleBindings(acme, []string{"acme"}) {
		if rb.RoleRef.Name == OrganizationAdminClusterRole {
			t.Fatalf("a project's access binds %s", rb.RoleRef.Name)
		}
	}
	for name, want := range map[string]string{"alice": "org-operator:admin", "bob": "", "carol": "org-operator:view"} {
		m := members[slices.IndexFunc(members, func(m tenancyv1alpha1.OrganizationMember) bool { return m.Name == name })]
		if got := access.BindingOf(&m, RoleIn(&m, roles)); got != want {
			t.Errorf("%s is listed in %q, want %q", name, got, want)
		}
	}
}
