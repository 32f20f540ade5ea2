package v1alpha1_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// newOrg returns a valid Organization named name, changed by mutate.
func newOrg(name string, mutate ...func(*tenancyv1alpha1.Organization)) *tenancyv1alpha1.Organization {
	o := &tenancyv1alpha1.Organization{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: tenancyv1alpha1.OrganizationSpec{
			DisplayName:  "Test Organization",
			Description:  "An organization the validation tests create.",
			LogoURL:      "https://example.com/logo.png",
			Links:        map[string]string{"website": "https://example.com", "docs": "http://docs.example.com/start"},
			ContactEmail: "platform@example.com",
			Type:         tenancyv1alpha1.OrganizationTypeBusiness,
			Subscription: &tenancyv1alpha1.Subscription{
				Plan:      "business",
				StartDate: ptrTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
				EndDate:   ptrTime(time.Date(2027, 12, 31, 23, 59, 59, 0, time.UTC)),
			},
			DeletionPolicy: tenancyv1alpha1.DeletionPolicyBlock,
		},
	}
	for _, m := range mutate {
		m(o)
	}
	return o
}

// newMember returns a valid OrganizationMember named name in membersNamespace, changed by mutate.
func newMember(name string, mutate ...func(*tenancyv1alpha1.OrganizationMember)) *tenancyv1alpha1.OrganizationMember {
	m := &tenancyv1alpha1.OrganizationMember{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: membersNamespace},
		Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email:          "someone@example.com",
			Username:       "someone",
			KubernetesRole: tenancyv1alpha1.KubernetesRoleEdit,
		},
	}
	for _, f := range mutate {
		f(m)
	}
	return m
}

// newProject returns a valid OrganizationProject named name in membersNamespace, changed by mutate.
func newProject(name string, mutate ...func(*tenancyv1alpha1.OrganizationProject)) *tenancyv1alpha1.OrganizationProject {
	p := &tenancyv1alpha1.OrganizationProject{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: membersNamespace},
		Spec: tenancyv1alpha1.OrganizationProjectSpec{
			Namespace: "validation-web",
			Members:   []tenancyv1alpha1.ProjectMember{{Name: "someone", KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin}},
		},
	}
	for _, f := range mutate {
		f(p)
	}
	return p
}

// raw turns a typed object into an unstructured one and lets mutate edit its content, for
// manifests the Go types cannot express (a missing required field, an empty string that
// omitempty would drop, a malformed date).
func raw(obj client.Object, mutate func(content map[string]any)) *unstructured.Unstructured {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(err)
	}
	u := &unstructured.Unstructured{Object: content}
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		panic(err)
	}
	u.SetGroupVersionKind(gvks[0])
	delete(u.Object, "status")
	mutate(u.Object)
	return u
}

// spec returns the spec map of an unstructured object's content.
func spec(content map[string]any) map[string]any { return content["spec"].(map[string]any) }

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

// links returns n valid links.
func links(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("link-%02d", i)] = fmt.Sprintf("https://example.com/%d", i)
	}
	return out
}

// freshCopy returns an empty object of obj's type and GroupVersionKind to Get into.
func freshCopy(obj client.Object) client.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		out := &unstructured.Unstructured{}
		out.SetGroupVersionKind(u.GroupVersionKind())
		return out
	}
	out, err := scheme.New(mustGVK(obj))
	if err != nil {
		panic(err)
	}
	return out.(client.Object)
}

func mustGVK(obj client.Object) schema.GroupVersionKind {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		panic(err)
	}
	return gvks[0]
}

var _ = Describe("Admission of Organizations and OrganizationMembers", func() {
	long := strings.Repeat

	DescribeTable("rejects bad manifests",
		func(obj client.Object, message string) {
			obj = obj.DeepCopyObject().(client.Object)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				DeferCleanup(func() { _ = k8sClient.Delete(ctx, obj) })
			}
			Expect(err).To(HaveOccurred(), "the API server accepted the manifest")
			GinkgoWriter.Printf("rejected: %v\n", err)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not an Invalid error: %v", err)
			Expect(err.Error()).To(ContainSubstring(message))

			err = k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), freshCopy(obj))
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "expected NotFound after the rejection, got %v", err)
		},

		// Organization: metadata.name.
		Entry("org name with uppercase letters", newOrg("Acme-Upper"),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org name with a leading digit", newOrg("1acme"),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org name with a trailing dash", newOrg("acme-trailing-"),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org name of 64 characters", newOrg("n"+long("a", 63)),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org name with dots", newOrg("acme.example"),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org name with an underscore", newOrg("acme_underscore"),
			"metadata.name must be at most 63 lowercase letters"),
		Entry("org named default", newOrg("default"),
			"metadata.name is reserved for the system"),
		Entry("org named kube-system", newOrg("kube-system"),
			"metadata.name is reserved for the system"),
		Entry("org named kube-public", newOrg("kube-public"),
			"metadata.name is reserved for the system"),
		Entry("org named kube-node-lease", newOrg("kube-node-lease"),
			"metadata.name is reserved for the system"),
		Entry("org named kube-foo", newOrg("kube-foo"),
			"metadata.name is reserved for the system"),
		Entry("org named openshift", newOrg("openshift"),
			"metadata.name is reserved for the system"),
		Entry("org named openshift-x", newOrg("openshift-x"),
			"metadata.name is reserved for the system"),
		Entry("org named org-operator-system", newOrg("org-operator-system"),
			"metadata.name is reserved for the system"),

		// Organization: spec.
		Entry("org without spec", raw(newOrg("no-spec"), func(c map[string]any) { delete(c, "spec") }),
			"spec: Required value"),
		Entry("org without displayName", raw(newOrg("no-displayname"), func(c map[string]any) { delete(spec(c), "displayName") }),
			"spec.displayName: Required value"),
		Entry("org with an empty displayName", newOrg("empty-displayname", func(o *tenancyv1alpha1.Organization) { o.Spec.DisplayName = "" }),
			"spec.displayName in body should be at least 1 chars long"),
		Entry("org with a 51-character displayName", newOrg("long-displayname", func(o *tenancyv1alpha1.Organization) { o.Spec.DisplayName = long("d", 51) }),
			"spec.displayName: Too long: may not be more than 50 bytes"),
		Entry("org with a 257-character description", newOrg("long-description", func(o *tenancyv1alpha1.Organization) { o.Spec.Description = long("d", 257) }),
			"spec.description: Too long: may not be more than 256 bytes"),
		Entry("org with a logoURL that is not a URL", newOrg("logo-not-url", func(o *tenancyv1alpha1.Organization) { o.Spec.LogoURL = "not a url" }),
			"logoURL must be an absolute http or https URL"),
		Entry("org with an ftp:// logoURL", newOrg("logo-ftp", func(o *tenancyv1alpha1.Organization) { o.Spec.LogoURL = "ftp://example.com/logo.png" }),
			"logoURL must be an absolute http or https URL"),
		Entry("org with a relative logoURL", newOrg("logo-relative", func(o *tenancyv1alpha1.Organization) { o.Spec.LogoURL = "/logo.png" }),
			"logoURL must be an absolute http or https URL"),
		Entry("org with a logoURL over 2048 characters", newOrg("logo-long", func(o *tenancyv1alpha1.Organization) {
			o.Spec.LogoURL = "https://example.com/" + long("l", 2048)
		}),
			"spec.logoURL: Too long: may not be more than 2048 bytes"),
		Entry("org with a link name holding a space", newOrg("link-key-space", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"bad key": "https://example.com"}
		}),
			"link names must be 1-63 letters, digits"),
		Entry("org with a link name starting with a dash", newOrg("link-key-dash", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"-docs": "https://example.com"}
		}),
			"link names must be 1-63 letters, digits"),
		Entry("org with an empty link name", newOrg("link-key-empty", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"": "https://example.com"}
		}),
			"link names must be 1-63 letters, digits"),
		Entry("org with a 64-character link name", newOrg("link-key-long", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{long("k", 64): "https://example.com"}
		}),
			"link names must be 1-63 letters, digits"),
		Entry("org with a non-http link target", newOrg("link-target-ftp", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"files": "ftp://files.example.com"}
		}),
			"link targets must be absolute http or https URLs"),
		Entry("org with a link target that is not a URL", newOrg("link-target-text", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"website": "example dot com"}
		}),
			"link targets must be absolute http or https URLs"),
		Entry("org with a link target over 2048 characters", newOrg("link-target-long", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"website": "https://example.com/" + long("l", 2048)}
		}),
			"link targets must be absolute http or https URLs of at most 2048 characters"),
		Entry("org with 17 links", newOrg("links-17", func(o *tenancyv1alpha1.Organization) { o.Spec.Links = links(17) }),
			"spec.links: Too many: 17: must have at most 16 items"),
		Entry("org with a malformed contactEmail", newOrg("email-malformed", func(o *tenancyv1alpha1.Organization) { o.Spec.ContactEmail = "platform.example.com" }),
			"spec.contactEmail in body should match"),
		Entry("org with a contactEmail without a domain dot", newOrg("email-no-tld", func(o *tenancyv1alpha1.Organization) { o.Spec.ContactEmail = "platform@localhost" }),
			"spec.contactEmail in body should match"),
		Entry("org with a type not in the enum", newOrg("type-bad", func(o *tenancyv1alpha1.Organization) { o.Spec.Type = "Startup" }),
			`spec.type: Unsupported value: "Startup": supported values: "Business", "Enterprise", "Individual", "Trial"`),
		Entry("org with a lowercase type", newOrg("type-lower", func(o *tenancyv1alpha1.Organization) { o.Spec.Type = "business" }),
			`spec.type: Unsupported value: "business"`),
		Entry("org with a deletionPolicy not in the enum", newOrg("policy-bad", func(o *tenancyv1alpha1.Organization) { o.Spec.DeletionPolicy = "Orphan" }),
			`spec.deletionPolicy: Unsupported value: "Orphan": supported values: "Block", "Cascade"`),
		Entry("org with endDate before startDate", newOrg("end-before-start", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Subscription.StartDate = ptrTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
			o.Spec.Subscription.EndDate = ptrTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		}),
			"subscription.endDate must be after subscription.startDate"),
		Entry("org with endDate equal to startDate", newOrg("end-equals-start", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Subscription.EndDate = o.Spec.Subscription.StartDate.DeepCopy()
		}),
			"subscription.endDate must be after subscription.startDate"),
		Entry("org with a startDate that is not a date-time", raw(newOrg("start-not-date"), func(c map[string]any) {
			spec(c)["subscription"].(map[string]any)["startDate"] = "next monday"
		}),
			"spec.subscription.startDate in body must be of type date-time"),
		Entry("org with an uppercase plan", newOrg("plan-upper", func(o *tenancyv1alpha1.Organization) { o.Spec.Subscription.Plan = "Business" }),
			"spec.subscription.plan in body should match"),
		Entry("org with a plan starting with a digit", newOrg("plan-digit", func(o *tenancyv1alpha1.Organization) { o.Spec.Subscription.Plan = "1plan" }),
			"spec.subscription.plan in body should match"),
		Entry("org with a 64-character plan", newOrg("plan-long", func(o *tenancyv1alpha1.Organization) { o.Spec.Subscription.Plan = long("p", 64) }),
			"spec.subscription.plan: Too long: may not be more than 63 bytes"),
		Entry("org with an owner that is both a user and a group", newOrg("owner-both", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Email: "alice@acme.example", Group: "acme:admins"}
		}), "an owner is either a user (email) or a group (group)"),
		Entry("org with an empty owner", newOrg("owner-empty", func(o *tenancyv1alpha1.Organization) { o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{} }),
			"an owner is either a user (email) or a group (group)"),
		Entry("org with a system: group as owner", newOrg("owner-system", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Group: "system:masters"}
		}), "group cannot be a system: group"),
		Entry("org with an owner username but no email", newOrg("owner-username", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Group: "acme:admins", Username: "alice"}
		}), "username names a user owner and needs email"),

		// OrganizationMember.
		Entry("member without spec", raw(newMember("no-spec"), func(c map[string]any) { delete(c, "spec") }),
			"spec: Required value"),
		Entry("member without email, group or serviceAccount", raw(newMember("no-email"), func(c map[string]any) { delete(spec(c), "email") }),
			"a member is exactly one of: a user (email), a group (group) or a service account (serviceAccount)"),
		Entry("member with an email and a group", newMember("email-and-group", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Group = "acme:developers" }),
			"a member is exactly one of"),
		Entry("member with a group and a service account", newMember("group-and-sa", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Username, m.Spec.Group = "", "", "acme:developers"
			m.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: "acme", Name: "ci"}
		}), "a member is exactly one of"),
		Entry("member with a username but no email", newMember("username-group", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Group, m.Spec.Username = "", "acme:developers", "alice"
		}), "username names a user member and needs email"),
		Entry("member with a system: group", newMember("group-system", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Username, m.Spec.Group = "", "", "system:authenticated"
		}), "group cannot be a system: group"),
		Entry("member with an empty group", raw(newMember("group-empty"), func(c map[string]any) {
			delete(spec(c), "email")
			delete(spec(c), "username")
			spec(c)["group"] = ""
		}),
			"spec.group in body should be at least 1 chars long"),
		Entry("member with a service account without a name", raw(newMember("sa-no-name"), func(c map[string]any) {
			delete(spec(c), "email")
			delete(spec(c), "username")
			spec(c)["serviceAccount"] = map[string]any{"namespace": "acme"}
		}), "spec.serviceAccount.name: Required value"),
		Entry("member with a service account in a namespace that is no DNS label", newMember("sa-bad-namespace", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Username = "", ""
			m.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: "Acme_CI", Name: "ci"}
		}), "spec.serviceAccount.namespace in body should match"),
		Entry("member with a malformed email", newMember("email-malformed", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Email = "someone-at-example.com" }),
			"spec.email in body should match"),
		Entry("member with a 255-character email", newMember("email-long", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email = long("e", 255-len("@example.com")) + "@example.com"
		}),
			"spec.email: Too long: may not be more than 254 bytes"),
		Entry("member with an empty email", raw(newMember("email-empty"), func(c map[string]any) { spec(c)["email"] = "" }),
			"spec.email in body should be at least 3 chars long"),
		Entry("member with a system: username", newMember("username-system", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = "system:admin" }),
			"username cannot be a system: identity"),
		Entry("member with a service account username", newMember("username-sa", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Username = "system:serviceaccount:kube-system:default"
		}),
			"username cannot be a system: identity"),
		Entry("member with an empty username", raw(newMember("username-empty"), func(c map[string]any) { spec(c)["username"] = "" }),
			"spec.username in body should be at least 1 chars long"),
		Entry("member with a 254-character username", newMember("username-long", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = long("u", 254) }),
			"spec.username: Too long: may not be more than 253 bytes"),
		Entry("member with a kubernetesRole not in the enum", newMember("role-bad", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.KubernetesRole = "Owner" }),
			`spec.kubernetesRole: Unsupported value: "Owner": supported values: "Admin", "Edit", "View", "None"`),
		Entry("member with a lowercase kubernetesRole", newMember("role-lower", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.KubernetesRole = "admin" }),
			`spec.kubernetesRole: Unsupported value: "admin"`),
		Entry("member with a name of 64 characters", newMember(long("m", 64)),
			"metadata.name must be at most 63 characters"),

		// OrganizationProject.
		Entry("project with a name of 64 characters", newProject(long("p", 64)),
			"metadata.name must be at most 63 characters, so that it can be a label value"),
		Entry("project with a namespace of 64 characters", newProject("long-namespace", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Namespace = long("n", 64)
		}), "spec.namespace: Too long: may not be more than 63 bytes"),
		Entry("project with a namespace that is no DNS label", newProject("dotted-namespace", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Namespace = "web.v2"
		}), "spec.namespace in body should match"),
		Entry("project with an empty namespace", raw(newProject("empty-namespace"), func(c map[string]any) { spec(c)["namespace"] = "" }),
			"spec.namespace in body should be at least 1 chars long"),
		Entry("project with a role not in the enum", newProject("role-bad", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = []tenancyv1alpha1.ProjectMember{{Name: "alice", KubernetesRole: "Owner"}}
		}), `spec.members[0].kubernetesRole: Unsupported value: "Owner"`),
		Entry("project naming a member twice", newProject("member-twice", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Members = []tenancyv1alpha1.ProjectMember{{Name: "alice", KubernetesRole: "View"}, {Name: "alice", KubernetesRole: "Admin"}}
		}), `spec.members[1]: Duplicate value`),
	)

	DescribeTable("accepts boundary manifests",
		func(obj client.Object, check func(got client.Object)) {
			obj = obj.DeepCopyObject().(client.Object)
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed()) })

			got := freshCopy(obj)
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got)).To(Succeed())
			if check != nil {
				check(got)
			}
		},

		Entry("org name of 63 characters", newOrg("n"+long("a", 62)), nil),
		Entry("org name kubeflow (kube without a dash)", newOrg("kubeflow"), nil),
		Entry("org name of one letter", newOrg("a"), nil),
		Entry("org with a 50-character displayName", newOrg("displayname-50", func(o *tenancyv1alpha1.Organization) { o.Spec.DisplayName = long("d", 50) }), nil),
		Entry("org with a 256-character description", newOrg("description-256", func(o *tenancyv1alpha1.Organization) { o.Spec.Description = long("d", 256) }), nil),
		Entry("org with 16 links", newOrg("links-16", func(o *tenancyv1alpha1.Organization) { o.Spec.Links = links(16) }),
			func(got client.Object) {
				Expect(got.(*tenancyv1alpha1.Organization).Spec.Links).To(HaveLen(16))
			}),
		Entry("org with a 63-character link name with dots and underscores", newOrg("link-key-63", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Links = map[string]string{"a._-" + long("k", 59): "https://example.com"}
		}), nil),
		Entry("org with endDate one second after startDate", newOrg("end-one-second", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Subscription.EndDate = ptrTime(o.Spec.Subscription.StartDate.Add(time.Second))
		}), nil),
		Entry("org with only startDate", newOrg("start-only", func(o *tenancyv1alpha1.Organization) { o.Spec.Subscription.EndDate = nil }), nil),
		Entry("org with only displayName, and the defaults come back", &tenancyv1alpha1.Organization{
			ObjectMeta: metav1.ObjectMeta{Name: "minimal"},
			Spec:       tenancyv1alpha1.OrganizationSpec{DisplayName: "Minimal"},
		}, func(got client.Object) {
			o := got.(*tenancyv1alpha1.Organization)
			Expect(o.Spec.Type).To(Equal(tenancyv1alpha1.OrganizationTypeBusiness))
			Expect(o.Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyBlock))
			Expect(o.Spec.Subscription).To(BeNil())
			Expect(o.Spec.Links).To(BeEmpty())
		}),
		Entry("org with a 254-character contactEmail", newOrg("email-254", func(o *tenancyv1alpha1.Organization) {
			o.Spec.ContactEmail = long("e", 254-len("@example.com")) + "@example.com"
		}), nil),
		Entry("member with a name of exactly 63 characters", newMember(long("m", 63)), nil),
		Entry("project with a name of exactly 63 characters", newProject(long("p", 63)), nil),
		Entry("project with a namespace of exactly 63 characters", newProject("namespace-63", func(p *tenancyv1alpha1.OrganizationProject) {
			p.Spec.Namespace = long("n", 63)
		}), nil),
		Entry("member with only an email, and kubernetesRole defaults to View", &tenancyv1alpha1.OrganizationMember{
			ObjectMeta: metav1.ObjectMeta{Name: "minimal", Namespace: membersNamespace},
			Spec:       tenancyv1alpha1.OrganizationMemberSpec{Email: "minimal@example.com"},
		}, func(got client.Object) {
			m := got.(*tenancyv1alpha1.OrganizationMember)
			Expect(m.Spec.KubernetesRole).To(Equal(tenancyv1alpha1.KubernetesRoleView))
			Expect(m.Spec.Admin).To(BeFalse())
			Expect(m.Spec.Username).To(BeEmpty())
		}),
		Entry("member with kubernetesRole None", newMember("role-none", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.KubernetesRole = tenancyv1alpha1.KubernetesRoleNone
		}), nil),
		Entry("member with a 254-character email", newMember("email-254", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email = long("e", 254-len("@example.com")) + "@example.com"
		}), nil),
		Entry("member with a username that merely starts with system", newMember("username-systemd", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = "systemd-user" }), nil),
		Entry("member with a 253-character username", newMember("username-253", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = long("u", 253) }), nil),
		Entry("member that is a group", newMember("group", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Username, m.Spec.Group = "", "", "oidc:acme-developers"
		}), nil),
		Entry("member that is a service account", newMember("service-account", func(m *tenancyv1alpha1.OrganizationMember) {
			m.Spec.Email, m.Spec.Username = "", ""
			m.Spec.ServiceAccount = &tenancyv1alpha1.ServiceAccountSubject{Namespace: "acme-ci", Name: "argocd.deployer"}
		}), nil),
		Entry("org with a user owner", newOrg("owner-user", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Email: "alice@acme.example", Username: "alice"}
		}), nil),
		Entry("org with a group owner", newOrg("owner-group", func(o *tenancyv1alpha1.Organization) {
			o.Spec.Owner = &tenancyv1alpha1.OrganizationOwner{Group: "oidc:acme-admins"}
		}), nil),
	)

	// deletionPolicy has a default (Block): the API server applies defaults when it decodes every
	// write, so removing the field from an organization on Cascade falls back to the safe policy,
	// whichever way it is removed. These specs pin that behaviour.
	Describe("removing deletionPolicy once set to Cascade", func() {
		const manager = "gitops"
		var (
			key        client.ObjectKey
			policyOrgs int // names every spec's organization distinctly
		)

		// apply server-side-applies the organization as manager, with deletionPolicy when policy is set.
		apply := func(policy tenancyv1alpha1.DeletionPolicy) error {
			spec := map[string]any{"displayName": "Policy Test", "type": "Enterprise"}
			if policy != "" {
				spec["deletionPolicy"] = string(policy)
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": tenancyv1alpha1.GroupVersion.String(),
				"kind":       "Organization",
				"metadata":   map[string]any{"name": key.Name},
				"spec":       spec,
			}}
			data, err := u.MarshalJSON()
			Expect(err).NotTo(HaveOccurred())
			return k8sClient.Patch(ctx, u, client.RawPatch(types.ApplyPatchType, data), client.FieldOwner(manager), client.ForceOwnership)
		}

		get := func() *tenancyv1alpha1.Organization {
			got := &tenancyv1alpha1.Organization{}
			Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
			return got
		}

		BeforeEach(func() {
			policyOrgs++
			key = client.ObjectKey{Name: fmt.Sprintf("policy-%d", policyOrgs)}
			Expect(apply(tenancyv1alpha1.DeletionPolicyCascade)).To(Succeed())
			DeferCleanup(func() {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: key.Name}}))).To(Succeed())
			})
			Expect(get().Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyCascade))
		})

		// expectDefaulted checks that the update went through and deletionPolicy was defaulted back
		// to Block, rather than rejected with the rule's message, and that nothing else changed.
		expectDefaulted := func(err error) {
			Expect(err).NotTo(HaveOccurred(), "the transition rule fired after all: update this test and the report")
			got := get()
			Expect(got.Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyBlock))
			Expect(got.Spec.DisplayName).To(Equal("Policy Test"))
			Expect(got.Spec.Type).To(Equal(tenancyv1alpha1.OrganizationTypeEnterprise))
		}

		It("by update", func() {
			org := get()
			org.Spec.DeletionPolicy = "" // omitempty: the field is not sent
			expectDefaulted(k8sClient.Update(ctx, org))
		})

		It("by merge patch", func() {
			expectDefaulted(k8sClient.Patch(ctx, get(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"deletionPolicy":null}}`))))
		})

		It("by json patch", func() {
			expectDefaulted(k8sClient.Patch(ctx, get(), client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/spec/deletionPolicy"}]`))))
		})

		It("by server-side apply", func() {
			expectDefaulted(apply(""))
		})

		It("but can be changed explicitly", func() {
			org := get()
			org.Spec.DeletionPolicy = tenancyv1alpha1.DeletionPolicyBlock
			Expect(k8sClient.Update(ctx, org)).To(Succeed())
			Expect(get().Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyBlock))
		})

		It("but not to a value outside the enum, leaving the object unchanged", func() {
			org := get()
			org.Spec.DeletionPolicy = "Orphan"
			err := k8sClient.Update(ctx, org)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not an Invalid error: %v", err)
			Expect(err.Error()).To(ContainSubstring(`spec.deletionPolicy: Unsupported value: "Orphan": supported values: "Block", "Cascade"`))
			Expect(get().Spec.DeletionPolicy).To(Equal(tenancyv1alpha1.DeletionPolicyCascade))
		})
	})
})

// spec.namespace names the project's namespace for good: the operator never moves a project.
var _ = Describe("A project's spec.namespace", func() {
	var key client.ObjectKey

	BeforeEach(func() {
		p := newProject("immutable")
		key = client.ObjectKeyFromObject(p)
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p))).To(Succeed()) })
	})

	get := func() *tenancyv1alpha1.OrganizationProject {
		GinkgoHelper()
		got := &tenancyv1alpha1.OrganizationProject{}
		Expect(k8sClient.Get(ctx, key, got)).To(Succeed())
		return got
	}

	// expectUnchanged checks that err is the rule's refusal and that the namespace stayed.
	expectUnchanged := func(err error, message string) {
		GinkgoHelper()
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not an Invalid error: %v", err)
		Expect(err.Error()).To(ContainSubstring(message))
		Expect(get().Spec.Namespace).To(Equal("validation-web"))
	}

	It("cannot be changed", func() {
		p := get()
		p.Spec.Namespace = "validation-other"
		expectUnchanged(k8sClient.Update(ctx, p), `spec.namespace: Invalid value: "validation-other": namespace cannot be changed; create another project`)
	})

	It("cannot be removed by update", func() {
		p := get()
		p.Spec.Namespace = "" // omitempty: the field is not sent
		expectUnchanged(k8sClient.Update(ctx, p), "namespace cannot be removed")
	})

	It("cannot be removed by merge patch", func() {
		expectUnchanged(k8sClient.Patch(ctx, get(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"namespace":null}}`))),
			"namespace cannot be removed")
	})

	It("lets the rest of the spec change", func() {
		p := get()
		p.Spec.DisplayName = "Web"
		p.Spec.Members = nil
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Expect(get().Spec.Namespace).To(Equal("validation-web"))
	})
})

// supportedMessage is the message of the rule that keeps organizationQuota to the resources the
// operator holds organization-wide.
const supportedMessage = "organizationQuota supports only count/deployments.apps, count/persistentvolumeclaims, " +
	"count/pods, count/services, count/statefulsets.apps, cpu, ephemeral-storage, limits.cpu, limits.ephemeral-storage, " +
	"limits.memory, memory, persistentvolumeclaims, pods, requests.cpu, requests.ephemeral-storage, requests.memory, " +
	"requests.storage, services, <class>.storageclass.storage.k8s.io/requests.storage, " +
	"<class>.storageclass.storage.k8s.io/persistentvolumeclaims; limit other resources per namespace with namespaceQuota"

// quantities returns a ResourceList of name, quantity pairs.
func quantities(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

// everySupported holds every resource organizationQuota accepts.
var everySupported = quantities("pods", "50", "count/pods", "50", "cpu", "8", "memory", "16Gi", "ephemeral-storage", "20Gi",
	"requests.cpu", "8", "requests.memory", "16Gi", "requests.ephemeral-storage", "20Gi",
	"limits.cpu", "16", "limits.memory", "32Gi", "limits.ephemeral-storage", "40Gi",
	"persistentvolumeclaims", "20", "count/persistentvolumeclaims", "20", "requests.storage", "1Ti",
	"gold.storageclass.storage.k8s.io/requests.storage", "500Gi", "fast-ssd.storageclass.storage.k8s.io/persistentvolumeclaims", "5",
	"count/deployments.apps", "100", "count/statefulsets.apps", "10", "services", "30", "count/services", "30")

// newPlan returns a valid OrganizationPlan named name with quotas.
func newPlan(name string, quotas tenancyv1alpha1.Quotas) *tenancyv1alpha1.OrganizationPlan {
	return &tenancyv1alpha1.OrganizationPlan{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Test Plan", Quotas: quotas},
	}
}

// withQuotas sets an organization's quotas.
func withQuotas(q tenancyv1alpha1.Quotas) func(*tenancyv1alpha1.Organization) {
	return func(o *tenancyv1alpha1.Organization) { o.Spec.Quotas = &q }
}

var _ = Describe("organizationQuota", func() {
	// expectRefused checks that err is the API server refusing organizationQuota with the rule's message.
	expectRefused := func(err error) {
		GinkgoHelper()
		Expect(err).To(HaveOccurred(), "the API server accepted the resource")
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not an Invalid error: %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.quotas.organizationQuota: Invalid value"))
		Expect(err.Error()).To(ContainSubstring(supportedMessage))
	}

	DescribeTable("refuses a resource the operator cannot hold organization-wide",
		func(obj client.Object) {
			obj = obj.DeepCopyObject().(client.Object)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				DeferCleanup(func() { _ = k8sClient.Delete(ctx, obj) })
			}
			GinkgoWriter.Printf("rejected: %v\n", err)
			expectRefused(err)
			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), freshCopy(obj)))).To(BeTrue())
		},
		Entry("a plan with count/secrets", newPlan("quota-secrets", tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("pods", "500", "count/secrets", "200")})),
		Entry("an organization with count/configmaps", newOrg("quota-configmaps", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("count/configmaps", "200")}))),
		Entry("a plan with count/jobs.batch", newPlan("quota-jobs", tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("count/jobs.batch", "100")})),
		Entry("an organization with services.loadbalancers", newOrg("quota-lb", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("requests.cpu", "4", "services.loadbalancers", "1")}))),
		Entry("an organization with a storage class resource the API server does not count", newOrg("quota-class", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("gold.storageclass.storage.k8s.io/limits.storage", "10Gi")}))),
		Entry("an organization with an unnamed storage class", newOrg("quota-noclass", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities(".storageclass.storage.k8s.io/requests.storage", "10Gi")}))),
		Entry("an organization with an extended resource", newOrg("quota-gpu", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: quantities("requests.nvidia.com/gpu", "4")}))),
	)

	DescribeTable("accepts every resource the ledger charges, and anything in namespaceQuota",
		func(obj client.Object) {
			obj = obj.DeepCopyObject().(client.Object)
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed()) })
		},
		Entry("a plan", newPlan("quota-supported", tenancyv1alpha1.Quotas{
			OrganizationQuota: everySupported,
			NamespaceQuota:    quantities("count/deployments.apps", "20", "requests.storage", "100Gi", "services", "10"),
		})),
		Entry("an organization", newOrg("quota-supported", withQuotas(tenancyv1alpha1.Quotas{
			OrganizationQuota: everySupported,
			NamespaceQuota:    quantities("count/deployments.apps", "20", "requests.storage", "100Gi", "services", "10"),
		}))),
	)

	It("refuses an update that adds an unsupported resource, and leaves the object as it was", func() {
		o := newOrg("quota-update", withQuotas(tenancyv1alpha1.Quotas{OrganizationQuota: quantities("pods", "10")}))
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed()) })

		o.Spec.Quotas.OrganizationQuota["count/secrets"] = resource.MustParse("20")
		expectRefused(k8sClient.Update(ctx, o))
		expectRefused(k8sClient.Patch(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: o.Name}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"quotas":{"organizationQuota":{"count/configmaps":"100"}}}}`))))

		got := &tenancyv1alpha1.Organization{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), got)).To(Succeed())
		Expect(got.Spec.Quotas.OrganizationQuota).To(HaveLen(1))
		Expect(got.Spec.Quotas.OrganizationQuota).To(HaveKey(corev1.ResourcePods))
	})

	// An object stored before the rule existed keeps an unsupported resource until organizationQuota
	// changes: the API server ratchets validation of unchanged fields (CRDValidationRatcheting).
	// The spec stores one by removing the rule from the CRD for a moment.
	It("lets an organization stored before the rule change its other fields, and refuses a change of organizationQuota that keeps the resource", Serial, func() {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		crdKey := client.ObjectKey{Name: "organizations.tenancy.orgoperator.io"}
		rulesPath := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", "quotas", "properties", "organizationQuota", "x-kubernetes-validations"}
		// setRules sets the rules of organizationQuota in the CRD (none when rules is nil).
		setRules := func(rules []any) {
			Eventually(func() error {
				if err := k8sClient.Get(ctx, crdKey, crd); err != nil {
					return err
				}
				versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
				version := versions[0].(map[string]any)
				if rules == nil {
					unstructured.RemoveNestedField(version, rulesPath...)
				} else if err := unstructured.SetNestedSlice(version, rules, rulesPath...); err != nil {
					return err
				}
				if err := unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions"); err != nil {
					return err
				}
				return k8sClient.Update(ctx, crd)
			}).Should(Succeed())
		}
		Expect(k8sClient.Get(ctx, crdKey, crd)).To(Succeed())
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		original, found, err := unstructured.NestedSlice(versions[0].(map[string]any), rulesPath...)
		Expect(err).NotTo(HaveOccurred())
		Expect(found).To(BeTrue(), "organizationQuota has no rule in the CRD")

		legacy := quantities("pods", "10", "count/secrets", "20")
		o := newOrg("quota-ratchet", withQuotas(tenancyv1alpha1.Quotas{OrganizationQuota: legacy}))
		By("storing an organization with count/secrets while the CRD has no rule")
		setRules(nil)
		DeferCleanup(func() { setRules(original) })
		Eventually(func() error { return k8sClient.Create(ctx, o.DeepCopy()) }).Should(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, o))).To(Succeed()) })

		By("putting the rule back")
		setRules(original)
		Eventually(func() error {
			return k8sClient.Create(ctx, newOrg("quota-ratchet-probe", withQuotas(tenancyv1alpha1.Quotas{OrganizationQuota: legacy})), client.DryRunAll)
		}).Should(HaveOccurred())
		expectRefused(k8sClient.Create(ctx, newOrg("quota-ratchet-probe", withQuotas(tenancyv1alpha1.Quotas{OrganizationQuota: legacy})), client.DryRunAll))

		get := func() *tenancyv1alpha1.Organization {
			GinkgoHelper()
			got := &tenancyv1alpha1.Organization{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(o), got)).To(Succeed())
			return got
		}
		By("changing another field: accepted, the resource stays")
		got := get()
		got.Spec.DisplayName = "Ratcheted"
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		Expect(get().Spec.Quotas.OrganizationQuota).To(HaveKey(corev1.ResourceName("count/secrets")))

		By("changing organizationQuota but keeping the resource: refused")
		got = get()
		got.Spec.Quotas.OrganizationQuota[corev1.ResourcePods] = resource.MustParse("20")
		expectRefused(k8sClient.Update(ctx, got))

		By("removing the resource: accepted")
		got = get()
		delete(got.Spec.Quotas.OrganizationQuota, "count/secrets")
		Expect(k8sClient.Update(ctx, got)).To(Succeed())
		left := get().Spec.Quotas.OrganizationQuota
		Expect(left).To(HaveLen(1))
		Expect(left.Pods().Value()).To(BeEquivalentTo(10))
	})
})

// samplesDir holds the sample manifests, relative to this package.
var samplesDir = filepath.Join("..", "..", "config", "samples")

// readManifests decodes every YAML document of a file.
func readManifests(path string) []*unstructured.Unstructured {
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()

	var out []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		Expect(err).NotTo(HaveOccurred())
		content := map[string]any{}
		Expect(yaml.Unmarshal(doc, &content)).To(Succeed(), "%s: %s", path, doc)
		if len(content) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: content})
	}
}

var _ = Describe("The samples in config/samples", func() {
	It("are listed in kustomization.yaml, plans then organizations first, and pass a server-side dry run", func() {
		var kustomization struct {
			Resources []string `json:"resources"`
		}
		data, err := os.ReadFile(filepath.Join(samplesDir, "kustomization.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(yaml.UnmarshalStrict(data, &kustomization)).To(Succeed())
		Expect(kustomization.Resources).NotTo(BeEmpty())
		Expect(kustomization.Resources[:2]).To(Equal([]string{"tenancy_v1alpha1_organizationplan.yaml", "tenancy_v1alpha1_organization.yaml"}))

		files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var samples []string
		for _, f := range files {
			if base := filepath.Base(f); base != "kustomization.yaml" {
				samples = append(samples, base)
			}
		}
		Expect(kustomization.Resources).To(ConsistOf(samples), "kustomization.yaml must list every sample")

		// No controller runs here, so the home namespaces the operator would create are made by hand.
		// They are left in place: without kube-controller-manager a deleted namespace stays
		// Terminating, and a repeated run could then not create the members in it.
		for _, name := range []string{"acme", "globex"} {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, ns))).To(Succeed())
		}

		kinds := map[string][]string{}
		for _, file := range kustomization.Resources {
			for _, obj := range readManifests(filepath.Join(samplesDir, file)) {
				By(fmt.Sprintf("dry-run creating %s %s/%s from %s", obj.GetKind(), obj.GetNamespace(), obj.GetName(), file))
				Expect(k8sClient.Create(ctx, obj, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))).To(Succeed())
				kinds[obj.GetKind()] = append(kinds[obj.GetKind()], strings.TrimPrefix(client.ObjectKeyFromObject(obj).String(), "/"))

				// A dry run stores nothing.
				err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), freshCopy(obj))
				if obj.GetKind() == "Namespace" && (obj.GetName() == "acme" || obj.GetName() == "globex") {
					continue
				}
				Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s %s was stored by a dry run: %v", obj.GetKind(), obj.GetName(), err)
			}
		}
		Expect(kinds).To(Equal(map[string][]string{
			"OrganizationPlan":       {"free", "trial", "business", "enterprise"},
			"Organization":           {"acme", "globex"},
			"OrganizationMember":     {"acme/alice", "acme/bob", "globex/carol", "acme/developers", "acme/deployer"},
			"OrganizationProject":    {"acme/web"},
			"OrganizationInvitation": {"acme/dana"},
			"Namespace":              {"acme-staging"},
		}))
	})

	It("decode strictly into the Go types", func() {
		decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
		for _, file := range []string{"tenancy_v1alpha1_organizationplan.yaml", "tenancy_v1alpha1_organization.yaml", "tenancy_v1alpha1_organizationmember.yaml",
			"tenancy_v1alpha1_organizationinvitation.yaml"} {
			for _, obj := range readManifests(filepath.Join(samplesDir, file)) {
				data, err := obj.MarshalJSON()
				Expect(err).NotTo(HaveOccurred())
				_, _, err = decoder.Decode(data, nil, nil)
				Expect(err).NotTo(HaveOccurred(), "%s: %s", file, obj.GetName())
			}
		}
	})
})

var _ = Describe("Metering on plans and usage reports", func() {
	plan := func(name string, m *tenancyv1alpha1.PlanMetering) *tenancyv1alpha1.OrganizationPlan {
		return &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Metered", Free: true, Metering: m}}
	}
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }

	It("accepts prices and an allowance, and refuses negative ones", func(ctx SpecContext) {
		Expect(k8sClient.Create(ctx, plan("priced", &tenancyv1alpha1.PlanMetering{
			Prices:           tenancyv1alpha1.MeteringPrices{CPUCoreHour: q("0.05"), MemoryGiBHour: q("10m"), PodHour: q("0")},
			MonthlyAllowance: q("5000"), BlockWhenExhausted: true}), client.DryRunAll)).To(Succeed())
		for _, m := range []*tenancyv1alpha1.PlanMetering{
			{Prices: tenancyv1alpha1.MeteringPrices{CPUCoreHour: q("-1")}},
			{Prices: tenancyv1alpha1.MeteringPrices{MemoryGiBHour: q("-1m")}},
			{Prices: tenancyv1alpha1.MeteringPrices{PodHour: q("-0.001")}},
			{MonthlyAllowance: q("-5")},
		} {
			err := k8sClient.Create(ctx, plan("negative", m), client.DryRunAll)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%+v: %v", m, err)
			Expect(err.Error()).To(ContainSubstring("must not be negative"))
		}
	})

	It("keeps a report's spec as it was created", func(ctx SpecContext) {
		r := &tenancyv1alpha1.OrganizationUsageReport{ObjectMeta: metav1.ObjectMeta{Namespace: membersNamespace, Name: "acme-2026-11-20"},
			Spec: tenancyv1alpha1.OrganizationUsageReportSpec{Organization: "acme",
				PeriodStart: metav1.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), PeriodEnd: metav1.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)}}
		Expect(k8sClient.Create(ctx, r)).To(Succeed())
		r.Spec.Organization = "globex"
		err := k8sClient.Update(ctx, r)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring("a report's spec never changes"))
		backwards := r.DeepCopy()
		backwards.Name, backwards.ResourceVersion = "acme-2026-12-20", ""
		backwards.Spec.Organization = "acme"
		backwards.Spec.PeriodEnd = metav1.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		err = k8sClient.Create(ctx, backwards)
		Expect(err).To(MatchError(ContainSubstring("periodStart must be before periodEnd")))
	})
})

// A report of 1,000 namespaces, as the operator writes it (a status merge patch), stays under
// 256 KiB as the API server stores and serves it, managedFields included.
var _ = Describe("A usage report of 1,000 namespaces", func() {
	It("is under 256 KiB as stored", func(ctx SpecContext) {
		period := metering.Period{Start: time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC), End: time.Date(2027, 1, 20, 12, 0, 0, 0, time.UTC)}
		var namespaces []string
		pods := map[string][]*podcache.Pod{}
		for i := range tenancyv1alpha1.MaxReportNamespaces {
			ns := fmt.Sprintf("team-%04d-production-%s", i, strings.Repeat("x", 42)) // 63 characters, the longest
			namespaces = append(namespaces, ns)
			p := &podcache.Pod{Start: period.Start.Unix() - 1, Requests: podcache.Amounts{CPU: 64_000 + int64(i), Memory: 256<<30 + int64(i)},
				Limits: podcache.Amounts{CPU: 128_000, Memory: 512 << 30}}
			p.Namespace, p.UID = ns, types.UID(ns)
			pods[ns] = []*podcache.Pod{p}
		}
		source := func(ns string) (live, gone []*podcache.Pod) { return pods[ns], nil }
		prices := &tenancyv1alpha1.MeteringPrices{CPUCoreHour: resource.NewMilliQuantity(50, resource.DecimalSI), PodHour: resource.NewMilliQuantity(1, resource.DecimalSI)}
		st := metering.AdvanceStatus(&tenancyv1alpha1.OrganizationUsageReportStatus{}, period, namespaces, source, period.End, prices).Status
		deleted := st.Total
		st.DeletedNamespaces = &deleted
		st.Allowance = resource.NewQuantity(1_000_000, resource.DecimalSI)
		Expect(st.Namespaces).To(HaveLen(tenancyv1alpha1.MaxReportNamespaces))
		Expect(st.Days).To(HaveLen(tenancyv1alpha1.MaxReportDays))

		r := &tenancyv1alpha1.OrganizationUsageReport{
			ObjectMeta: metav1.ObjectMeta{Namespace: membersNamespace, Name: "an-organization-of-a-long-name-2026-12-20",
				Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: "an-organization-of-a-long-name", tenancyv1alpha1.ManagedByLabel: tenancyv1alpha1.ManagedByValue}},
			Spec: tenancyv1alpha1.OrganizationUsageReportSpec{Organization: "an-organization-of-a-long-name",
				PeriodStart: metav1.NewTime(period.Start), PeriodEnd: metav1.NewTime(period.End)},
		}
		Expect(k8sClient.Create(ctx, r)).To(Succeed())
		before := r.DeepCopy()
		r.Status = st
		Expect(k8sClient.Status().Patch(ctx, r, client.MergeFrom(before), client.FieldOwner("org-operator"))).To(Succeed())

		stored := &tenancyv1alpha1.OrganizationUsageReport{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(r), stored)).To(Succeed())
		Expect(stored.Status.Namespaces).To(HaveLen(tenancyv1alpha1.MaxReportNamespaces))
		Expect(stored.Status.Namespaces[0].Limits.CPU).NotTo(BeNil(), "namespaces keep their limits")
		Expect(stored.ManagedFields).NotTo(BeEmpty())
		b, err := json.Marshal(stored)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("stored size in bytes", len(b))
		Expect(len(b)).To(BeNumerically("<", 256<<10))
	})
})
