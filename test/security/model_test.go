package security_test

import (
	"context"
	"fmt"
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/test/testenv"
)

// outcome is what an attempt must get: allowed, or denied with a message containing message.
type outcome struct {
	allowed bool
	message string
}

var allowed = outcome{allowed: true}

func denied(message string) outcome { return outcome{message: message} }

// rbac is the API server's own refusal of a verb on a resource.
func rbac(verb, resource string) outcome {
	return denied(fmt.Sprintf("cannot %s resource %q", verb, resource))
}

var (
	// escalation is RBAC refusing a binding or role that grants more than the requester holds.
	escalation = denied("is attempting to grant RBAC permissions not currently held")
	// guard is the operator's admission policy refusing a write beyond organization namespaces and
	// its own reader objects.
	guard = denied("ValidatingAdmissionPolicy")
)

func notAdminOf(org string) outcome { return denied("is not an admin of organization " + org) }

// projectLabel is the namespace webhook refusing a tenant's change of the project label.
var projectLabel = denied("only platform admins may set, change or remove the label that makes a namespace a project's")

func projectRole(name string, role tenancyv1alpha1.KubernetesRole) tenancyv1alpha1.ProjectMember {
	return tenancyv1alpha1.ProjectMember{Name: name, KubernetesRole: role}
}

// rule is one thing to attempt, and what each actor tried gets. Every write is a server-side dry
// run, which passes through RBAC, admission policies and webhooks exactly as a real one does and
// stores nothing, so each attempt starts from the same world.
type rule struct {
	what   string
	do     func(ctx context.Context, c client.Client) error
	expect map[string]outcome
}

var dry = client.DryRunAll

func getObj(key client.ObjectKey, obj client.Object) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error { return c.Get(ctx, key, obj) }
}

func list(l client.ObjectList, opts ...client.ListOption) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error { return c.List(ctx, l, opts...) }
}

func createObj(obj client.Object) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error {
		return c.Create(ctx, obj.DeepCopyObject().(client.Object), dry)
	}
}

func deleteObj(obj client.Object) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error { return c.Delete(ctx, obj, dry) }
}

// update reads obj as the platform admin, changes it and writes it back as the actor.
func update[T client.Object](key client.ObjectKey, obj T, change func(T)) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error {
		o := obj.DeepCopyObject().(T)
		if err := admin.Get(ctx, key, o); err != nil {
			return err
		}
		change(o)
		return c.Update(ctx, o, dry)
	}
}

// mergePatch sends a JSON merge patch as the actor.
func mergePatch(obj client.Object, patch string) func(context.Context, client.Client) error {
	return func(ctx context.Context, c client.Client) error {
		return c.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(patch)), dry)
	}
}

// relabel sets (or, with value "", removes) a namespace's organization label with a merge patch.
func relabel(name, value string) func(context.Context, client.Client) error {
	v := fmt.Sprintf("%q", value)
	if value == "" {
		v = "null"
	}
	return mergePatch(nsRef(name), fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, tenancyv1alpha1.OrganizationLabel, v))
}

func binding(ns, name, role string, subject string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: subject}},
	}
}

func clusterBinding(name, role, subject string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: subject}},
	}
}

func quotaObj(ns, name string) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1000")}}}
}

func limitRange(ns, name string) *corev1.LimitRange {
	return &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
			Default: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}}}
}

func key(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// alphaReport is alpha's usage report, and strayReport one outside any organization, made by the suite.
const (
	alphaReport = "alpha-2026-11-20"
	strayReport = "stray"
)

func usageReport(ns, name, org string) *tenancyv1alpha1.OrganizationUsageReport {
	return &tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: tenancyv1alpha1.OrganizationUsageReportSpec{Organization: org,
			PeriodStart: metav1.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), PeriodEnd: metav1.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)}}
}

var (
	orgRef = func(name string) *tenancyv1alpha1.Organization {
		return &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	nsRef = func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	memRef  = func(ns, name string) *tenancyv1alpha1.OrganizationMember { return member(ns, name, "", false, "") }
	readerR = "org-operator:organization:alpha"
)

// everyone gives all the actors the same outcome, then the overrides.
func everyone(o outcome, overrides map[string]outcome) map[string]outcome {
	out := map[string]outcome{}
	for _, who := range []string{platform, alice, adam, dave, bob, nora, carol, mallory, operator} {
		out[who] = o
	}
	maps.Copy(out, overrides)
	return out
}

var rules = []rule{
	// Organizations: members read their own, only platform admins change them.
	{"get organization alpha", getObj(key("", "alpha"), &tenancyv1alpha1.Organization{}), everyone(allowed, map[string]outcome{
		carol: rbac("get", "organizations"), mallory: rbac("get", "organizations")})},
	{"get organization beta", getObj(key("", "beta"), &tenancyv1alpha1.Organization{}), everyone(rbac("get", "organizations"), map[string]outcome{
		platform: allowed, carol: allowed, operator: allowed})},
	{"list organizations", list(&tenancyv1alpha1.OrganizationList{}), everyone(rbac("list", "organizations"), map[string]outcome{
		platform: allowed, operator: allowed})},
	{"create an organization", createObj(&tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "newco"},
		Spec: tenancyv1alpha1.OrganizationSpec{DisplayName: "New"}}), everyone(rbac("create", "organizations"), map[string]outcome{platform: allowed})},
	{"raise organization alpha's quotas", update(key("", "alpha"), &tenancyv1alpha1.Organization{}, func(o *tenancyv1alpha1.Organization) {
		o.Spec.Quotas.MaxMembers = ptr(int32(1000))
	}), map[string]outcome{platform: allowed, alice: rbac("update", "organizations"), adam: rbac("update", "organizations"),
		dave: rbac("update", "organizations"), carol: rbac("update", "organizations"), mallory: rbac("update", "organizations"), operator: rbac("update", "organizations")}},
	{"patch organization alpha's status", func(ctx context.Context, c client.Client) error {
		return c.Status().Patch(ctx, orgRef("alpha"), client.RawPatch(types.MergePatchType, []byte(`{"status":{"memberCount":1}}`)), dry)
	}, map[string]outcome{platform: allowed, alice: rbac("patch", "organizations/status"), dave: rbac("patch", "organizations/status"),
		carol: rbac("patch", "organizations/status"), mallory: rbac("patch", "organizations/status")}},
	{"delete organization beta", deleteObj(orgRef("beta")), everyone(rbac("delete", "organizations"), map[string]outcome{
		platform: allowed})},
	{"delete every organization at once", func(ctx context.Context, c client.Client) error {
		return c.DeleteAllOf(ctx, &tenancyv1alpha1.Organization{}, dry)
	}, map[string]outcome{alice: rbac("deletecollection", "organizations"), carol: rbac("deletecollection", "organizations"),
		mallory: rbac("deletecollection", "organizations"), operator: rbac("deletecollection", "organizations")}},

	// Plans: read by the operator, written by platform admins.
	{"get plan free", getObj(key("", "free"), &tenancyv1alpha1.OrganizationPlan{}), map[string]outcome{platform: allowed, operator: allowed,
		alice: rbac("get", "organizationplans"), mallory: rbac("get", "organizationplans")}},
	{"create a plan", createObj(&tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: "gold"},
		Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Gold", Free: true}}), everyone(rbac("create", "organizationplans"), map[string]outcome{platform: allowed})},
	{"make plan free unlimited", mergePatch(&tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, `{"spec":{"quotas":{"maxMembers":100000}}}`),
		map[string]outcome{platform: allowed, alice: rbac("patch", "organizationplans"), carol: rbac("patch", "organizationplans"), operator: rbac("patch", "organizationplans")}},
	{"delete plan free", deleteObj(&tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: "free"}}),
		map[string]outcome{platform: allowed, alice: rbac("delete", "organizationplans"), operator: rbac("delete", "organizationplans")}},

	// Members: readable by members with a role, changed only by organization admins and platform admins.
	{"list alpha's members", list(&tenancyv1alpha1.OrganizationMemberList{}, client.InNamespace("alpha")), everyone(allowed, map[string]outcome{
		nora: rbac("list", "organizationmembers"), carol: rbac("list", "organizationmembers"), mallory: rbac("list", "organizationmembers")})},
	{"get member bob of alpha", getObj(key("alpha", "bob"), &tenancyv1alpha1.OrganizationMember{}), everyone(allowed, map[string]outcome{
		nora: rbac("get", "organizationmembers"), carol: rbac("get", "organizationmembers"), mallory: rbac("get", "organizationmembers")})},
	{"add a View member to alpha", createObj(member("alpha", "vic", "vic@alpha.example", false, tenancyv1alpha1.KubernetesRoleView)),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: allowed, alice: allowed, adam: allowed, operator: denied("the operator creates only, in a home namespace, the members of redeemed invitations")})},
	// Besides the members of redeemed invitations, the operator creates one kind of member: its organization owner's admin member.
	{"add an owner's admin member to alpha", createObj(ownerMember("alpha", "owner")),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: allowed, alice: allowed, operator: allowed,
			adam: denied("kubernetesRole Edit in organization alpha and cannot grant Admin")})},
	{"add an owner's admin member under another name", createObj(ownerMember("alpha", "boss")),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: allowed, alice: allowed, operator: guard,
			adam: denied("cannot grant Admin")})},
	{"add a group as a member of alpha", createObj(groupMember("alpha", "testers", "oidc:alpha-testers", tenancyv1alpha1.KubernetesRoleView)),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: allowed, alice: allowed, adam: allowed, operator: guard})},
	{"add a service account of beta as a member of alpha", createObj(serviceAccountMember("alpha", "intruder", "beta-dev", "default", tenancyv1alpha1.KubernetesRoleView)),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: denied("namespace beta-dev is not a namespace of organization alpha"),
			alice: denied("namespace beta-dev is not a namespace of organization alpha"), adam: denied("is not a namespace of organization alpha"), operator: guard})},
	{"add a second member for alpha's developers group", createObj(groupMember("alpha", "devs2", developersGroup, tenancyv1alpha1.KubernetesRoleView)),
		everyone(rbac("create", "organizationmembers"), map[string]outcome{platform: denied("spec.group: Duplicate value"),
			alice: denied("spec.group: Duplicate value"), adam: denied("spec.group: Duplicate value"), operator: guard})},
	{"add an Admin-role member to alpha", createObj(member("alpha", "ada", "ada@alpha.example", false, tenancyv1alpha1.KubernetesRoleAdmin)),
		map[string]outcome{platform: allowed, alice: allowed, adam: denied("kubernetesRole Edit in organization alpha and cannot grant Admin"),
			dave: rbac("create", "organizationmembers"), bob: rbac("create", "organizationmembers")}},
	{"add a second admin to alpha", createObj(member("alpha", "amy", "amy@alpha.example", true, tenancyv1alpha1.KubernetesRoleView)),
		map[string]outcome{platform: allowed, alice: allowed, adam: allowed, dave: rbac("create", "organizationmembers"), bob: rbac("create", "organizationmembers")}},
	{"make dave an admin", update(key("alpha", "dave"), &tenancyv1alpha1.OrganizationMember{}, func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Admin = true }),
		map[string]outcome{platform: allowed, alice: allowed, adam: allowed, dave: rbac("update", "organizationmembers"), bob: rbac("update", "organizationmembers")}},
	{"patch dave to admin with kubernetesRole Admin", mergePatch(memRef("alpha", "dave"), `{"spec":{"admin":true,"kubernetesRole":"Admin"}}`),
		map[string]outcome{platform: allowed, alice: allowed, adam: denied("cannot grant Admin"), dave: rbac("patch", "organizationmembers"),
			nora: rbac("patch", "organizationmembers"), operator: guard}},
	{"raise bob to kubernetesRole Edit", update(key("alpha", "bob"), &tenancyv1alpha1.OrganizationMember{}, func(m *tenancyv1alpha1.OrganizationMember) {
		m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleEdit
	}), map[string]outcome{platform: allowed, alice: allowed, adam: allowed, bob: rbac("update", "organizationmembers")}},
	{"give alice's Admin-role membership to mallory", update(key("alpha", "alice"), &tenancyv1alpha1.OrganizationMember{}, func(m *tenancyv1alpha1.OrganizationMember) {
		m.Spec.Email = mallory
	}), map[string]outcome{platform: allowed, alice: allowed, adam: denied("cannot grant Admin"), dave: rbac("update", "organizationmembers")}},
	{"remove member bob", deleteObj(memRef("alpha", "bob")), everyone(rbac("delete", "organizationmembers"), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed})},
	{"remove admin alice while adam is an admin too", deleteObj(memRef("alpha", "alice")),
		map[string]outcome{platform: allowed, alice: allowed, adam: allowed, dave: rbac("delete", "organizationmembers")}},
	{"delete every member of alpha at once", func(ctx context.Context, c client.Client) error {
		return c.DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationMember{}, client.InNamespace("alpha"), dry)
	}, map[string]outcome{dave: rbac("deletecollection", "organizationmembers"), bob: rbac("deletecollection", "organizationmembers"),
		nora: rbac("deletecollection", "organizationmembers"), carol: rbac("deletecollection", "organizationmembers"), mallory: rbac("deletecollection", "organizationmembers")}},
	{"mark bob Ready in his status", func(ctx context.Context, c client.Client) error {
		return c.Status().Patch(ctx, memRef("alpha", "bob"), client.RawPatch(types.MergePatchType, []byte(`{"status":{"observedGeneration":99}}`)), dry)
	}, map[string]outcome{alice: rbac("patch", "organizationmembers/status"), dave: rbac("patch", "organizationmembers/status"), bob: rbac("patch", "organizationmembers/status")}},
	{"add a member to beta", createObj(member("beta", "spy", "spy@alpha.example", true, tenancyv1alpha1.KubernetesRoleAdmin)),
		map[string]outcome{platform: allowed, carol: allowed, alice: rbac("create", "organizationmembers"), adam: rbac("create", "organizationmembers"), mallory: rbac("create", "organizationmembers")}},
	{"remove beta's only admin", deleteObj(memRef("beta", "carol")), map[string]outcome{
		platform: denied("carol is the last admin of organization beta and cannot be removed"), carol: denied("carol is the last admin of organization beta"),
		alice: rbac("delete", "organizationmembers")}},
	{"add a member outside a home namespace", createObj(member("alpha-dev", "eve", "eve@alpha.example", false, "")),
		map[string]outcome{platform: denied("namespace alpha-dev is not the home namespace of an existing organization"), alice: rbac("create", "organizationmembers")}},

	// Usage reports: read by alpha's members with a namespace role and its admins, written by the operator alone.
	{"get alpha's usage report", getObj(key("alpha", alphaReport), &tenancyv1alpha1.OrganizationUsageReport{}), everyone(allowed, map[string]outcome{
		nora: rbac("get", "organizationusagereports"), carol: rbac("get", "organizationusagereports"), mallory: rbac("get", "organizationusagereports")})},
	{"list alpha's usage reports", list(&tenancyv1alpha1.OrganizationUsageReportList{}, client.InNamespace("alpha")), everyone(allowed, map[string]outcome{
		nora: rbac("list", "organizationusagereports"), carol: rbac("list", "organizationusagereports"), mallory: rbac("list", "organizationusagereports")})},
	{"zero alpha's usage in its report's status", func(ctx context.Context, c client.Client) error {
		r := &tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha", Name: alphaReport}}
		return c.Status().Patch(ctx, r, client.RawPatch(types.MergePatchType, []byte(`{"status":{"total":{"podSeconds":0}}}`)), dry)
	}, everyone(rbac("patch", "organizationusagereports/status"), map[string]outcome{platform: allowed, operator: allowed})},
	{"write the status of a usage report outside a home namespace", func(ctx context.Context, c client.Client) error {
		r := &tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: "outside", Name: strayReport}}
		return c.Status().Patch(ctx, r, client.RawPatch(types.MergePatchType, []byte(`{"status":{"total":{"podSeconds":1}}}`)), dry)
	}, everyone(rbac("patch", "organizationusagereports/status"), map[string]outcome{platform: allowed, operator: guard})},
	{"relabel alpha's usage report", mergePatch(&tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha", Name: alphaReport}},
		`{"metadata":{"labels":{"tenancy.orgoperator.io/organization":"beta"}}}`),
		everyone(rbac("patch", "organizationusagereports"), map[string]outcome{platform: allowed})},
	{"create a usage report in alpha", createObj(usageReport("alpha", "alpha-2026-10-20", "alpha")),
		everyone(rbac("create", "organizationusagereports"), map[string]outcome{platform: allowed, operator: allowed})},
	{"create a usage report of beta in alpha", createObj(usageReport("alpha", "beta-2026-10-20", "beta")),
		everyone(rbac("create", "organizationusagereports"), map[string]outcome{platform: allowed, operator: guard})},
	{"create a usage report in alpha-dev", createObj(usageReport("alpha-dev", "alpha-2026-10-20", "alpha")),
		everyone(rbac("create", "organizationusagereports"), map[string]outcome{platform: allowed, operator: guard})},
	{"delete alpha's usage report", deleteObj(&tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha", Name: alphaReport}}),
		everyone(rbac("delete", "organizationusagereports"), map[string]outcome{platform: allowed, operator: allowed})},

	// Namespaces and the organization label.
	{"create a namespace in alpha", createObj(namespace("alpha-new", orgLabel("alpha"))), map[string]outcome{platform: allowed, alice: allowed, adam: allowed,
		dave: notAdminOf("alpha"), carol: notAdminOf("alpha"), mallory: notAdminOf("alpha"), bob: rbac("create", "namespaces")}},
	{"label namespace outside into alpha", relabel("outside", "alpha"), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed, dave: notAdminOf("alpha"), carol: notAdminOf("alpha"), mallory: notAdminOf("alpha"),
		bob: rbac("patch", "namespaces"), operator: guard}},
	{"label namespace outside into beta", relabel("outside", "beta"), map[string]outcome{
		platform: allowed, carol: allowed, alice: notAdminOf("beta"), mallory: notAdminOf("beta")}},
	{"move alpha-dev to beta", relabel("alpha-dev", "beta"), map[string]outcome{
		platform: allowed, alice: denied("cannot be moved between organizations (alpha to beta)"), carol: denied("cannot be moved between organizations"), operator: guard}},
	{"take alpha-dev out of alpha", relabel("alpha-dev", ""), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed, dave: notAdminOf("alpha"), carol: notAdminOf("alpha"), mallory: notAdminOf("alpha")}},
	{"take the home namespace alpha out of alpha", relabel("alpha", ""), map[string]outcome{
		platform: allowed, alice: denied("only platform admins may change the labels of an organization's home namespace"),
		adam: denied("only platform admins may change the labels"), carol: denied("only platform admins may change the labels")}},
	{"label kube-system into alpha", relabel("kube-system", "alpha"), map[string]outcome{
		platform: denied("kube-system cannot join an organization"), alice: denied("kube-system cannot join an organization"),
		mallory: denied("kube-system cannot join an organization"), operator: guard}},
	{"delete namespace outside", deleteObj(nsRef("outside")), map[string]outcome{platform: allowed, alice: rbac("delete", "namespaces"),
		mallory: rbac("delete", "namespaces"), operator: guard}},
	{"delete namespace alpha-dev", deleteObj(nsRef("alpha-dev")), map[string]outcome{platform: allowed, alice: rbac("delete", "namespaces"), operator: allowed}},

	// Projects: read by members with a role, changed only by organization admins and platform
	// admins, who grant no role above their own and take no namespace that is not free.
	{"list alpha's projects", list(&tenancyv1alpha1.OrganizationProjectList{}, client.InNamespace("alpha")), everyone(allowed, map[string]outcome{
		nora: rbac("list", "organizationprojects"), carol: rbac("list", "organizationprojects"), mallory: rbac("list", "organizationprojects")})},
	{"get project site of alpha", getObj(key("alpha", "site"), &tenancyv1alpha1.OrganizationProject{}), everyone(allowed, map[string]outcome{
		nora: rbac("get", "organizationprojects"), carol: rbac("get", "organizationprojects"), mallory: rbac("get", "organizationprojects")})},
	{"create a project in alpha", createObj(project("alpha", "shop", "")), everyone(rbac("create", "organizationprojects"), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed})},
	{"create a project in alpha giving dave Admin", createObj(project("alpha", "ops", "", projectRole("dave", tenancyv1alpha1.KubernetesRoleAdmin))),
		map[string]outcome{platform: allowed, alice: allowed, adam: denied(`user "adam@alpha.example" has role Edit in project ops and cannot grant Admin`),
			dave: rbac("create", "organizationprojects")}},
	{"create a project in beta", createObj(project("beta", "shop", "")), map[string]outcome{platform: allowed, carol: allowed,
		alice: rbac("create", "organizationprojects"), mallory: rbac("create", "organizationprojects")}},
	{"create a project in alpha adopting namespace outside", createObj(project("alpha", "adopt", "outside")), map[string]outcome{platform: allowed,
		alice: denied("adopting an existing namespace into a project is for platform admins"), adam: denied("adopting an existing namespace into a project is for platform admins")}},
	{"create a project in alpha taking namespace beta-dev", createObj(project("alpha", "grab", "beta-dev")), map[string]outcome{
		platform: denied("namespace beta-dev exists and is in organization beta"), alice: denied("namespace beta-dev exists and is in organization beta")}},
	{"create a project in alpha taking namespace alpha-dev", createObj(project("alpha", "dev", "alpha-dev")), map[string]outcome{
		platform: denied("namespace alpha-dev is already one of organization alpha's namespaces"), alice: denied("namespace alpha-dev is already one of organization alpha's namespaces")}},
	{"create a project in alpha taking project site's namespace", createObj(project("alpha", "site2", "alpha-site")), map[string]outcome{
		platform: denied("project site of organization alpha already has namespace alpha-site"), adam: denied("project site of organization alpha already has namespace alpha-site")}},
	{"create a project in alpha taking namespace kube-system", createObj(project("alpha", "sys", "kube-system")), map[string]outcome{
		platform: denied(`"kube-system" is reserved for the system`), alice: denied(`"kube-system" is reserved for the system`)}},
	{"give dave Admin in project site", update(key("alpha", "site"), &tenancyv1alpha1.OrganizationProject{}, func(p *tenancyv1alpha1.OrganizationProject) {
		p.Spec.Members = append(p.Spec.Members, projectRole("dave", tenancyv1alpha1.KubernetesRoleAdmin))
	}), map[string]outcome{platform: allowed, alice: allowed, adam: denied("has role Edit in project site and cannot grant Admin"),
		dave: rbac("update", "organizationprojects"), bob: rbac("update", "organizationprojects"), operator: rbac("update", "organizationprojects")}},
	{"take bob out of project site", update(key("alpha", "site"), &tenancyv1alpha1.OrganizationProject{}, func(p *tenancyv1alpha1.OrganizationProject) {
		p.Spec.Members = nil
	}), map[string]outcome{platform: allowed, alice: allowed, adam: allowed, bob: rbac("update", "organizationprojects")}},
	{"delete project site", deleteObj(project("alpha", "site", "")), everyone(rbac("delete", "organizationprojects"), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed})},
	{"delete every project of alpha at once", func(ctx context.Context, c client.Client) error {
		return c.DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationProject{}, client.InNamespace("alpha"), dry)
	}, map[string]outcome{platform: allowed, alice: rbac("deletecollection", "organizationprojects"), dave: rbac("deletecollection", "organizationprojects"),
		carol: rbac("deletecollection", "organizationprojects")}},
	{"label alpha-dev as project site's", mergePatch(nsRef("alpha-dev"), fmt.Sprintf(`{"metadata":{"labels":{%q:"site"}}}`, tenancyv1alpha1.ProjectLabel)),
		map[string]outcome{platform: allowed, alice: projectLabel, adam: projectLabel, dave: projectLabel, carol: projectLabel, mallory: projectLabel,
			bob: rbac("patch", "namespaces"), operator: guard}},
	{"remove alpha-site's project label", mergePatch(nsRef("alpha-site"), fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, tenancyv1alpha1.ProjectLabel)),
		map[string]outcome{platform: allowed, alice: projectLabel, adam: projectLabel, operator: guard}},
	{"label namespace outside into alpha as project site's", mergePatch(nsRef("outside"), fmt.Sprintf(`{"metadata":{"labels":{%q:"alpha",%q:"site"}}}`,
		tenancyv1alpha1.OrganizationLabel, tenancyv1alpha1.ProjectLabel)), map[string]outcome{platform: allowed, alice: projectLabel, operator: guard}},
	{"take alpha-site out of alpha", relabel("alpha-site", ""), map[string]outcome{platform: allowed,
		alice: denied("namespace alpha-site is the namespace of project site of organization alpha: delete the project rather than take its namespace out"),
		adam:  denied("delete the project rather than take its namespace out"), operator: guard}},

	// Invitations: made by organization admins, up to their own role; redeemed by anyone
	// authenticated who holds the token, and readable by nobody but the operator.
	{"list alpha's invitations", list(&tenancyv1alpha1.OrganizationInvitationList{}, client.InNamespace("alpha")), everyone(rbac("list", "organizationinvitations"), map[string]outcome{
		platform: allowed, alice: allowed, adam: allowed, operator: allowed})},
	{"invite a View member into alpha", createObj(invitation("alpha", "vic", "vic@alpha.example", tenancyv1alpha1.KubernetesRoleView)),
		everyone(rbac("create", "organizationinvitations"), map[string]outcome{platform: allowed, alice: allowed, adam: allowed})},
	{"invite an Admin member into alpha", createObj(invitation("alpha", "val", "val@alpha.example", tenancyv1alpha1.KubernetesRoleAdmin)),
		map[string]outcome{platform: allowed, alice: allowed, adam: denied(`user "adam@alpha.example" has kubernetesRole Edit in organization alpha and cannot invite with Admin`),
			dave: rbac("create", "organizationinvitations"), carol: rbac("create", "organizationinvitations")}},
	{"invite into beta", createObj(invitation("beta", "vic", "vic@beta.example", tenancyv1alpha1.KubernetesRoleView)), map[string]outcome{
		platform: allowed, carol: allowed, alice: rbac("create", "organizationinvitations"), mallory: rbac("create", "organizationinvitations")}},
	{"redeem an invitation of alpha that does not exist", createObj(&tenancyv1alpha1.OrganizationInvitationRedemption{ObjectMeta: metav1.ObjectMeta{Name: "guess"},
		Spec: tenancyv1alpha1.OrganizationInvitationRedemptionSpec{Organization: "alpha", Invitation: "nobody", Token: "guess"}}),
		everyone(denied("spec.invitation: Not found"), map[string]outcome{operator: denied("is a system: identity")})},
	{"list invitation redemptions", list(&tenancyv1alpha1.OrganizationInvitationRedemptionList{}), everyone(rbac("list", "organizationinvitationredemptions"), map[string]outcome{
		platform: allowed, operator: allowed})},
	{"get an invitation redemption", getObj(key("", "guess"), &tenancyv1alpha1.OrganizationInvitationRedemption{}), map[string]outcome{
		alice: rbac("get", "organizationinvitationredemptions"), mallory: rbac("get", "organizationinvitationredemptions")}},

	// RoleBindings: the built-in escalation check, and the operator's guard.
	{"bind admin in alpha-dev to mallory", createObj(binding("alpha-dev", "helper", "admin", mallory)), map[string]outcome{
		platform: allowed, alice: allowed, dave: rbac("create", "rolebindings"), bob: rbac("create", "rolebindings"), carol: rbac("create", "rolebindings")}},
	{"bind cluster-admin in alpha-dev", createObj(binding("alpha-dev", "root", "cluster-admin", alice)), map[string]outcome{
		platform: allowed, alice: escalation, adam: rbac("create", "rolebindings"), operator: escalation}},
	{"bind admin in beta-dev", createObj(binding("beta-dev", "sneak", "admin", alice)), map[string]outcome{
		alice: rbac("create", "rolebindings"), carol: allowed, operator: allowed}},
	{"widen the operator's binding of bob to cluster-admin", update(key("alpha-dev", "org-operator:view"), &rbacv1.RoleBinding{}, func(rb *rbacv1.RoleBinding) {
		rb.RoleRef.Name = "cluster-admin"
	}), map[string]outcome{alice: escalation, dave: rbac("update", "rolebindings")}},
	{"bind admin in namespace outside", createObj(binding("outside", "escape", "admin", operator)), map[string]outcome{
		platform: allowed, alice: rbac("create", "rolebindings"), operator: guard}},
	{"bind admin in kube-system", createObj(binding("kube-system", "escape", "admin", operator)), map[string]outcome{
		alice: rbac("create", "rolebindings"), operator: guard}},
	{"bind view in alpha-dev as the operator does", createObj(binding("alpha-dev", "org-operator:view:2", "view", "vic@alpha.example")), map[string]outcome{
		operator: allowed, dave: rbac("create", "rolebindings")}},

	// ClusterRoles and ClusterRoleBindings: nobody but the platform, and the operator only for its reader objects.
	{"bind cluster-admin cluster-wide", createObj(clusterBinding("takeover", "cluster-admin", mallory)), everyone(rbac("create", "clusterrolebindings"), map[string]outcome{
		platform: allowed, operator: escalation})},
	{"bind admin cluster-wide to the operator", createObj(clusterBinding("takeover", "admin", operator)), map[string]outcome{
		operator: guard, alice: rbac("create", "clusterrolebindings")}},
	{"add rules to org-operator-organization-admin", mergePatch(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "org-operator-organization-admin"}},
		`{"rules":[{"apiGroups":["tenancy.orgoperator.io"],"resources":["organizations"],"verbs":["get","list","watch"]}]}`),
		map[string]outcome{operator: guard, alice: rbac("patch", "clusterroles"), platform: allowed}},
	{"create a ClusterRole reading every organization", createObj(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "org-operator:organization:all"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{tenancyv1alpha1.GroupVersion.Group}, Resources: []string{"organizations"}, Verbs: []string{"get", "watch"}}}}),
		map[string]outcome{operator: guard, alice: rbac("create", "clusterroles")}},
	{"create the reader ClusterRole of an organization", createObj(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "org-operator:organization:newco"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{tenancyv1alpha1.GroupVersion.Group}, Resources: []string{"organizations"}, ResourceNames: []string{"newco"}, Verbs: []string{"get", "watch"}}}}),
		map[string]outcome{operator: allowed, alice: rbac("create", "clusterroles"), mallory: rbac("create", "clusterroles")}},
	{"let mallory read organization alpha", mergePatch(clusterBinding(readerR, readerR, mallory), fmt.Sprintf(`{"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":%q}]}`, mallory)),
		map[string]outcome{operator: allowed, alice: rbac("patch", "clusterrolebindings"), mallory: rbac("patch", "clusterrolebindings")}},
	{"let the operator's ServiceAccount read organization alpha", mergePatch(clusterBinding(readerR, readerR, ""), fmt.Sprintf(`{"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":%q}]}`, operator)),
		map[string]outcome{operator: guard}},
	{"delete the built-in ClusterRole admin", deleteObj(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "admin"}}), map[string]outcome{
		operator: rbac("delete", "clusterroles"), alice: rbac("delete", "clusterroles")}},

	// Quotas and limits: set by the operator in organization namespaces only.
	{"raise alpha-dev's organization quota", update(key("alpha-dev", "org-operator-organization"), &corev1.ResourceQuota{}, func(q *corev1.ResourceQuota) {
		q.Spec.Hard[corev1.ResourcePods] = resource.MustParse("1000")
	}), map[string]outcome{platform: allowed, operator: rbac("update", "resourcequotas"), alice: rbac("update", "resourcequotas"), dave: rbac("update", "resourcequotas"), bob: rbac("update", "resourcequotas")}},
	{"patch alpha-dev's organization quota", mergePatch(quotaObj("alpha-dev", "org-operator-organization"), `{"spec":{"hard":{"pods":"1000"}}}`),
		map[string]outcome{operator: allowed, alice: rbac("patch", "resourcequotas"), dave: rbac("patch", "resourcequotas")}},
	{"delete alpha-dev's namespace quota", deleteObj(&corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha-dev", Name: "org-operator-namespace"}}),
		map[string]outcome{alice: rbac("delete", "resourcequotas"), dave: rbac("delete", "resourcequotas"), operator: allowed}},
	{"create a ResourceQuota of another name in alpha-dev", createObj(quotaObj("alpha-dev", "extra")), map[string]outcome{alice: rbac("create", "resourcequotas"), operator: guard}},
	{"create the operator's expiry quota in alpha-dev", createObj(quotaObj("alpha-dev", "org-operator-expired")), map[string]outcome{alice: rbac("create", "resourcequotas"), operator: allowed}},
	{"create a ResourceQuota in namespace outside", createObj(quotaObj("outside", "org-operator-expired")), map[string]outcome{alice: rbac("create", "resourcequotas"), operator: guard}},
	{"create a ResourceQuota in kube-system", createObj(quotaObj("kube-system", "squeeze")), map[string]outcome{operator: guard, mallory: rbac("create", "resourcequotas")}},
	{"create the operator's LimitRange in alpha-dev", createObj(limitRange("alpha-dev", "org-operator-defaults")), map[string]outcome{alice: rbac("create", "limitranges"), operator: allowed}},
	{"create another LimitRange in alpha-dev", createObj(limitRange("alpha-dev", "defaults")), map[string]outcome{alice: rbac("create", "limitranges"), operator: guard}},
	{"create the operator's LimitRange in namespace outside", createObj(limitRange("outside", "org-operator-defaults")), map[string]outcome{operator: guard, alice: rbac("create", "limitranges")}},

	// Secrets: what the namespace role grants, and the operator only in its own namespace.
	{"read the Secret of alpha-dev", getObj(key("alpha-dev", "token"), &corev1.Secret{}), map[string]outcome{platform: allowed, alice: allowed, adam: allowed, dave: allowed,
		bob: rbac("get", "secrets"), nora: rbac("get", "secrets"), carol: rbac("get", "secrets"), mallory: rbac("get", "secrets"), operator: rbac("get", "secrets")}},
	{"read the Secret of beta-dev", getObj(key("beta-dev", "token"), &corev1.Secret{}), map[string]outcome{carol: allowed, alice: rbac("get", "secrets"), dave: rbac("get", "secrets")}},
	{"read the Secret of kube-system", getObj(key("kube-system", "token"), &corev1.Secret{}), everyone(rbac("get", "secrets"), map[string]outcome{platform: allowed})},
	{"list the Secrets of namespace outside", list(&corev1.SecretList{}, client.InNamespace("outside")), map[string]outcome{alice: rbac("list", "secrets"), operator: rbac("list", "secrets")}},
	{"list the Secrets of the operator's namespace", list(&corev1.SecretList{}, client.InNamespace("org-operator-system")), map[string]outcome{operator: allowed, alice: rbac("list", "secrets")}},
	{"create a Secret in alpha-dev", createObj(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha-dev", Name: "planted"},
		StringData: map[string]string{"token": "x"}}), map[string]outcome{alice: allowed, dave: allowed, bob: rbac("create", "secrets"), operator: guard}},
	{"delete the Secret of alpha-dev", deleteObj(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha-dev", Name: "token"}}),
		map[string]outcome{alice: allowed, bob: rbac("delete", "secrets"), operator: guard}},

	// Pods: the namespace role, and the organization-wide quota for everyone, controllers included.
	{"create a pod in alpha-dev", createObj(pod("alpha-dev", "job")), everyone(allowed, map[string]outcome{
		bob: rbac("create", "pods"), nora: rbac("create", "pods"), carol: rbac("create", "pods"), mallory: rbac("create", "pods"), operator: rbac("create", "pods")})},
	{"create a pod in beta-dev", createObj(pod("beta-dev", "job")), map[string]outcome{carol: allowed, alice: rbac("create", "pods"), dave: rbac("create", "pods")}},
	{"create a pod in organization full, at its pod quota", createObj(pod("full", "more")), map[string]outcome{
		platform: denied("exceeded organization quota: full"), replicaSets: denied("exceeded organization quota: full"),
		jobs: denied("exceeded organization quota: full")}},
	{"create a pod in alpha-dev as a controller", createObj(pod("alpha-dev", "replica")), map[string]outcome{replicaSets: allowed, jobs: allowed}},
	{"create a pod in namespace outside", createObj(pod("outside", "job")), map[string]outcome{alice: rbac("create", "pods"), dave: rbac("create", "pods")}},
	{"delete pod web", deleteObj(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha-dev", Name: "web"}}), map[string]outcome{
		dave: allowed, alice: allowed, bob: rbac("delete", "pods"), carol: rbac("delete", "pods"), operator: rbac("delete", "pods")}},
	{"delete every pod of alpha-dev at once", func(ctx context.Context, c client.Client) error {
		return c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace("alpha-dev"), dry)
	}, map[string]outcome{bob: rbac("deletecollection", "pods"), carol: rbac("deletecollection", "pods"), mallory: rbac("deletecollection", "pods")}},
	{"resize pod web", func(ctx context.Context, c client.Client) error {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "alpha-dev", Name: "web"}}
		patch := `{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"200m"}}}]}}`
		return c.SubResource("resize").Patch(ctx, p, client.RawPatch(types.StrategicMergePatchType, []byte(patch)), dry)
	}, map[string]outcome{bob: rbac("patch", "pods/resize"), carol: rbac("patch", "pods/resize"), mallory: rbac("patch", "pods/resize")}},
}

var _ = Describe("The security model, actor by actor", func() {
	for _, r := range rules {
		for _, who := range sortedActors(r.expect) {
			want := r.expect[who]
			verdict := "is allowed to"
			if !want.allowed {
				verdict = "may not"
			}
			It(fmt.Sprintf("%s %s %s", short(who), verdict, r.what), func(ctx SpecContext) {
				c := as(who)
				before := snapshot(ctx)
				err := r.do(ctx, c)
				if want.allowed {
					Expect(err).NotTo(HaveOccurred())
				} else {
					Expect(err).To(HaveOccurred())
					Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "not a refusal: %v", err)
					Expect(err.Error()).To(ContainSubstring(want.message))
				}
				Expect(testenv.Changed(before, snapshot(ctx))).To(BeEmpty(), "the attempt changed the cluster")
			})
		}
	}

	It("has at least 120 entries", func() {
		n := 0
		for _, r := range rules {
			n += len(r.expect)
		}
		Expect(n).To(BeNumerically(">=", 120))
	})
})

// sortedActors orders the actors of an expectation so that the specs keep their order.
func sortedActors(m map[string]outcome) []string {
	order := []string{platform, alice, adam, dave, bob, nora, carol, mallory, operator, replicaSets, jobs}
	var out []string
	for _, who := range order {
		if _, ok := m[who]; ok {
			out = append(out, who)
		}
	}
	Expect(len(out)).To(Equal(len(m)), "an expectation names an unknown actor")
	return out
}
