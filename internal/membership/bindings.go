// Package membership computes the RoleBindings that give an organization's members their access:
// one per namespace and ClusterRole, listing every member that holds that role there.
package membership

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// OrganizationAdminClusterRole lets organization admins manage the members of their organization.
// It is bound, in the home namespace only, to members with admin: true.
const OrganizationAdminClusterRole = "org-operator-organization-admin"

// MaxSubjects is the most subjects one RoleBinding lists; more spill into further bindings of the
// same role, so that no object grows with the organization.
const MaxSubjects = 1000

// ClusterRoleFor returns the built-in ClusterRole a KubernetesRole binds, and false for None.
func ClusterRoleFor(role tenancyv1alpha1.KubernetesRole) (string, bool) {
	switch role {
	case tenancyv1alpha1.KubernetesRoleAdmin:
		return "admin", true
	case tenancyv1alpha1.KubernetesRoleEdit:
		return "edit", true
	case tenancyv1alpha1.KubernetesRoleView, "":
		return "view", true
	default:
		return "", false
	}
}

// Rank orders KubernetesRoles by the access they grant (None < View < Edit < Admin), as RBAC's
// escalation check compares rights: nobody may grant a role above their own.
func Rank(role tenancyv1alpha1.KubernetesRole) int {
	switch role {
	case tenancyv1alpha1.KubernetesRoleAdmin:
		return 3
	case tenancyv1alpha1.KubernetesRoleEdit:
		return 2
	case tenancyv1alpha1.KubernetesRoleView, "":
		return 1
	default:
		return 0
	}
}

// Subject is the RBAC subject a member is bound as: its group, its service account, or the user
// named by its username, or by its email when none is set.
func Subject(m *tenancyv1alpha1.OrganizationMember) rbacv1.Subject {
	switch {
	case m.Spec.Group != "":
		return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: m.Spec.Group}
	case m.Spec.ServiceAccount != nil:
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: m.Spec.ServiceAccount.Namespace, Name: m.Spec.ServiceAccount.Name}
	}
	return UserSubject(m.Spec.Email, m.Spec.Username)
}

// UserSubject is the RBAC user named by username, or by email when username is empty.
func UserSubject(email, username string) rbacv1.Subject {
	if username == "" {
		username = email
	}
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: username}
}

// SubjectString writes a subject as a member's status.subject says it: User:<name>,
// Group:<name> or ServiceAccount:<namespace>/<name>.
func SubjectString(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return s.Kind + ":" + s.Namespace + "/" + s.Name
	}
	return s.Kind + ":" + s.Name
}

// Matches says whether a request by user acts as subject: the user itself, one of its groups,
// or the service account it authenticates as.
func Matches(subject rbacv1.Subject, user authenticationv1.UserInfo) bool {
	switch subject.Kind {
	case rbacv1.UserKind:
		return user.Username == subject.Name
	case rbacv1.GroupKind:
		return slices.Contains(user.Groups, subject.Name)
	case rbacv1.ServiceAccountKind:
		return user.Username == serviceAccountUsername(subject.Namespace, subject.Name)
	}
	return false
}

// serviceAccountUsername is the user name the API server gives a service account's tokens.
func serviceAccountUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ReaderRoleName names the ClusterRole, and its binding, that let an organization's members read
// that organization and no other.
func ReaderRoleName(org string) string { return "org-operator:organization:" + org }

// RoleBindingName names the shard-th RoleBinding of clusterRole in a namespace: the first is
// org-operator:<clusterRole>, the next org-operator:<clusterRole>:2 and so on.
func RoleBindingName(clusterRole string, shard int) string {
	name := "org-operator:" + strings.TrimPrefix(clusterRole, "org-operator-")
	if shard > 0 {
		name += ":" + strconv.Itoa(shard+1)
	}
	return name
}

// shardOf parses a name made by RoleBindingName for clusterRole, and says whether it is one.
func shardOf(name, clusterRole string) (int, bool) {
	base := RoleBindingName(clusterRole, 0)
	if name == base {
		return 0, true
	}
	suffix, ok := strings.CutPrefix(name, base+":")
	n, err := strconv.Atoi(suffix)
	if !ok || err != nil || n < 2 || strconv.Itoa(n) != suffix {
		return 0, false
	}
	return n - 1, true
}

// IsLegacy says whether rb is a per-member RoleBinding of the model before aggregated bindings:
// those carry the member's name in MemberLabel.
func IsLegacy(rb *rbacv1.RoleBinding) bool {
	return rb.Labels[tenancyv1alpha1.MemberLabel] != ""
}

// Grant is one ClusterRole bound in the organization, and to whom.
type Grant struct {
	ClusterRole string
	// Home: bound in the home namespace only; otherwise in every namespace of the organization.
	Home bool
	// Shards are the subjects of each RoleBinding of the role, sorted within each; shard i is
	// the binding RoleBindingName(ClusterRole, i).
	Shards [][]rbacv1.Subject
}

// Access is what an organization's members are bound to: a Grant per ClusterRole in use.
type Access []Grant

// grantOrder lists the ClusterRoles an organization binds, in the order their bindings are made.
var grantOrder = []struct {
	clusterRole string
	home        bool
}{{"admin", false}, {"edit", false}, {"view", false}, {OrganizationAdminClusterRole, true}}

// Plan computes the organization's access from its members (those being deleted are left out)
// and the RoleBindings it has in its home namespace now. A subject already listed in a binding
// stays in it, and new subjects fill the bindings with room, so adding or removing a member
// rewrites one binding per namespace and nobody ever moves between bindings.
func Plan(members []tenancyv1alpha1.OrganizationMember, current []rbacv1.RoleBinding) Access {
	return plan(members, nil, true, current, MaxSubjects)
}

// PlanProject computes the access in one project's namespace, where roles (by member name) take
// the place of the members' kubernetesRole, from the RoleBindings that namespace has now. It
// grants no organization admin role: that is bound in the home namespace only.
func PlanProject(members []tenancyv1alpha1.OrganizationMember, roles map[string]tenancyv1alpha1.KubernetesRole, current []rbacv1.RoleBinding) Access {
	return plan(members, roles, false, current, MaxSubjects)
}

// RoleIn is the role member holds where roles (a project's, by member name; nil elsewhere) apply.
func RoleIn(member *tenancyv1alpha1.OrganizationMember, roles map[string]tenancyv1alpha1.KubernetesRole) tenancyv1alpha1.KubernetesRole {
	if role, ok := roles[member.Name]; ok {
		return role
	}
	return member.Spec.KubernetesRole
}

func plan(members []tenancyv1alpha1.OrganizationMember, roles map[string]tenancyv1alpha1.KubernetesRole, withHome bool,
	current []rbacv1.RoleBinding, maxSubjects int) Access {
	var access Access
	for _, g := range grantOrder {
		if g.home && !withHome {
			continue
		}
		want := map[rbacv1.Subject]bool{}
		for i := range members {
			m := &members[i]
			if !m.DeletionTimestamp.IsZero() {
				continue
			}
			if role, ok := ClusterRoleFor(RoleIn(m, roles)); (g.home && m.Spec.Admin) || (!g.home && ok && role == g.clusterRole) {
				want[Subject(m)] = true
			}
		}
		if len(want) == 0 {
			continue
		}
		var shards [][]rbacv1.Subject
		for i := range current {
			rb := &current[i]
			shard, ok := shardOf(rb.Name, g.clusterRole)
			if !ok || rb.RoleRef.Name != g.clusterRole {
				continue
			}
			for len(shards) <= shard {
				shards = append(shards, nil)
			}
			for _, s := range rb.Subjects {
				if want[s] && len(shards[shard]) < maxSubjects {
					shards[shard] = append(shards[shard], s)
					delete(want, s)
				}
			}
		}
		newcomers := make([]rbacv1.Subject, 0, len(want))
		for s := range want {
			newcomers = append(newcomers, s)
		}
		slices.SortFunc(newcomers, CompareSubjects)
		for i := 0; len(newcomers) > 0; i++ {
			if i == len(shards) {
				shards = append(shards, nil)
			}
			n := min(maxSubjects-len(shards[i]), len(newcomers))
			shards[i] = append(shards[i], newcomers[:n]...)
			newcomers = newcomers[n:]
		}
		for i := range shards {
			slices.SortFunc(shards[i], CompareSubjects)
		}
		access = append(access, Grant{ClusterRole: g.clusterRole, Home: g.home, Shards: shards})
	}
	return access
}

// CompareSubjects orders subjects by kind, namespace and name.
func CompareSubjects(a, b rbacv1.Subject) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// RoleBindings returns the RoleBindings that carry access in an organization's namespaces (the
// home namespace, named after it, among them), owned by the organization so that they go with it.
// Empty shards have no binding. The result is sorted by namespace, then name.
func (a Access) RoleBindings(org *tenancyv1alpha1.Organization, namespaces []string) []rbacv1.RoleBinding {
	labels := map[string]string{
		tenancyv1alpha1.OrganizationLabel: org.Name,
		tenancyv1alpha1.ManagedByLabel:    tenancyv1alpha1.ManagedByValue,
	}
	owner := metav1.OwnerReference{
		APIVersion: tenancyv1alpha1.GroupVersion.String(), Kind: "Organization", Name: org.Name, UID: org.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	var out []rbacv1.RoleBinding
	for _, ns := range namespaces {
		for _, g := range a {
			if g.Home && ns != org.Name {
				continue
			}
			for shard, subjects := range g.Shards {
				if len(subjects) == 0 {
					continue
				}
				out = append(out, rbacv1.RoleBinding{
					ObjectMeta: metav1.ObjectMeta{
						Namespace: ns, Name: RoleBindingName(g.ClusterRole, shard), Labels: labels,
						OwnerReferences: []metav1.OwnerReference{owner},
					},
					Subjects: subjects,
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: g.ClusterRole},
				})
			}
		}
	}
	slices.SortFunc(out, func(a, b rbacv1.RoleBinding) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Of returns where member is bound, for its status: each ClusterRole, the namespaces it covers
// and the RoleBinding that lists it there.
func (a Access) Of(member *tenancyv1alpha1.OrganizationMember) []tenancyv1alpha1.MemberAccess {
	var out []tenancyv1alpha1.MemberAccess
	for _, g := range a {
		if g.Home && !member.Spec.Admin {
			continue
		}
		if name, ok := g.bindingOf(member, member.Spec.KubernetesRole); ok {
			scope := tenancyv1alpha1.AccessScopeOrganization
			if g.Home {
				scope = tenancyv1alpha1.AccessScopeHome
			}
			out = append(out, tenancyv1alpha1.MemberAccess{ClusterRole: g.ClusterRole, Namespaces: scope, RoleBinding: name})
		}
	}
	return out
}

// BindingOf returns the RoleBinding that lists member with role in this access, "" when none does
// (role None, or a member not planned yet).
func (a Access) BindingOf(member *tenancyv1alpha1.OrganizationMember, role tenancyv1alpha1.KubernetesRole) string {
	for _, g := range a {
		if g.Home {
			continue
		}
		if name, ok := g.bindingOf(member, role); ok {
			return name
		}
	}
	return ""
}

func (g Grant) bindingOf(member *tenancyv1alpha1.OrganizationMember, role tenancyv1alpha1.KubernetesRole) (string, bool) {
	if clusterRole, ok := ClusterRoleFor(role); !g.Home && (!ok || clusterRole != g.ClusterRole) {
		return "", false
	}
	subject := Subject(member)
	for shard, subjects := range g.Shards {
		if _, found := slices.BinarySearchFunc(subjects, subject, CompareSubjects); found {
			return RoleBindingName(g.ClusterRole, shard), true
		}
	}
	return "", false
}

// Key identifies a RoleBinding by namespace and name.
func Key(rb *rbacv1.RoleBinding) string { return rb.Namespace + "/" + rb.Name }
