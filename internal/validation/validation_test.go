package validation_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/validation"
)

func TestOrganizationName(t *testing.T) {
	tests := []struct {
		name  string
		valid bool
	}{
		{"acme", true}, {"a", true}, {"acme-corp-2", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"Acme", false}, {"1acme", false}, {"acme-", false},
		{"ac_me", false}, {"ac.me", false}, {"default", false}, {"kube-system", false}, {"kube-anything", false},
		{"openshift", false}, {"openshift-x", false}, {"org-operator-system", false}, {"-acme", false},
	}
	for _, tt := range tests {
		if got := validation.OrganizationName(tt.name); (len(got) == 0) != tt.valid {
			t.Errorf("OrganizationName(%q) = %v, want valid=%v", tt.name, got, tt.valid)
		}
	}
}

func TestEmail(t *testing.T) {
	tests := []struct {
		email string
		valid bool
	}{
		{"alice@example.com", true}, {"a.b+tag@sub.example.co", true}, {"x_y%z@ex-ample.io", true},
		{"", false}, {"alice", false}, {"alice@", false}, {"@example.com", false}, {"alice@localhost", false},
		{"Alice <alice@example.com>", false}, {"alice@example..com", false}, {"alice@.example.com", false},
		{"alice@example.com.", false}, {" alice@example.com", false}, {"alice@@example.com", false},
		{strings.Repeat("a", 250) + "@x.io", false},
	}
	for _, tt := range tests {
		if got := validation.Email(field.NewPath("spec", "email"), tt.email); (len(got) == 0) != tt.valid {
			t.Errorf("Email(%q) = %v, want valid=%v", tt.email, got, tt.valid)
		}
	}
}

func TestSubscription(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	later := metav1.NewTime(start.Add(time.Second))
	tests := []struct {
		name  string
		sub   *tenancyv1alpha1.Subscription
		valid bool
	}{
		{"none", nil, true},
		{"open-ended", &tenancyv1alpha1.Subscription{StartDate: &start}, true},
		{"end after start", &tenancyv1alpha1.Subscription{StartDate: &start, EndDate: &later}, true},
		{"end equals start", &tenancyv1alpha1.Subscription{StartDate: &start, EndDate: &start}, false},
		{"end before start", &tenancyv1alpha1.Subscription{StartDate: &later, EndDate: &start}, false},
	}
	for _, tt := range tests {
		if got := validation.Subscription(tt.sub); (len(got) == 0) != tt.valid {
			t.Errorf("%s: %v, want valid=%v", tt.name, got, tt.valid)
		}
	}
}

func TestMember(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*tenancyv1alpha1.OrganizationMember)
		field  string // the field of the first error; empty when valid
	}{
		{"valid", func(*tenancyv1alpha1.OrganizationMember) {}, ""},
		{"bad email", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Email = "nope" }, "spec.email"},
		{"system username", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = "system:admin" }, "spec.username"},
		{"padded username", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.Username = " bob" }, "spec.username"},
		{"unknown role", func(m *tenancyv1alpha1.OrganizationMember) { m.Spec.KubernetesRole = "Owner" }, "spec.kubernetesRole"},
	}
	for _, tt := range tests {
		m := &tenancyv1alpha1.OrganizationMember{Spec: tenancyv1alpha1.OrganizationMemberSpec{Email: "bob@example.com", KubernetesRole: "View"}}
		tt.mutate(m)
		errs := validation.Member(m)
		switch {
		case tt.field == "" && len(errs) > 0:
			t.Errorf("%s: unexpected %v", tt.name, errs)
		case tt.field != "" && (len(errs) == 0 || errs[0].Field != tt.field):
			t.Errorf("%s: got %v, want an error on %s", tt.name, errs, tt.field)
		}
	}
}

// The fuzz tests check that no input makes a validation function panic, and that what is
// accepted is accepted consistently with the CRD's own rules.
func TestProjectNamespace(t *testing.T) {
	for _, c := range []struct{ home, project, want string }{
		{"acme", "web", "acme-web"},
		{"acme", strings.Repeat("p", 58), "acme-" + strings.Repeat("p", 58)},
		{"acme", strings.Repeat("p", 59), ""}, // 64 characters
		{"acme", "web.v2", ""},
	} {
		if got := validation.ProjectNamespace(c.home, c.project); got != c.want {
			t.Errorf("ProjectNamespace(%q, %q) = %q, want %q", c.home, c.project, got, c.want)
		}
	}
}

func TestProject(t *testing.T) {
	project := func(ns string) *tenancyv1alpha1.OrganizationProject {
		return &tenancyv1alpha1.OrganizationProject{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "web"},
			Spec: tenancyv1alpha1.OrganizationProjectSpec{Namespace: ns}}
	}
	for ns, want := range map[string]string{
		"acme-web":            "",
		"":                    "spec.namespace: Required value: the default, acme-web, is not a valid namespace name",
		"kube-web":            `spec.namespace: Forbidden: "kube-web" is reserved for the system`,
		"default":             `spec.namespace: Forbidden: "default" is reserved for the system`,
		"org-operator-system": `spec.namespace: Forbidden: "org-operator-system" is reserved for the system`,
	} {
		errs := validation.Project(project(ns))
		if got := errs.ToAggregate(); (got == nil) != (want == "") || got != nil && !strings.Contains(got.Error(), want) {
			t.Errorf("Project(namespace %q) = %v, want %q", ns, got, want)
		}
	}
}

func FuzzOrganizationName(f *testing.F) {
	for _, s := range []string{"acme", "", "kube-x", "A", strings.Repeat("z", 64), "a-", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if len(validation.OrganizationName(name)) == 0 {
			if len(name) > 63 || tenancyv1alpha1.IsReservedName(name) || strings.ToLower(name) != name {
				t.Fatalf("accepted %q", name)
			}
		}
	})
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"alice@example.com", "", "@", "a@b", "\"quoted\"@example.com", "a@[127.0.0.1]", "=?utf-8?q?x?=@e.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		if len(validation.Email(field.NewPath("email"), email)) == 0 && !strings.Contains(email, "@") {
			t.Fatalf("accepted %q without an @", email)
		}
	})
}

func FuzzMember(f *testing.F) {
	f.Add("bob@example.com", "bob", "View", true)
	f.Add("", "system:x", "Owner", false)
	f.Fuzz(func(t *testing.T, email, username, role string, admin bool) {
		m := &tenancyv1alpha1.OrganizationMember{Spec: tenancyv1alpha1.OrganizationMemberSpec{
			Email: email, Username: username, KubernetesRole: tenancyv1alpha1.KubernetesRole(role), Admin: admin,
		}}
		_ = validation.Member(m)
	})
}
