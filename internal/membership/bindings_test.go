package membership_test

import (
	"fmt"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
)

func member(admin bool, role tenancyv1alpha1.KubernetesRole, username string) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "alice"},
		Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email: "alice@acme.example", Username: username, Admin: admin, KubernetesRole: role,
		},
	}
}

var acme = &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1"}}

func TestDesiredRoleBindings(t *testing.T) {
	namespaces := []string{"acme", "acme-dev"}
	tests := []struct {
		name    string
		member  *tenancyv1alpha1.OrganizationMember
		want    []string // namespace/name=clusterRole
		subject string
	}{
		{"view member", member(false, tenancyv1alpha1.KubernetesRoleView, ""),
			[]string{"acme/org-member-alice=view", "acme-dev/org-member-alice=view"}, "alice@acme.example"},
		{"an empty role means View", member(false, "", ""),
			[]string{"acme/org-member-alice=view", "acme-dev/org-member-alice=view"}, "alice@acme.example"},
		{"edit member with a username", member(false, tenancyv1alpha1.KubernetesRoleEdit, "alice"),
			[]string{"acme/org-member-alice=edit", "acme-dev/org-member-alice=edit"}, "alice"},
		{"admin with role Admin", member(true, tenancyv1alpha1.KubernetesRoleAdmin, ""),
			[]string{"acme/org-admin-alice=org-operator-organization-admin", "acme/org-member-alice=admin", "acme-dev/org-member-alice=admin"}, "alice@acme.example"},
		{"role None binds nothing", member(false, tenancyv1alpha1.KubernetesRoleNone, ""), []string{}, ""},
		{"admin with role None keeps only the organization-admin binding", member(true, tenancyv1alpha1.KubernetesRoleNone, ""),
			[]string{"acme/org-admin-alice=org-operator-organization-admin"}, "alice@acme.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := membership.DesiredRoleBindings(tt.member, acme, namespaces)
			keys := make([]string, 0, len(got))
			for _, rb := range got {
				keys = append(keys, fmt.Sprintf("%s/%s=%s", rb.Namespace, rb.Name, rb.RoleRef.Name))
				if len(rb.Subjects) != 1 || rb.Subjects[0].Name != tt.subject || rb.Subjects[0].Kind != rbacv1.UserKind {
					t.Errorf("%s: subjects %+v, want user %s", rb.Name, rb.Subjects, tt.subject)
				}
				if rb.Labels[tenancyv1alpha1.MemberLabel] != "alice" || rb.Labels[tenancyv1alpha1.OrganizationLabel] != "acme" {
					t.Errorf("%s: labels %v", rb.Name, rb.Labels)
				}
				if len(rb.OwnerReferences) != 1 || rb.OwnerReferences[0].UID != acme.UID {
					t.Errorf("%s: owner references %+v", rb.Name, rb.OwnerReferences)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(tt.want) {
				t.Errorf("bindings = %v, want %v", keys, tt.want)
			}
		})
	}
}

// TestOnlyBindableRoles guards the operator's RBAC: it may bind only these ClusterRoles.
func TestOnlyBindableRoles(t *testing.T) {
	allowed := map[string]bool{"admin": true, "edit": true, "view": true, membership.OrganizationAdminClusterRole: true}
	for _, role := range []tenancyv1alpha1.KubernetesRole{"Admin", "Edit", "View", "None", "", "cluster-admin", "Owner"} {
		for _, admin := range []bool{false, true} {
			m := member(admin, role, "")
			for _, rb := range membership.DesiredRoleBindings(m, acme, []string{"acme"}) {
				if !allowed[rb.RoleRef.Name] || rb.RoleRef.Kind != "ClusterRole" {
					t.Errorf("role %q admin=%v binds %s %s", role, admin, rb.RoleRef.Kind, rb.RoleRef.Name)
				}
			}
		}
	}
}

func BenchmarkDesiredRoleBindings(b *testing.B) {
	for _, n := range []int{3, 100} {
		namespaces := make([]string, n)
		for i := range namespaces {
			namespaces[i] = fmt.Sprintf("acme-%03d", i)
		}
		m := member(true, tenancyv1alpha1.KubernetesRoleEdit, "")
		b.Run(fmt.Sprintf("namespaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				membership.DesiredRoleBindings(m, acme, namespaces)
			}
		})
	}
}
