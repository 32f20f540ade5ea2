package arbiter

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func member(name, email string, admin, deleting bool) tenancyv1alpha1.OrganizationMember {
	m := tenancyv1alpha1.OrganizationMember{ObjectMeta: metav1.ObjectMeta{Name: name}}
	m.Spec.Email, m.Spec.Admin = email, admin
	if deleting {
		t := metav1.NewTime(now)
		m.DeletionTimestamp = &t
	}
	return m
}

func record(name, email string, admin, deleted bool, age time.Duration) tenancyv1alpha1.AdmittedMember {
	return tenancyv1alpha1.AdmittedMember{Name: name, Email: email, Admin: admin, Deleted: deleted, Time: metav1.NewTime(now.Add(-age))}
}

func TestMembershipBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stored   []tenancyv1alpha1.OrganizationMember
		admitted []tenancyv1alpha1.AdmittedMember
		subject  string
		want     Bounds
		kept     int // records left after pruning
	}{{
		name:    "stored members only",
		stored:  []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false), member("b", "b@x.io", false, false), member("c", "c@x.io", true, true)},
		subject: "z",
		want:    Bounds{Members: 2, Admins: 1, SureAdmins: 1},
	}, {
		name:     "an admitted creation counts towards the limits but is no sure admin",
		stored:   []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false)},
		admitted: []tenancyv1alpha1.AdmittedMember{record("n", "n@x.io", true, false, time.Second)},
		subject:  "z",
		want:     Bounds{Members: 2, Admins: 2, SureAdmins: 1},
		kept:     1,
	}, {
		name:     "an admitted deletion of an admin is no sure admin, and still counts towards the limits",
		stored:   []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false), member("b", "b@x.io", true, false)},
		admitted: []tenancyv1alpha1.AdmittedMember{record("a", "", false, true, time.Second)},
		subject:  "b",
		want:     Bounds{Members: 1, Admins: 1, SureAdmins: 0},
		kept:     1,
	}, {
		name:     "an admitted demotion is no sure admin",
		stored:   []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false)},
		admitted: []tenancyv1alpha1.AdmittedMember{record("a", "a@x.io", false, false, time.Second)},
		subject:  "z",
		want:     Bounds{Members: 1, Admins: 1, SureAdmins: 0},
		kept:     1,
	}, {
		name:     "records the stored members show, or older than the window, are pruned",
		stored:   []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false), member("d", "d@x.io", false, true)},
		admitted: []tenancyv1alpha1.AdmittedMember{record("a", "a@x.io", true, false, time.Second), record("d", "", false, true, time.Second), record("old", "o@x.io", true, false, Window)},
		subject:  "z",
		want:     Bounds{Members: 1, Admins: 1, SureAdmins: 1},
	}, {
		name:     "the subject itself is left out",
		stored:   []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false)},
		admitted: []tenancyv1alpha1.AdmittedMember{record("a", "a@x.io", false, false, time.Second)},
		subject:  "a",
		want:     Bounds{},
		kept:     1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			changes := &tenancyv1alpha1.AdmittedChanges{Members: tc.admitted}
			ms := NewMembership(tc.stored, changes, now)
			if got := ms.Others(tc.subject); got != tc.want {
				t.Errorf("Others(%q) = %+v, want %+v", tc.subject, got, tc.want)
			}
			if len(changes.Members) != tc.kept {
				t.Errorf("kept %d records, want %d: %+v", len(changes.Members), tc.kept, changes.Members)
			}
		})
	}
}

func TestEmailOwnerAndSurelyAdmin(t *testing.T) {
	stored := []tenancyv1alpha1.OrganizationMember{member("a", "a@x.io", true, false), member("b", "b@x.io", true, false)}
	changes := &tenancyv1alpha1.AdmittedChanges{Members: []tenancyv1alpha1.AdmittedMember{
		record("n", "new@x.io", false, false, time.Second), // admitted, not stored yet
		record("b", "b@x.io", false, false, time.Second),   // being demoted
	}}
	ms := NewMembership(stored, changes, now)
	if got := ms.EmailOwner("z", "new@x.io"); got != "n" {
		t.Errorf("EmailOwner(new@x.io) = %q, want n: an admitted email is taken", got)
	}
	if got := ms.EmailOwner("a", "a@x.io"); got != "" {
		t.Errorf("EmailOwner(a, a@x.io) = %q, want none: a member's own email is its own", got)
	}
	if !ms.SurelyAdmin("a") || ms.SurelyAdmin("b") || ms.SurelyAdmin("n") {
		t.Errorf("SurelyAdmin: a=%v b=%v n=%v, want true false false", ms.SurelyAdmin("a"), ms.SurelyAdmin("b"), ms.SurelyAdmin("n"))
	}
}

func TestNamespaces(t *testing.T) {
	changes := &tenancyv1alpha1.AdmittedChanges{Namespaces: []tenancyv1alpha1.AdmittedNamespace{
		{Name: "shown", Time: metav1.NewTime(now)},
		{Name: "pending", Time: metav1.NewTime(now.Add(-time.Second))},
		{Name: "expired", Time: metav1.NewTime(now.Add(-Window))},
	}}
	if got := Namespaces([]string{"home", "shown", "x"}, changes, "x", now); got != 3 {
		t.Errorf("Namespaces = %d, want 3 (home, shown, pending)", got)
	}
	if len(changes.Namespaces) != 1 || changes.Namespaces[0].Name != "pending" {
		t.Errorf("records left %+v, want only pending", changes.Namespaces)
	}
}

func TestNamespacePending(t *testing.T) {
	records := func() *tenancyv1alpha1.AdmittedChanges {
		return &tenancyv1alpha1.AdmittedChanges{Namespaces: []tenancyv1alpha1.AdmittedNamespace{
			{Name: "shown", Time: metav1.NewTime(now)},
			{Name: "pending", Time: metav1.NewTime(now.Add(-time.Second))},
			{Name: "expired", Time: metav1.NewTime(now.Add(-Window))},
		}}
	}
	for name, want := range map[string]bool{"pending": true, "shown": false, "expired": false, "never": false} {
		if got := NamespacePending([]string{"shown"}, records(), name, now); got != want {
			t.Errorf("NamespacePending(%s) = %v, want %v", name, got, want)
		}
	}
	if NamespacePending(nil, nil, "pending", now) {
		t.Error("NamespacePending without records = true, want false")
	}
}

func TestRecordMemberReplaces(t *testing.T) {
	org := &tenancyv1alpha1.Organization{}
	RecordMember(org, MemberState{Name: "b", Email: "b@x.io", Admin: true}, now)
	RecordMember(org, MemberState{Name: "a", Email: "a@x.io"}, now)
	RecordMember(org, MemberState{Name: "b", Email: "b@x.io", Admin: true, Deleted: true}, now)
	got := org.Status.Admitted.Members
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || !got[1].Deleted || got[1].Email != "" || got[1].Admin {
		t.Errorf("records = %+v, want a, then b deleted without email or admin", got)
	}
}
