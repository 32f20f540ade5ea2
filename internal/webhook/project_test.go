package webhook_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/test/testenv"
)

// The projects' world: organization pja (deletionPolicy Block) with two admins, one of them with
// kubernetesRole View, and two plain members; organization pjb (Cascade) with its admin; a
// namespace that joined pja by label, one of pjb, one labelled as a project's that pja does not
// have, free namespaces, a terminating one, project site of pja with its namespace as the
// operator makes it, and project store of pjb whose namespace does not exist yet. The plain member and pjb's admin are given the RBAC rights on pja's projects
// that only its admins have, so that the webhook, not RBAC, is what stops them.
const (
	ada  = "ada@pja.example"  // admin of pja, kubernetesRole Admin
	vera = "vera@pja.example" // admin of pja, kubernetesRole View
	milo = "milo@pja.example" // member of pja, Edit
	olga = "olga@pjb.example" // admin of pjb
)

func project(ns, name, namespace string, members ...tenancyv1alpha1.ProjectMember) *tenancyv1alpha1.OrganizationProject {
	return &tenancyv1alpha1.OrganizationProject{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationProjectSpec{Namespace: namespace, Members: members},
	}
}

func role(name string, r tenancyv1alpha1.KubernetesRole) tenancyv1alpha1.ProjectMember {
	return tenancyv1alpha1.ProjectMember{Name: name, KubernetesRole: r}
}

// projectLabels label a namespace as the namespace of project in org, as the operator does.
func projectLabels(org, project string) map[string]string {
	return map[string]string{tenancyv1alpha1.OrganizationLabel: org, tenancyv1alpha1.ProjectLabel: project}
}

func updateProject(user, ns, name string, change func(*tenancyv1alpha1.OrganizationProject)) op {
	return func(ctx context.Context) error {
		p := get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &tenancyv1alpha1.OrganizationProject{})
		change(p)
		return as(user).Update(ctx, p)
	}
}

func deleteProject(user, ns, name string) op {
	return func(ctx context.Context) error {
		return as(user).Delete(ctx, project(ns, name, ""))
	}
}

func deleteProjects(user, ns string) op {
	return func(ctx context.Context) error {
		return as(user).DeleteAllOf(ctx, &tenancyv1alpha1.OrganizationProject{}, client.InNamespace(ns))
	}
}

// projectSnapshot records the resourceVersion of what a project request could change: projects,
// organizations (their admission records) and namespaces.
func projectSnapshot(ctx context.Context) map[string]string {
	GinkgoHelper()
	out, err := testenv.Versions(ctx, admin, map[string]client.ObjectList{
		"Organization":        &tenancyv1alpha1.OrganizationList{},
		"OrganizationProject": &tenancyv1alpha1.OrganizationProjectList{},
		"Namespace":           &corev1.NamespaceList{},
	}, nil)
	Expect(err).NotTo(HaveOccurred())
	// The namespace controller keeps rewriting the status of a namespace held in Terminating.
	delete(out, "Namespace /pj-terminating")
	return out
}

// expectRefused runs attempt and expects a refusal whose message contains want, and nothing changed.
func expectRefused(ctx context.Context, attempt op, want string) {
	GinkgoHelper()
	before := projectSnapshot(ctx)
	err := attempt(ctx)
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsInvalid(err) || apierrors.IsForbidden(err)).To(BeTrue(), "unexpected error kind: %v", err)
	Expect(err.Error()).To(ContainSubstring(want))
	Expect(testenv.Changed(before, projectSnapshot(ctx))).To(BeEmpty(), "the rejected request changed the cluster")
}

// warningRecorder keeps the warnings the API server returns.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warningRecorder) warnings() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// clientFor returns a client that acts as user (the cluster admin for platformAdmin), is not
// rate limited, so that concurrent requests are all in flight at once, and records warnings.
func clientFor(user string, warnings *warningRecorder) client.Client {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.ControlPlane.Config)
	cfg.QPS, cfg.Burst = -1, 100
	if user != platformAdmin {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	}
	if warnings != nil {
		cfg.WarningHandlerWithContext = warnings
	}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// atOnce runs n requests at the same moment and returns their errors.
func atOnce(n int, do func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = do(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// waitForMember waits until the operator has bound a member.
func waitForMember(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		m := &tenancyv1alpha1.OrganizationMember{}
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(BeTrue())
	}).WithContext(ctx).Should(Succeed())
}

// projectOrganization creates an organization of its own for a spec, with maxNamespaces and an
// admin member boss@<name>.example, waits until the admin is bound and returns the admin's user.
// The organization and its namespaces are gone when the spec ends.
func projectOrganization(ctx context.Context, name string, maxNamespaces int32) string {
	GinkgoHelper()
	o := organization(name, tenancyv1alpha1.DeletionPolicyCascade)
	o.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxNamespaces: ptr(maxNamespaces)}
	Expect(admin.Create(ctx, o)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, organization(name, "")))).To(Succeed())
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
		}, time.Minute).Should(Satisfy(apierrors.IsNotFound))
	})
	Eventually(func() error { return admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{}) }).Should(Succeed())
	boss := "boss@" + name + ".example"
	Expect(admin.Create(ctx, member(name, "boss", boss, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
	waitForMember(ctx, name, "boss")
	return boss
}

// freeNamespace creates a namespace that the spec deletes when it ends.
func freeNamespace(ctx context.Context, name string, labels map[string]string) {
	GinkgoHelper()
	Expect(admin.Create(ctx, namespace(name, labels))).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, namespace(name, nil)))).To(Succeed())
	})
}

// storedNamespaces counts the namespaces of an organization as the webhooks count them: those
// labelled into it and those its projects name.
func storedNamespaces(ctx context.Context, org string) int {
	GinkgoHelper()
	names := map[string]bool{}
	labelled := &corev1.NamespaceList{}
	Expect(admin.List(ctx, labelled, client.MatchingLabels(orgLabel(org)))).To(Succeed())
	for _, ns := range labelled.Items {
		names[ns.Name] = true
	}
	projects := &tenancyv1alpha1.OrganizationProjectList{}
	Expect(admin.List(ctx, projects, client.InNamespace(org))).To(Succeed())
	for _, p := range projects.Items {
		names[p.Spec.Namespace] = true
	}
	return len(names)
}

func suspendedJob(ns, name string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{Suspend: ptr(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "run", Image: "registry.example/job:1"}},
		}}},
	}
}

func suspendedCronJob(ns, name string) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr(true), JobTemplate: batchv1.JobTemplateSpec{
			Spec: suspendedJob(ns, name).Spec,
		}},
	}
}

func buildProjectWorld(ctx context.Context) {
	GinkgoHelper()
	Expect(admin.Create(ctx, organization("pja", tenancyv1alpha1.DeletionPolicyBlock))).To(Succeed())
	Expect(admin.Create(ctx, organization("pjb", tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
	Eventually(func(g Gomega) {
		for _, name := range []string{"pja", "pjb"} {
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})).To(Succeed())
		}
	}).Should(Succeed())
	for _, m := range []*tenancyv1alpha1.OrganizationMember{
		member("pja", "ada", ada, true, tenancyv1alpha1.KubernetesRoleAdmin),
		member("pja", "vera", vera, true, tenancyv1alpha1.KubernetesRoleView),
		member("pja", "milo", milo, false, tenancyv1alpha1.KubernetesRoleEdit),
		member("pja", "nils", "nils@pja.example", false, tenancyv1alpha1.KubernetesRoleView),
		member("pjb", "olga", olga, true, tenancyv1alpha1.KubernetesRoleAdmin),
	} {
		Expect(admin.Create(ctx, m)).To(Succeed())
	}
	Expect(admin.Create(ctx, namespace("pja-dev", orgLabel("pja")))).To(Succeed())
	Expect(admin.Create(ctx, namespace("pja-legacy", projectLabels("pja", "legacy")))).To(Succeed())
	Expect(admin.Create(ctx, namespace("pjb-prod", orgLabel("pjb")))).To(Succeed())
	for _, name := range []string{"pj-free", "pj-free2", "pj-terminating"} {
		Expect(admin.Create(ctx, namespace(name, nil))).To(Succeed())
	}
	Expect(admin.Create(ctx, namespace("pj-carrier", map[string]string{tenancyv1alpha1.ProjectLabel: "carried"}))).To(Succeed())
	// A namespace held by a finalizer stays Terminating.
	held := get(ctx, client.ObjectKey{Name: "pj-terminating"}, &corev1.Namespace{})
	held.Finalizers = []string{"example.com/hold"}
	Expect(admin.Update(ctx, held)).To(Succeed())
	Expect(admin.Delete(ctx, held)).To(Succeed())

	Expect(admin.Create(ctx, project("pjb", "store", "pjb-store"))).To(Succeed()) // its namespace does not exist yet
	Expect(admin.Create(ctx, project("pja", "site", "pja-site", role("nils", tenancyv1alpha1.KubernetesRoleView)))).To(Succeed())
	Expect(admin.Create(ctx, namespace("pja-site", projectLabels("pja", "site")))).To(Succeed())
	Expect(admin.Create(ctx, testenv.Deployment("pja-site", "web"))).To(Succeed())
	Expect(admin.Create(ctx, suspendedJob("pja-site", "migrate"))).To(Succeed())
	Expect(admin.Create(ctx, suspendedCronJob("pja-site", "backup"))).To(Succeed())
	Expect(admin.Create(ctx, testenv.Claim("pja-site", "data", "1Gi", ""))).To(Succeed())
	Expect(admin.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pja-site", Name: "worker"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	})).To(Succeed())

	projectRights := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pja", Name: "projects-for-everyone"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{tenancyv1alpha1.GroupVersion.Group}, Resources: []string{"organizationprojects"},
			Verbs: []string{"get", "list", "create", "update", "patch", "delete", "deletecollection"}}},
	}
	Expect(admin.Create(ctx, projectRights)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pja", Name: "projects-for-everyone"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: projectRights.Name},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: milo},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: olga},
		},
	})).To(Succeed())
	namespaceRights := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "pj-namespaces"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "update", "patch"}}},
	}
	Expect(admin.Create(ctx, namespaceRights)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pj-namespaces"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: namespaceRights.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: ada}},
	})).To(Succeed())
	for _, m := range []string{"ada", "vera", "milo", "nils"} {
		waitForMember(ctx, "pja", m)
	}
	waitForMember(ctx, "pjb", "olga")
	waitForQuiet(ctx)
}

// cleanProjectWorld leaves nothing behind for the specs that compare snapshots of the cluster.
func cleanProjectWorld(ctx context.Context) {
	GinkgoHelper()
	held := &corev1.Namespace{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "pj-terminating"}, held); err == nil {
		held.Finalizers = nil
		Expect(admin.Update(ctx, held)).To(Succeed())
	}
	// Claims keep their protection finalizer: no controller here removes it.
	claims := &corev1.PersistentVolumeClaimList{}
	Expect(admin.List(ctx, claims, client.InNamespace("pja-site"))).To(Succeed())
	for i := range claims.Items {
		Expect(admin.Patch(ctx, &claims.Items[i], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
	}
	Expect(client.IgnoreNotFound(admin.Patch(ctx, organization("pja", ""),
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"deletionPolicy":"Cascade"}}`))))).To(Succeed())
	Eventually(func() error {
		return client.IgnoreNotFound(admin.Delete(ctx, organization("pja", "")))
	}).Should(Succeed())
	Expect(client.IgnoreNotFound(admin.Delete(ctx, organization("pjb", "")))).To(Succeed())
	for _, name := range []string{"pj-free", "pj-free2", "pj-carrier", "pja-site"} {
		Expect(client.IgnoreNotFound(admin.Delete(ctx, namespace(name, nil)))).To(Succeed())
	}
	Expect(client.IgnoreNotFound(admin.Delete(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pj-namespaces"}}))).To(Succeed())
	Expect(client.IgnoreNotFound(admin.Delete(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pj-namespaces"}}))).To(Succeed())
	Eventually(func(g Gomega) {
		for _, name := range []string{"pja", "pjb", "pja-dev", "pja-legacy", "pja-site", "pjb-prod", "pjb-shop", "pj-free", "pj-free2", "pj-carrier", "pj-terminating"} {
			g.Expect(apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{}))).To(BeTrue(), "namespace %s", name)
		}
	}, 2*time.Minute).Should(Succeed())
}

var _ = Describe("Projects", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		buildProjectWorld(ctx)
		DeferCleanup(cleanProjectWorld)
	}, NodeTimeout(5*time.Minute))

	DescribeTable("refuses, with a message naming the rule, and changes nothing", expectRefused,
		// Where a project lives and which namespace it may ask for.
		Entry("a project outside a home namespace", create(platformAdmin, project("pja-dev", "stray", "pja-stray")),
			"metadata.namespace: Forbidden: namespace pja-dev is not the home namespace of an existing organization"),
		Entry("a reserved namespace", create(ada, project("pja", "sys", "kube-tools")),
			`spec.namespace: Forbidden: "kube-tools" is reserved for the system`),
		Entry("the namespace default", create(platformAdmin, project("pja", "sys", "default")),
			`spec.namespace: Forbidden: "default" is reserved for the system`),
		Entry("the operator's namespace", create(platformAdmin, project("pja", "sys", "org-operator-system")),
			`spec.namespace: Forbidden: "org-operator-system" is reserved for the system`),
		Entry("another organization's name", create(ada, project("pja", "squat", "pjb")),
			"spec.namespace: Forbidden: pjb is the name of organization pjb and of its home namespace"),
		Entry("the organization's own home namespace", create(platformAdmin, project("pja", "home", "pja")),
			"pja is the name of organization pja and of its home namespace"),
		Entry("another organization's namespace, even for a platform admin", create(platformAdmin, project("pja", "grab", "pjb-prod")),
			"spec.namespace: Forbidden: namespace pjb-prod exists and is in organization pjb; choose another name"),
		Entry("a namespace that joined the organization by label", create(ada, project("pja", "dev", "pja-dev")),
			"namespace pja-dev is already one of organization pja's namespaces; choose another name"),
		Entry("a namespace labelled as another project's", create(platformAdmin, project("pja", "legacy2", "pja-legacy")),
			"namespace pja-legacy is already one of organization pja's namespaces, project legacy's"),
		Entry("the namespace of another project", create(platformAdmin, project("pja", "site2", "pja-site")),
			"spec.namespace: Forbidden: project site of organization pja already has namespace pja-site"),
		Entry("the namespace another organization's project asks for, before it exists", create(ada, project("pja", "store", "pjb-store")),
			"spec.namespace: Forbidden: project store of organization pjb already has namespace pjb-store"),
		Entry("a namespace being deleted", create(platformAdmin, project("pja", "late", "pj-terminating")),
			"namespace pj-terminating is being deleted; wait until it is gone"),
		Entry("an existing namespace in no organization, by an organization admin", create(ada, project("pja", "adopt", "pj-free2")),
			"namespace pj-free2 exists already; adopting an existing namespace into a project is for platform admins"),
		Entry("a default namespace name longer than 63 characters", create(ada, project("pja", strings.Repeat("p", 60), "")),
			"spec.namespace: Required value: the default, pja-"+strings.Repeat("p", 60)+", is not a valid namespace name"),

		// Who.
		Entry("a member who is not an admin creating a project", create(milo, project("pja", "mine", "pja-mine")),
			`user "milo@pja.example" is not an admin of organization pja: only its admins and platform admins may create its projects`),
		Entry("another organization's admin creating a project", create(olga, project("pja", "mine", "pja-mine")),
			`user "olga@pjb.example" is not an admin of organization pja: only its admins and platform admins may create its projects`),
		Entry("a member who is not an admin changing a project", updateProject(milo, "pja", "site", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.DisplayName = "Mine"
		}), `user "milo@pja.example" is not an admin of organization pja: only its admins and platform admins may change its projects`),
		Entry("another organization's admin changing a project", updateProject(olga, "pja", "site", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = append(p.Spec.Members, role("olga", tenancyv1alpha1.KubernetesRoleAdmin))
		}), `user "olga@pjb.example" is not an admin of organization pja`),
		Entry("a member who is not an admin deleting a project", deleteProject(milo, "pja", "site"),
			`user "milo@pja.example" is not an admin of organization pja: only its admins and platform admins may delete its projects`),
		Entry("another organization's admin deleting a project", deleteProject(olga, "pja", "site"),
			`user "olga@pjb.example" is not an admin of organization pja: only its admins and platform admins may delete its projects`),
		Entry("a member who is not an admin deleting every project", deleteProjects(milo, "pja"),
			`user "milo@pja.example" is not an admin of organization pja`),
		Entry("another organization's admin deleting every project", deleteProjects(olga, "pja"),
			`user "olga@pjb.example" is not an admin of organization pja`),

		// Roles in projects.
		Entry("an admin with kubernetesRole View giving herself Admin in a new project",
			create(vera, project("pja", "vera", "pja-vera", role("vera", tenancyv1alpha1.KubernetesRoleAdmin))),
			`spec.members[0].kubernetesRole: Forbidden: user "vera@pja.example" has role View in project vera and cannot grant Admin, which is above it`),
		Entry("an admin with kubernetesRole View granting Edit in a new project",
			create(vera, project("pja", "vera", "pja-vera", role("nils", tenancyv1alpha1.KubernetesRoleView), role("milo", tenancyv1alpha1.KubernetesRoleEdit))),
			`spec.members[1].kubernetesRole: Forbidden: user "vera@pja.example" has role View in project vera and cannot grant Edit`),
		Entry("an admin with kubernetesRole View raising a member's role in a project", updateProject(vera, "pja", "site", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members[0].KubernetesRole = tenancyv1alpha1.KubernetesRoleEdit
		}), `spec.members[0].kubernetesRole: Forbidden: user "vera@pja.example" has role View in project site and cannot grant Edit`),
		Entry("an admin with kubernetesRole View giving herself Admin in a project", updateProject(vera, "pja", "site", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = append(p.Spec.Members, role("vera", tenancyv1alpha1.KubernetesRoleAdmin))
		}), `spec.members[1].kubernetesRole: Forbidden: user "vera@pja.example" has role View in project site and cannot grant Admin`),

		// Deletion with deletionPolicy Block.
		Entry("deleting a project whose namespace holds workloads, even as a platform admin", deleteProject(platformAdmin, "pja", "site"),
			"organization pja has deletionPolicy Block and the project's namespace still holds workloads: "+
				"namespace pja-site has 1 pods, 1 deployments, 1 jobs, 1 cronjobs, 1 persistentvolumeclaims"),
		Entry("an admin deleting a project whose namespace holds workloads", deleteProject(ada, "pja", "site"),
			"namespace pja-site has 1 pods, 1 deployments, 1 jobs, 1 cronjobs, 1 persistentvolumeclaims"),
		Entry("deleting every project while one's namespace holds workloads", deleteProjects(platformAdmin, "pja"),
			"organization pja has deletionPolicy Block and the project's namespace still holds workloads: namespace pja-site has 1 pods"),

		// The project label.
		Entry("an organization admin setting the project label", patchLabels(ada, "pja-dev", func(l map[string]string) { l[tenancyv1alpha1.ProjectLabel] = "site" }),
			"metadata.labels[tenancy.orgoperator.io/project]: Forbidden: only platform admins may set, change or remove the label that makes a namespace a project's"),
		Entry("an organization admin changing the project label", patchLabels(ada, "pja-site", func(l map[string]string) { l[tenancyv1alpha1.ProjectLabel] = "other" }),
			"only platform admins may set, change or remove the label that makes a namespace a project's"),
		Entry("an organization admin removing the project label", patchLabels(ada, "pja-site", func(l map[string]string) { delete(l, tenancyv1alpha1.ProjectLabel) }),
			"only platform admins may set, change or remove the label that makes a namespace a project's"),
		Entry("an organization admin labelling into the organization a namespace labelled as a project's",
			patchLabels(ada, "pj-carrier", func(l map[string]string) { maps.Copy(l, orgLabel("pja")) }),
			"metadata.labels[tenancy.orgoperator.io/organization]: Forbidden: namespace pj-carrier is labelled as the namespace of project carried: only platform admins may add it to an organization"),
		Entry("an organization admin taking a project's namespace out of the organization",
			patchLabels(ada, "pja-site", func(l map[string]string) { delete(l, tenancyv1alpha1.OrganizationLabel) }),
			"namespace pja-site is the namespace of project site of organization pja: delete the project rather than take its namespace out"),
	)

	It("defaults spec.namespace to <organization>-<project>, and keeps it when an update leaves it out", func(ctx SpecContext) {
		Expect(as(ada).Create(ctx, project("pja", "web", ""))).To(Succeed())
		p := get(ctx, client.ObjectKey{Namespace: "pja", Name: "web"}, &tenancyv1alpha1.OrganizationProject{})
		Expect(p.Spec.Namespace).To(Equal("pja-web"))

		p.Spec.Namespace = ""
		p.Spec.DisplayName = "Web"
		Expect(as(ada).Update(ctx, p)).To(Succeed())
		p = get(ctx, client.ObjectKey{Namespace: "pja", Name: "web"}, &tenancyv1alpha1.OrganizationProject{})
		Expect(p.Spec.Namespace).To(Equal("pja-web"))
		Expect(p.Spec.DisplayName).To(Equal("Web"))

		By("a project name that fits 63 characters exactly")
		long := strings.Repeat("p", 59)
		Expect(as(ada).Create(ctx, project("pja", long, ""))).To(Succeed())
		Expect(get(ctx, client.ObjectKey{Namespace: "pja", Name: long}, &tenancyv1alpha1.OrganizationProject{}).Spec.Namespace).To(HaveLen(63))
	})

	It("lets a platform admin adopt a namespace in no organization, with a warning, and records nothing on a dry run", func(ctx SpecContext) {
		By("a dry run, which stores and records nothing")
		waitForQuiet(ctx)
		before := projectSnapshot(ctx)
		Expect(as(ada).Create(ctx, project("pja", "dry", ""), client.DryRunAll)).To(Succeed())
		Expect(testenv.Changed(before, projectSnapshot(ctx))).To(BeEmpty(), "the dry run changed the cluster")

		By("the adoption")
		warnings := &warningRecorder{}
		Expect(clientFor(platformAdmin, warnings).Create(ctx, project("pja", "adopted", "pj-free"))).To(Succeed())
		Expect(warnings.warnings()).To(ContainElement(
			"namespace pj-free exists and is in no organization: label it tenancy.orgoperator.io/organization=pja and tenancy.orgoperator.io/project=adopted to make it the project's"))
		org := get(ctx, client.ObjectKey{Name: "pja"}, &tenancyv1alpha1.Organization{})
		Expect(org.Status.Admitted).NotTo(BeNil())
		Expect(org.Status.Admitted.Namespaces).To(ContainElement(HaveField("Name", "pj-free")))

		By("its deletion, which a workload in a namespace not labelled as the project's does not block")
		Expect(admin.Create(ctx, testenv.Deployment("pj-free", "keep"))).To(Succeed())
		Expect(as(ada).Delete(ctx, project("pja", "adopted", ""))).To(Succeed())
	})

	It("lets a platform admin label a namespace as a project's and into the organization", func(ctx SpecContext) {
		Expect(patchLabels(platformAdmin, "pj-carrier", func(l map[string]string) { maps.Copy(l, orgLabel("pja")) })(ctx)).To(Succeed())
		Expect(patchLabels(platformAdmin, "pj-carrier", func(l map[string]string) { l[tenancyv1alpha1.ProjectLabel] = "moved" })(ctx)).To(Succeed())
		Expect(patchLabels(platformAdmin, "pj-carrier", func(l map[string]string) {
			delete(l, tenancyv1alpha1.ProjectLabel)
			delete(l, tenancyv1alpha1.OrganizationLabel)
		})(ctx)).To(Succeed())
	})

	It("lets admins lower and remove roles, grant what they have in the project, and name members that do not exist yet", func(ctx SpecContext) {
		By("ada, Admin, making vera Admin in a project")
		Expect(as(ada).Create(ctx, project("pja", "roles", "",
			role("vera", tenancyv1alpha1.KubernetesRoleAdmin), role("nils", tenancyv1alpha1.KubernetesRoleEdit)))).To(Succeed())

		By("vera, View in the organization and Admin in the project, raising milo there and naming a member to come")
		Expect(updateProject(vera, "pja", "roles", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = append(p.Spec.Members, role("milo", tenancyv1alpha1.KubernetesRoleAdmin), role("ghost", tenancyv1alpha1.KubernetesRoleView))
		})(ctx)).To(Succeed())

		By("vera lowering nils and removing milo, whatever their roles")
		Expect(updateProject(vera, "pja", "roles", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = []tenancyv1alpha1.ProjectMember{
				role("vera", tenancyv1alpha1.KubernetesRoleAdmin), role("nils", tenancyv1alpha1.KubernetesRoleNone), role("ghost", tenancyv1alpha1.KubernetesRoleView),
			}
		})(ctx)).To(Succeed())

		By("vera lowering herself to View, after which she cannot raise anyone above it")
		Expect(updateProject(vera, "pja", "roles", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members[0].KubernetesRole = tenancyv1alpha1.KubernetesRoleView
		})(ctx)).To(Succeed())
		expectRefused(ctx, updateProject(vera, "pja", "roles", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members[1].KubernetesRole = tenancyv1alpha1.KubernetesRoleEdit
		}), `spec.members[1].kubernetesRole: Forbidden: user "vera@pja.example" has role View in project roles and cannot grant Edit`)

		By("vera creating a project with roles no higher than hers")
		Expect(as(vera).Create(ctx, project("pja", "low", "",
			role("nils", tenancyv1alpha1.KubernetesRoleView), role("milo", tenancyv1alpha1.KubernetesRoleNone), role("ghost", tenancyv1alpha1.KubernetesRoleView)))).To(Succeed())

		By("a platform admin granting anything")
		Expect(updateProject(platformAdmin, "pja", "low", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members[0].KubernetesRole = tenancyv1alpha1.KubernetesRoleAdmin
		})(ctx)).To(Succeed())

		By("a member who is not an admin changing only the metadata, which is not judged")
		Expect(updateProject(milo, "pja", "low", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Labels = map[string]string{"team": "web"}
		})(ctx)).To(Succeed())
	})

	It("lets a project of an organization with deletionPolicy Cascade go with its workloads", func(ctx SpecContext) {
		Expect(as(olga).Create(ctx, project("pjb", "shop", ""))).To(Succeed())
		Expect(admin.Create(ctx, namespace("pjb-shop", projectLabels("pjb", "shop")))).To(Succeed())
		Expect(admin.Create(ctx, testenv.Deployment("pjb-shop", "web"))).To(Succeed())
		Expect(admin.Create(ctx, suspendedJob("pjb-shop", "migrate"))).To(Succeed())
		Expect(as(olga).Delete(ctx, project("pjb", "shop", ""))).To(Succeed())
	})

	It("lets a project of an organization with deletionPolicy Block go once its namespace is empty", func(ctx SpecContext) {
		Expect(admin.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "pja-site", Name: "worker"}})).To(Succeed())
		Expect(admin.Delete(ctx, testenv.Deployment("pja-site", "web"))).To(Succeed())
		Expect(admin.Delete(ctx, suspendedJob("pja-site", "migrate"), client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		waitForQuiet(ctx) // the organization counts the pod gone
		expectRefused(ctx, deleteProject(ada, "pja", "site"), "namespace pja-site has 1 cronjobs, 1 persistentvolumeclaims")
		Expect(admin.Delete(ctx, suspendedCronJob("pja-site", "backup"))).To(Succeed())
		claim := testenv.Claim("pja-site", "data", "1Gi", "")
		Expect(admin.Delete(ctx, claim)).To(Succeed())
		Expect(admin.Patch(ctx, claim, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))).To(Succeed())
		Eventually(func() error { return as(ada).Delete(ctx, project("pja", "site", "")) }).Should(Succeed())
	})
})

var _ = Describe("Project namespaces under concurrency", func() {
	It("admits exactly the namespaces maxNamespaces leaves room for, of 20 projects created at once", func(ctx SpecContext) {
		const org, room, attempts = "pjrace", 3, 20
		boss := projectOrganization(ctx, org, 6)
		// Taken already: the home namespace, one that joined by label, one a project names.
		Expect(admin.Create(ctx, namespace("pjrace-dev", orgLabel(org)))).To(Succeed())
		Expect(admin.Create(ctx, project(org, "first", ""))).To(Succeed())
		Expect(storedNamespaces(ctx, org)).To(Equal(6 - room))

		c := clientFor(boss, nil)
		errs := atOnce(attempts, func(i int) error { return c.Create(ctx, project(org, fmt.Sprintf("p%d", i), "")) })
		Expect(admittedOf(errs, "organization pjrace has 6 of its maxNamespaces quota of 6; delete a project or namespace first")).To(Equal(room))
		Expect(storedNamespaces(ctx, org)).To(Equal(6))

		By("and, full, refusing a dry run as well")
		waitForQuiet(ctx)
		expectRefused(ctx, func(ctx context.Context) error {
			return as(boss).Create(ctx, project(org, "dry", ""), client.DryRunAll)
		}, "organization pjrace has 6 of its maxNamespaces quota of 6")
	})

	It("admits exactly the room left to namespaces joining by label and projects created at once", func(ctx SpecContext) {
		const org, room = "pjmix", 3
		boss := projectOrganization(ctx, org, 5)
		Expect(admin.Create(ctx, project(org, "first", ""))).To(Succeed())
		for i := range 4 {
			freeNamespace(ctx, fmt.Sprintf("pjmix-join%d", i), nil)
		}
		Expect(storedNamespaces(ctx, org)).To(Equal(5 - room))

		c, platform := clientFor(boss, nil), clientFor(platformAdmin, nil)
		errs := atOnce(8, func(i int) error {
			if i%2 == 0 {
				return c.Create(ctx, project(org, fmt.Sprintf("p%d", i), ""))
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pjmix-join%d", i/2)}}
			return platform.Patch(ctx, ns, client.RawPatch(types.MergePatchType,
				[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, tenancyv1alpha1.OrganizationLabel, org))))
		})
		admitted := 0
		for _, err := range errs {
			if err == nil {
				admitted++
				continue
			}
			// Projects are refused as Forbidden, labels as an Invalid namespace.
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("organization pjmix has 5 of its maxNamespaces quota of 5"))
		}
		Expect(admitted).To(Equal(room))
		Expect(storedNamespaces(ctx, org)).To(Equal(5))
	})

	// A webhook cannot know whether the API server stores what it admitted: the admission record
	// holds the place until the stored objects show it, or for arbiter.Window. The API server's
	// own quota admission, which runs after the webhooks, refuses a project here after the
	// project webhook admitted it.
	It("holds the place of a project admitted but then refused by the API server", func(ctx SpecContext) {
		const org = "pjheld"
		boss := projectOrganization(ctx, org, 2) // the home namespace and one more
		noProjects := &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: "no-projects"},
			Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/organizationprojects.tenancy.orgoperator.io": resource.MustParse("0")}},
		}
		Expect(admin.Create(ctx, noProjects)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(noProjects), noProjects)).To(Succeed())
			g.Expect(noProjects.Status.Hard).NotTo(BeEmpty())
		}).Should(Succeed())
		Expect(as(boss).Create(ctx, project(org, "first", ""))).To(MatchError(ContainSubstring("exceeded quota: no-projects")))
		Expect(admin.Delete(ctx, noProjects)).To(Succeed())

		o := get(ctx, client.ObjectKey{Name: org}, &tenancyv1alpha1.Organization{})
		Expect(o.Status.Admitted).NotTo(BeNil())
		Expect(o.Status.Admitted.Namespaces).To(ConsistOf(HaveField("Name", "pjheld-first")))
		Eventually(func() error {
			return as(boss).Create(ctx, project(org, "second", ""), client.DryRunAll)
		}).Should(MatchError(ContainSubstring("organization pjheld has 2 of its maxNamespaces quota of 2")))
		Expect(as(boss).Create(ctx, project(org, "again", "pjheld-first"), client.DryRunAll)).To(MatchError(ContainSubstring(
			"namespace pjheld-first was admitted into organization pjheld a moment ago by another request")))
	})

	It("gives a namespace to exactly one of 10 projects asking for it at once", func(ctx SpecContext) {
		const org = "pjsame"
		boss := projectOrganization(ctx, org, 20)
		c := clientFor(boss, nil)
		errs := atOnce(10, func(i int) error { return c.Create(ctx, project(org, fmt.Sprintf("p%d", i), "pjsame-shared")) })
		admitted := 0
		for _, err := range errs {
			if err == nil {
				admitted++
				continue
			}
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(Or(
				ContainSubstring("namespace pjsame-shared was admitted into organization pjsame a moment ago by another request"),
				MatchRegexp(`project p\d of organization pjsame already has namespace pjsame-shared`)))
		}
		Expect(admitted).To(Equal(1))
	})
})
