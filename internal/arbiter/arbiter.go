// Package arbiter decides the admission rules that must hold under concurrency — an organization
// keeps an admin, stays within maxMembers, maxAdmins and maxNamespaces, and has unique emails —
// exactly, across requests racing each other and across webhook replicas.
//
// A webhook admits a change before the API server stores it, so the stored objects alone cannot
// tell a second request what the first one did. Each decision therefore reads the stored objects
// from the API server (never a cache), judges the change against them and against the changes
// admitted in the last minute (status.admitted), records its own change there and writes the
// organization with its resourceVersion as a precondition. The organization may come from the
// cache: a stale one loses that compare-and-swap, and a round that writes nothing confirms its
// resourceVersion with the API server. Two rounds of decisions that read the same organization
// cannot both be written: the loser reads again and decides again.
// Within a round, requests that arrived together are decided one after another on the same reads,
// each seeing what those before it recorded, as if all were made at the moment of the read.
//
// Every bound is taken on the safe side: a recorded change that the API server then refused can
// only make the rules stricter, for at most a minute.
package arbiter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/groupcommit"
	"github.com/orgoperator/org-operator/internal/membership"
	"github.com/orgoperator/org-operator/internal/validation"
)

// Window is how long an admitted change may be waiting to be stored: the API server ends every
// request within a minute. A record older than that belongs to a request the API server refused.
const Window = time.Minute

// maxAttempts bounds the compare-and-swap retries of one round. Each lost race means another
// replica's round was written, so this many would have to race a single one.
const maxAttempts = 100

// roundTimeout bounds one round's reads and write. It is past the webhooks' own timeout (5 s):
// by then the API server has given up on every request of the round.
const roundTimeout = 10 * time.Second

// Decision judges one request against the organization as the API server has it (nil when it
// does not exist), reading stored objects through live only. It records what it admits on org
// and reports whether it did; it returns the request's refusal, if any, and has no other side
// effects. Changes it made to org are undone when it refuses or records nothing.
type Decision func(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization) (changed bool, err error)

// Arbiter decides the changes of one organization in rounds (group commit): the requests that
// arrive while a round is being written wait, and the next round decides them all, one after
// another, on one read of the organization and of the stored objects, and records them with one
// write. Requests racing in one webhook replica thus cost one write per round instead of one
// each; the compare-and-swap still arbitrates between replicas. The zero value is ready to use.
type Arbiter struct {
	queues groupcommit.Queues[*request]
}

type request struct {
	ctx    context.Context
	decide Decision
	err    error
	done   chan struct{}
}

// Decide queues decide for the organization's next round and returns its answer. The first
// request to find no round running starts a goroutine that leads rounds until the
// organization's queue is empty. A request without an organization is decided alone.
func (a *Arbiter) Decide(ctx context.Context, live client.Reader, writer client.Client, org string, decide Decision) error {
	if org == "" {
		_, err := decide(ctx, live, nil)
		return err
	}
	r := &request{ctx: ctx, decide: decide, done: make(chan struct{})}
	if a.queues.Add(org, r) {
		go a.lead(ctx, live, writer, org)
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return apierrors.NewInternalError(fmt.Errorf("deciding a change of organization %s: %w", org, ctx.Err()))
	}
}

// lead runs rounds of the organization's waiting requests until none is left. Its context is
// the first request's without its cancellation: the other requests depend on it too.
func (a *Arbiter) lead(ctx context.Context, live client.Reader, writer client.Client, org string) {
	var last *written
	for {
		batch := a.queues.Next(org)
		if batch == nil {
			return
		}
		batch = slices.DeleteFunc(batch, func(r *request) bool {
			if r.ctx.Err() == nil {
				return false
			}
			r.err = apierrors.NewInternalError(fmt.Errorf("deciding a change of organization %s: %w", org, r.ctx.Err()))
			close(r.done) // its caller has returned already
			return true
		})
		if len(batch) == 0 {
			continue
		}
		roundCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), roundTimeout)
		var errs []error
		errs, last = round(roundCtx, live, writer, org, batch, last)
		cancel()
		for i, r := range batch {
			r.err = errs[i]
			close(r.done)
		}
	}
}

// round decides batch, in order, on one read of the organization and of what the decisions read
// (a snapshot), and writes the organization's status once if any decision recorded something,
// with the organization's resourceVersion as a precondition; on conflict it decides them all
// again from fresh reads. It returns each request's answer. A panic refuses the whole round: it
// runs outside the webhook server's own recovery, and its requests must be answered.
func round(ctx context.Context, live client.Reader, writer client.Client, org string, batch []*request, last *written) (errs []error, wrote *written) {
	defer func() {
		if r := recover(); r != nil {
			errs, wrote = fill(make([]error, len(batch)), apierrors.NewInternalError(fmt.Errorf("deciding a change of organization %s: panic: %v", org, r))), nil
		}
	}()
	errs = make([]error, len(batch))
	// The first attempt starts from the cached organization (writer reads the manager's cache),
	// or from the previous round's write while the cache still shows the version before it, which
	// saves a read from etcd per round. Both only guess: the write's resourceVersion precondition
	// refuses a stale one, and a round that writes nothing checks the version live. Every later
	// attempt reads the organization live.
	cached := true
	for attempt := 1; ; attempt++ {
		var reader client.Reader = live
		if cached {
			reader = writer
		}
		o := &tenancyv1alpha1.Organization{}
		if err := reader.Get(ctx, types.NamespacedName{Name: org}, o); err != nil {
			if cached {
				cached = false // absent from the cache, or not cached at all: ask the API server
				continue
			}
			if !apierrors.IsNotFound(err) {
				return fill(errs, apierrors.NewInternalError(err)), nil
			}
			o = nil
		}
		if cached && last != nil && o.ResourceVersion == last.over {
			o = last.org.DeepCopy() // the cache has not seen the previous round's write yet
		}
		reads := newSnapshot(live)
		var before *tenancyv1alpha1.Organization
		if o != nil {
			before = o.DeepCopy()
		}
		changed := false
		for i, r := range batch {
			if o == nil {
				_, errs[i] = r.decide(ctx, reads, nil)
				continue
			}
			undo := o.DeepCopy()
			c, err := r.decide(ctx, reads, o)
			if err != nil || !c {
				*o = *undo
			}
			errs[i], changed = err, changed || (c && err == nil)
		}
		if !changed {
			if cached {
				current := &metav1.PartialObjectMetadata{}
				current.SetGroupVersionKind(tenancyv1alpha1.GroupVersion.WithKind("Organization"))
				err := live.Get(ctx, types.NamespacedName{Name: org}, current)
				if err != nil && !apierrors.IsNotFound(err) {
					return fill(errs, apierrors.NewInternalError(err)), nil
				}
				if err != nil || current.ResourceVersion != o.ResourceVersion {
					cached = false // the answers rest on a stale organization: decide them again
					continue
				}
			}
			return errs, last
		}
		err := writer.Status().Patch(ctx, o, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			return errs, &written{org: o, over: before.ResourceVersion}
		case apierrors.IsConflict(err) && attempt < maxAttempts && ctx.Err() == nil:
			cached = false
			continue
		default:
			// Every answer of the round may rest on what it failed to record.
			return fill(errs, apierrors.NewInternalError(fmt.Errorf("recording the admitted change on organization %s: %w", org, err))), nil
		}
	}
}

// written is the organization as a round wrote it, and the resourceVersion it was written over:
// the next round's first guess while the cache still shows that older version.
type written struct {
	org  *tenancyv1alpha1.Organization
	over string
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
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
