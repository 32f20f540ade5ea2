// Package security tests the tenancy boundary as hostile tenants would try it: every actor of the
// README's security model against every verb on the operator's kinds, namespaces and their labels,
// RBAC objects, quotas, Secrets and pods, inside and outside their organization, on a real API
// server with exactly the RBAC, admission policies and webhooks that config/default installs.
package security_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/test/testenv"
)

var (
	env   *testenv.Env
	admin client.Client
)

func TestSecurity(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Security model")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start(testenv.Options{Webhooks: true})
	Expect(err).NotTo(HaveOccurred())
	admin = env.Admin
	buildWorld(ctx)
}, NodeTimeout(5*time.Minute))

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

func init() {
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
}

// The actors of the security model. Users are named by the identity the API server sees.
const (
	platform = "platform-admin" // cluster-admin: may update organizations
	alice    = "alice@alpha.example"
	adam     = "adam@alpha.example" // admin of alpha with kubernetesRole Edit
	dave     = "dave@alpha.example" // Edit member of alpha, not admin
	bob      = "bob@alpha.example"  // View member of alpha
	nora     = "nora@alpha.example" // member of alpha with kubernetesRole None
	carol    = "carol@beta.example" // admin of beta
	mallory  = "mallory@example.com"
	gina     = "gina@sso.example"                         // in developersGroup, which is an Edit member of alpha
	deployer = "system:serviceaccount:alpha-dev:deployer" // a View member of alpha
	operator = testenv.OperatorUser
	// kube-controller-manager's controllers create pods with their own ServiceAccounts' rights.
	replicaSets = "system:serviceaccount:kube-system:replicaset-controller"
	jobs        = "system:serviceaccount:kube-system:job-controller"
)

// groups are the extra groups an actor's requests carry.
var groups = map[string][]string{
	operator:    {"system:serviceaccounts", "system:serviceaccounts:org-operator-system"},
	replicaSets: {"system:serviceaccounts", "system:serviceaccounts:kube-system"},
	jobs:        {"system:serviceaccounts", "system:serviceaccounts:kube-system"},
	gina:        {developersGroup, "oidc:other-team"},
	deployer:    {"system:serviceaccounts", "system:serviceaccounts:alpha-dev"},
}

// developersGroup is a group from the identity provider, a member of alpha.
const developersGroup = "oidc:alpha-developers"

// as returns an uncached client acting as who, with system:authenticated as a user's kubectl has.
func as(who string) client.Client {
	GinkgoHelper()
	if who == platform {
		return admin
	}
	c, err := env.ClientAs(who, groups[who]...)
	Expect(err).NotTo(HaveOccurred())
	return c
}

func groupMember(ns, name, group string, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	m := member(ns, name, "", false, role)
	m.Spec.Group = group
	return m
}

func serviceAccountMember(ns, name, saNamespace, saName string, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	m := member(ns, name, "", false, role)
	m.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: saNamespace, Name: saName}
	return m
}

// ownerMember is the admin member the operator makes for an organization's owner.
func ownerMember(org, name string) *tenancyv1alpha1.OrganizationMember {
	m := member(org, name, "owner@"+org+".example", true, tenancyv1alpha1.KubernetesRoleAdmin)
	m.Labels = map[string]string{tenancyv1alpha1.OrganizationLabel: org, tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}
	return m
}

func member(ns, name, email string, isAdmin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationMember {
	return &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationMemberSpec{Email: email, Admin: isAdmin, KubernetesRole: role},
	}
}

func invitation(ns, name, email string, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationInvitation {
	return &tenancyv1alpha1.OrganizationInvitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationInvitationSpec{Email: email, KubernetesRole: role},
	}
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
	}
}

func project(ns, name, namespace string, members ...tenancyv1alpha1.ProjectMember) *tenancyv1alpha1.OrganizationProject {
	return &tenancyv1alpha1.OrganizationProject{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationProjectSpec{Namespace: namespace, Members: members},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func orgLabel(org string) map[string]string {
	return map[string]string{tenancyv1alpha1.OrganizationLabel: org}
}

func ptr[T any](v T) *T { return &v }

// buildWorld makes two organizations with members of every kind, a third one at its pod quota, a
// project of the first, a namespace that belongs to no one and a Secret in each, then waits until the operator is idle.
// Everyone named may create and label namespaces, so that the operator, not RBAC, is what stops
// them from taking namespaces that are not theirs.
func buildWorld(ctx context.Context) {
	GinkgoHelper()
	alpha := &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "alpha"}, Spec: tenancyv1alpha1.OrganizationSpec{
		DisplayName: "Alpha", DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade,
		Quotas: &tenancyv1alpha1.Quotas{
			MaxMembers: ptr(int32(20)), MaxNamespaces: ptr(int32(5)),
			NamespaceQuota:    corev1.ResourceList{corev1.ResourcePods: resource.MustParse("20")},
			OrganizationQuota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10")},
		},
	}}
	beta := &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "beta"}, Spec: tenancyv1alpha1.OrganizationSpec{
		DisplayName: "Beta", DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade}}
	full := &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "full"}, Spec: tenancyv1alpha1.OrganizationSpec{
		DisplayName: "Full", DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade,
		Quotas: &tenancyv1alpha1.Quotas{OrganizationQuota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}},
	}}
	Expect(admin.Create(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: "free"},
		Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Free", Free: true}})).To(Succeed())
	for _, o := range []*tenancyv1alpha1.Organization{alpha, beta, full} {
		Expect(admin.Create(ctx, o)).To(Succeed())
	}
	Eventually(func(g Gomega) {
		for _, name := range []string{"alpha", "beta", "full"} {
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})).To(Succeed())
		}
	}).Should(Succeed())
	for _, ns := range []*corev1.Namespace{namespace("alpha-dev", orgLabel("alpha")), namespace("beta-dev", orgLabel("beta")), namespace("outside", nil)} {
		Expect(admin.Create(ctx, ns)).To(Succeed())
	}
	// Project site of alpha, with its namespace labelled as the operator labels it.
	Expect(admin.Create(ctx, project("alpha", "site", "alpha-site", tenancyv1alpha1.ProjectMember{Name: "bob", KubernetesRole: tenancyv1alpha1.KubernetesRoleView}))).To(Succeed())
	Expect(admin.Create(ctx, namespace("alpha-site", map[string]string{
		tenancyv1alpha1.OrganizationLabel: "alpha", tenancyv1alpha1.ProjectLabel: "site"}))).To(Succeed())
	for _, m := range []*tenancyv1alpha1.OrganizationMember{
		member("alpha", "alice", alice, true, tenancyv1alpha1.KubernetesRoleAdmin),
		member("alpha", "adam", adam, true, tenancyv1alpha1.KubernetesRoleEdit),
		member("alpha", "dave", dave, false, tenancyv1alpha1.KubernetesRoleEdit),
		member("alpha", "bob", bob, false, tenancyv1alpha1.KubernetesRoleView),
		member("alpha", "nora", nora, false, tenancyv1alpha1.KubernetesRoleNone),
		groupMember("alpha", "developers", developersGroup, tenancyv1alpha1.KubernetesRoleEdit),
		serviceAccountMember("alpha", "deployer", "alpha-dev", "deployer", tenancyv1alpha1.KubernetesRoleView),
		member("beta", "carol", carol, true, tenancyv1alpha1.KubernetesRoleAdmin),
		member("full", "fred", "fred@full.example", true, tenancyv1alpha1.KubernetesRoleAdmin),
	} {
		Expect(admin.Create(ctx, m)).To(Succeed())
	}
	Expect(admin.Create(ctx, usageReport("alpha", alphaReport, "alpha"))).To(Succeed())
	Expect(admin.Create(ctx, usageReport("outside", strayReport, "alpha"))).To(Succeed())
	for _, p := range []*corev1.Pod{pod("alpha-dev", "web"), pod("beta-dev", "api"), pod("full", "only")} {
		Expect(admin.Create(ctx, p)).To(Succeed())
	}
	for _, ns := range []string{"alpha-dev", "beta-dev", "outside", "kube-system"} {
		Expect(admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "token"},
			StringData: map[string]string{"token": "s3cr3t-" + ns}})).To(Succeed())
	}
	selfService := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-self-service"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "create", "update", "patch"}}},
	}
	Expect(admin.Create(ctx, selfService)).To(Succeed())
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "namespace-self-service"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: selfService.Name},
	}
	for _, u := range []string{alice, adam, dave, carol, mallory} {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: u})
	}
	Expect(admin.Create(ctx, binding)).To(Succeed())
	waitForQuiet(ctx)
}

// waitForQuiet waits until every organization and member is Ready for its generation and the
// organizations count what they hold, then until nothing moves.
func waitForQuiet(ctx context.Context) {
	GinkgoHelper()
	Eventually(func() error { return testenv.Settled(ctx, admin) }, 2*time.Minute).Should(Succeed())
	Eventually(func(g Gomega) {
		first := snapshot(ctx)
		time.Sleep(1500 * time.Millisecond)
		g.Expect(testenv.Changed(first, snapshot(ctx))).To(BeEmpty())
	}, 2*time.Minute).Should(Succeed())
}

// racePrefix starts the names of the organizations that specs make for themselves.
const racePrefix = "race-"

// snapshot records the resourceVersion of everything an attempt could change in the shared world.
func snapshot(ctx context.Context) map[string]string {
	GinkgoHelper()
	out, err := testenv.Versions(ctx, admin, map[string]client.ObjectList{
		"Organization":        &tenancyv1alpha1.OrganizationList{},
		"OrganizationPlan":    &tenancyv1alpha1.OrganizationPlanList{},
		"OrganizationMember":  &tenancyv1alpha1.OrganizationMemberList{},
		"OrganizationProject": &tenancyv1alpha1.OrganizationProjectList{},
		"Namespace":           &corev1.NamespaceList{},
		"RoleBinding":         &rbacv1.RoleBindingList{},
		"ClusterRole":         &rbacv1.ClusterRoleList{},
		"ClusterRoleBinding":  &rbacv1.ClusterRoleBindingList{},
		"ResourceQuota":       &corev1.ResourceQuotaList{},
		"LimitRange":          &corev1.LimitRangeList{},
		"Secret":              &corev1.SecretList{},
		"Pod":                 &corev1.PodList{},
	}, func(namespace, name string) bool {
		// The concurrency specs' own organizations, coming and going.
		return strings.Contains(namespace+"/"+name, racePrefix)
	})
	Expect(err).NotTo(HaveOccurred())
	return out
}

// short names an actor in test descriptions.
func short(who string) string {
	switch who {
	case operator:
		return "the operator"
	case replicaSets:
		return "the replicaset controller"
	case jobs:
		return "the job controller"
	case deployer:
		return "the deployer service account"
	}
	if at := strings.IndexByte(who, '@'); at > 0 {
		return who[:at]
	}
	return who
}
