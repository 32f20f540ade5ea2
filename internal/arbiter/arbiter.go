// Package arbiter decides the admission rules that must hold under concurrency — an organization
// keeps an admin, stays within maxMembers, maxAdmins and maxNamespaces, and has unique emails —
// exactly, across requests racing each other and across webhook replicas.
//
// A webhook admits a change before the API server stores it, so the stored objects alone cannot
// tell a second request what the first one did. Each decision therefore reads the organization and
// the stored objects from the API server (never a cache), judges the change against them and
// against the changes admitted in the last minute (status.admitted), records its own change there
// and writes the organization with its resourceVersion as a precondition. Two decisions that read
// the same organization cannot both be written: the loser reads again and decides again.
//
// Every bound is taken on the safe side: a recorded change that the API server then refused can
// only make the rules stricter, for at most a minute.
package arbiter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/validation"
)

// Window is how long an admitted change may be waiting to be stored: the API server ends every
// request within a minute. A record older than that belongs to a request the API server refused.
const Window = time.Minute

// maxAttempts bounds the compare-and-swap retries of one decision. Each lost race means another
// decision was written, so this many requests would have to race a single one.
const maxAttempts = 100

// Arbiter decides one organization's changes one at a time within this process, so that
// requests racing in one webhook replica queue instead of losing compare-and-swaps to each other;
// the compare-and-swap still arbitrates between replicas. The zero value is ready to use.
type Arbiter struct {
	mu    sync.Mutex
	locks map[string]*orgLock
}

type orgLock struct {
	sync.Mutex
	users int
}

// lock takes the organization's lock and returns its release.
func (a *Arbiter) lock(org string) func() {
	a.mu.Lock()
	if a.locks == nil {
		a.locks = map[string]*orgLock{}
	}
	l := a.locks[org]
	if l == nil {
		l = &orgLock{}
		a.locks[org] = l
	}
	l.users++
	a.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		a.mu.Lock()
		if l.users--; l.users == 0 {
			delete(a.locks, org)
		}
		a.mu.Unlock()
	}
}

// Decide runs decide on the organization as the API server has it, and writes the organization's
// status when decide reports that it changed it (recording what it admitted), with the
// organization's resourceVersion as a precondition; on conflict it starts again from a fresh
// read. decide returns the request's refusal, if any, and must be free of other side effects. A
// missing organization is passed as nil.
func (a *Arbiter) Decide(ctx context.Context, live client.Reader, writer client.Client, org string,
	decide func(org *tenancyv1alpha1.Organization) (changed bool, err error)) error {
	if org == "" {
		_, err := decide(nil)
		return err
	}
	defer a.lock(org)()
	for attempt := 1; ; attempt++ {
		o := &tenancyv1alpha1.Organization{}
		if err := live.Get(ctx, types.NamespacedName{Name: org}, o); err != nil {
			if !apierrors.IsNotFound(err) {
				return apierrors.NewInternalError(err)
			}
			o = nil
		}
		var before *tenancyv1alpha1.Organization
		if o != nil {
			before = o.DeepCopy()
		}
		changed, err := decide(o)
		if err != nil || !changed || o == nil {
			return err
		}
		err = writer.Status().Patch(ctx, o, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			return nil
		case apierrors.IsConflict(err) && attempt < maxAttempts && ctx.Err() == nil:
			continue
		default:
			return apierrors.NewInternalError(fmt.Errorf("recording the admitted change on organization %s: %w", org, err))
		}
	}
}

// MemberState is a member as a request leaves it.
type MemberState struct {
	Name    string
	Email   string // normalized; empty for groups and service accounts
	Subject string // membership.SubjectString of the member's RBAC subject
	Admin   bool
	Deleted bool
}

// StateOf is the state a stored member is in.
func StateOf(m *tenancyv1alpha1.OrganizationMember) MemberState {
	return MemberState{Name: m.Name, Email: validation.NormalizeEmail(m.Spec.Email), Subject: membership.SubjectString(membership.Subject(m)),
		Admin: m.Spec.Admin, Deleted: !m.DeletionTimestamp.IsZero()}
}

// Membership is what admission knows of an organization's members: the stored ones and the
// changes admitted but perhaps not stored yet.
type Membership struct {
	stored   map[string]MemberState
	admitted map[string]MemberState
}

// NewMembership prunes from changes the member records that the stored members show already or
// that are older than Window, and returns what is left together with the stored members.
func NewMembership(stored []tenancyv1alpha1.OrganizationMember, changes *tenancyv1alpha1.AdmittedChanges, now time.Time) Membership {
	ms := Membership{stored: map[string]MemberState{}, admitted: map[string]MemberState{}}
	for i := range stored {
		ms.stored[stored[i].Name] = StateOf(&stored[i])
	}
	if changes == nil {
		return ms
	}
	changes.Members = slices.DeleteFunc(changes.Members, func(r tenancyv1alpha1.AdmittedMember) bool {
		s, ok := ms.stored[r.Name]
		shown := (r.Deleted && (!ok || s.Deleted)) || (!r.Deleted && ok && !s.Deleted && s.Email == r.Email && (r.Subject == "" || s.Subject == r.Subject) && s.Admin == r.Admin)
		return shown || now.Sub(r.Time.Time) >= Window
	})
	for _, r := range changes.Members {
		ms.admitted[r.Name] = MemberState{Name: r.Name, Email: r.Email, Subject: r.Subject, Admin: r.Admin, Deleted: r.Deleted}
	}
	return ms
}

// states returns every state a member may be in: as stored and as last admitted.
func (ms Membership) states(name string) []MemberState {
	var out []MemberState
	if s, ok := ms.stored[name]; ok {
		out = append(out, s)
	}
	if s, ok := ms.admitted[name]; ok {
		out = append(out, s)
	}
	return out
}

func (ms Membership) names() []string {
	names := make([]string, 0, len(ms.stored)+len(ms.admitted))
	for n := range ms.stored {
		names = append(names, n)
	}
	for n := range ms.admitted {
		if _, ok := ms.stored[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Bounds are counts over the members other than the one a request changes.
type Bounds struct {
	// Members and Admins are the most there may be; SureAdmins the fewest admins there may be.
	Members, Admins, SureAdmins int
}

// Others bounds the members other than name.
func (ms Membership) Others(name string) Bounds {
	var b Bounds
	for _, n := range ms.names() {
		if n == name {
			continue
		}
		present, admin := false, false
		for _, s := range ms.states(n) {
			present = present || !s.Deleted
			admin = admin || (!s.Deleted && s.Admin)
		}
		if present {
			b.Members++
		}
		if admin {
			b.Admins++
		}
		if ms.SurelyAdmin(n) {
			b.SureAdmins++
		}
	}
	return b
}

// EmailOwner returns another member that has or may have email, or "".
func (ms Membership) EmailOwner(name, email string) string {
	if email == "" {
		return ""
	}
	return ms.holder(name, func(s MemberState) bool { return s.Email == email })
}

// SubjectOwner returns another member that is or may be bound as subject, or "".
func (ms Membership) SubjectOwner(name, subject string) string {
	return ms.holder(name, func(s MemberState) bool { return s.Subject == subject })
}

// holder returns the first member other than name that has or may have a state with has.
func (ms Membership) holder(name string, has func(MemberState) bool) string {
	for _, n := range ms.names() {
		if n == name {
			continue
		}
		for _, s := range ms.states(n) {
			if !s.Deleted && has(s) {
				return n
			}
		}
	}
	return ""
}

// SurelyAdmin reports whether the member is stored as an admin and admitted as nothing else: a
// member being demoted or removed no longer acts as an admin, nor does one not stored yet.
func (ms Membership) SurelyAdmin(name string) bool {
	if s, ok := ms.stored[name]; !ok || s.Deleted || !s.Admin {
		return false
	}
	s, ok := ms.admitted[name]
	return !ok || (!s.Deleted && s.Admin)
}

// Stored reports whether a member of that name is stored and not being deleted.
func (ms Membership) Stored(name string) bool {
	s, ok := ms.stored[name]
	return ok && !s.Deleted
}

// RecordMember records what a request admitted, replacing an earlier record of the same member.
func RecordMember(org *tenancyv1alpha1.Organization, s MemberState, now time.Time) {
	a := admitted(org)
	a.Members = slices.DeleteFunc(a.Members, func(r tenancyv1alpha1.AdmittedMember) bool { return r.Name == s.Name })
	r := tenancyv1alpha1.AdmittedMember{Name: s.Name, Admin: s.Admin && !s.Deleted, Deleted: s.Deleted, Time: metav1.NewTime(now)}
	if !s.Deleted {
		r.Email, r.Subject = s.Email, s.Subject
	}
	a.Members = append(a.Members, r)
	slices.SortFunc(a.Members, func(x, y tenancyv1alpha1.AdmittedMember) int { return strings.Compare(x.Name, y.Name) })
}

// Namespaces bounds how many namespaces an organization may have besides name: the stored ones
// (labelled into it, or named by its projects) and those admitted into it but perhaps not stored
// yet. It prunes the records that the stored namespaces show already or that are older than
// Window.
func Namespaces(stored []string, changes *tenancyv1alpha1.AdmittedChanges, name string, now time.Time) int {
	count := 0
	for _, n := range stored {
		if n != name {
			count++
		}
	}
	for _, r := range pendingNamespaces(stored, changes, now) {
		if r.Name != name {
			count++
		}
	}
	return count
}

// NamespacePending reports whether name was admitted into the organization in the last Window
// and the stored namespaces do not show it yet: a request that may still be stored. It prunes as
// Namespaces does.
func NamespacePending(stored []string, changes *tenancyv1alpha1.AdmittedChanges, name string, now time.Time) bool {
	return slices.ContainsFunc(pendingNamespaces(stored, changes, now), func(r tenancyv1alpha1.AdmittedNamespace) bool { return r.Name == name })
}

// pendingNamespaces prunes the namespace records that stored shows already or that are older
// than Window, and returns those left.
func pendingNamespaces(stored []string, changes *tenancyv1alpha1.AdmittedChanges, now time.Time) []tenancyv1alpha1.AdmittedNamespace {
	if changes == nil {
		return nil
	}
	changes.Namespaces = slices.DeleteFunc(changes.Namespaces, func(r tenancyv1alpha1.AdmittedNamespace) bool {
		return slices.Contains(stored, r.Name) || now.Sub(r.Time.Time) >= Window
	})
	return changes.Namespaces
}

// RecordNamespace records that a namespace was admitted into the organization.
func RecordNamespace(org *tenancyv1alpha1.Organization, name string, now time.Time) {
	a := admitted(org)
	a.Namespaces = slices.DeleteFunc(a.Namespaces, func(r tenancyv1alpha1.AdmittedNamespace) bool { return r.Name == name })
	a.Namespaces = append(a.Namespaces, tenancyv1alpha1.AdmittedNamespace{Name: name, Time: metav1.NewTime(now)})
	slices.SortFunc(a.Namespaces, func(x, y tenancyv1alpha1.AdmittedNamespace) int { return strings.Compare(x.Name, y.Name) })
}

func admitted(org *tenancyv1alpha1.Organization) *tenancyv1alpha1.AdmittedChanges {
	if org.Status.Admitted == nil {
		org.Status.Admitted = &tenancyv1alpha1.AdmittedChanges{}
	}
	return org.Status.Admitted
}
