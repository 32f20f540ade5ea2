package ledger

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/groupcommit"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// commitTimeout bounds one ledger write, under the webhooks' 5 s timeout.
const commitTimeout = 4 * time.Second

// Charger charges each admitted object to its organization's ledger and refuses the object if it
// does not fit. Requests for one organization are committed in batches by one goroutine per
// organization: each batch is decided object by object against the ledger and written in one
// compare-and-swap, retried on conflict, so concurrent requests, in any namespaces and through any
// replica, can never take the organization past its limit. Build it with NewCharger.
type Charger struct {
	// reader is the manager's cache.
	reader client.Reader
	// apiReader reads from the API server, for a ledger the cache has not caught up with.
	apiReader client.Reader
	// writer patches the organization's status.
	writer   client.Client
	holdings Holdings
	clock    clock.PassiveClock

	queues groupcommit.Queues[*pendingCharge]
}

// NewCharger returns a Charger. reader is the manager's cache, apiReader reads from the API
// server, writer patches organizations' status and pods is the compact pod cache; all are
// required.
func NewCharger(reader, apiReader client.Reader, writer client.Client, pods podcache.Lister, clk clock.PassiveClock) *Charger {
	for _, dep := range []any{reader, apiReader, writer, pods, clk} {
		if v := reflect.ValueOf(dep); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
			panic("ledger.NewCharger: every dependency is required")
		}
	}
	return &Charger{reader: reader, apiReader: apiReader, writer: writer, holdings: Holdings{Pods: pods, Reader: reader}, clock: clk}
}

// Request is one object to charge.
type Request struct {
	Kind            Kind
	Namespace, Name string
	// Key is the object's UID, or UpdateKey for a resize.
	Key types.UID
	// Usage is what the object uses, or what its resize adds.
	Usage corev1.ResourceList
	// Pod is the object when it is a pod, for the namespace quotas' rules on containers.
	Pod *corev1.Pod
	// DryRun checks without charging.
	DryRun bool
}

// run is one goroutine committing an organization's batches.
type run struct {
	// latest is the organization as this run last wrote it, so that the next batch does not
	// start from a cache that may not have seen that write yet.
	latest *tenancyv1alpha1.Organization
}

type pendingCharge struct {
	hard        corev1.ResourceList
	reservation tenancyv1alpha1.QuotaReservation
	result      chan error
}

// Charge charges r to the organization of its namespace and returns the API error to answer when
// the object is refused: Forbidden over quota, TooManyRequests when too many charges wait.
func (c *Charger) Charge(ctx context.Context, r Request) error {
	org, hard, err := c.organizationOf(ctx, r.Namespace)
	if err != nil || org == nil || !Limits(hard, r.Usage) {
		return err
	}
	// The namespace's own ResourceQuotas are checked after the webhook: an object they refuse
	// must not hold the organization's room while the controller finds out it does not exist.
	nsErr, err := c.checkNamespaceQuotas(ctx, r)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	p := &pendingCharge{hard: hard, reservation: tenancyv1alpha1.QuotaReservation{
		UID: r.Key, Namespace: r.Namespace, Name: r.Name, Usage: r.Usage,
	}}
	if r.Kind != Pods {
		p.reservation.Resource = string(r.Kind)
	}
	if nsErr != nil {
		// Refused either way; the organization's own words when its quota refuses it too, judged
		// on the API server's copy: the cache may not show the charges just written.
		live := &tenancyv1alpha1.Organization{}
		if err := c.apiReader.Get(ctx, types.NamespacedName{Name: org.Name}, live); err != nil {
			return apierrors.NewInternalError(err)
		}
		if err := c.check(ctx, live, p); err != nil {
			return refusal(r, err)
		}
		return apierrors.NewForbidden(r.Kind.GroupResource(), r.Name, nsErr)
	}
	if r.DryRun {
		return refusal(r, c.check(ctx, org, p))
	}
	return refusal(r, c.submit(org.Name, r.Kind, p))
}

// checkNamespaceQuotas judges r against its namespace's ResourceQuotas as the API server's quota
// admission will. It reads them from the API server's watch cache, which answers in a
// millisecond where a consistent list waits for the cache to catch up with etcd (tens of
// milliseconds after other writes), and reads them again, consistently, only to confirm a
// refusal: a quota is never taken as fuller than it is.
func (c *Charger) checkNamespaceQuotas(ctx context.Context, r Request) (refused, err error) {
	for _, opts := range []*client.ListOptions{
		{Namespace: r.Namespace, Raw: &metav1.ListOptions{ResourceVersion: "0"}},
		{Namespace: r.Namespace},
	} {
		quotas := &corev1.ResourceQuotaList{}
		if err = c.apiReader.List(ctx, quotas, opts); err != nil {
			return nil, err
		}
		if refused = CheckNamespaceQuotas(quotas.Items, r.Pod, r.Usage); refused == nil {
			return nil, nil
		}
	}
	return refused, nil
}

func refusal(r Request, err error) error {
	var exceeded *ExceededError
	switch {
	case errors.As(err, &exceeded):
		return apierrors.NewForbidden(r.Kind.GroupResource(), r.Name, err)
	case errors.Is(err, ErrBusy):
		return apierrors.NewTooManyRequests(err.Error(), 1)
	}
	return err
}

// organizationOf returns the organization of a namespace and the part of its organization-wide
// quota the ledger enforces; no organization when there is nothing to enforce.
func (c *Charger) organizationOf(ctx context.Context, namespace string) (*tenancyv1alpha1.Organization, corev1.ResourceList, error) {
	place, tenant, err := tenancy.Resolver{Reader: c.reader}.TenantOf(ctx, namespace)
	if err == nil && place.Organization == "" {
		// The API server sent the object because the namespace carries the label: the cache has
		// not seen the label yet. Ask the API server rather than let the object through uncharged.
		place, tenant, err = tenancy.Resolver{Reader: c.apiReader}.TenantOf(ctx, namespace)
	}
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	if tenant == nil {
		return nil, nil, nil
	}
	hard := Enforced(tenant.Quotas.OrganizationQuota)
	if len(hard) == 0 {
		return nil, nil, nil
	}
	return tenant.Organization, hard, nil
}

// submit queues a charge and waits for the batch that decides it. Each organization with
// charges waiting has one goroutine committing its batches, so that no request waits for other
// requests' batches after its own is decided.
func (c *Charger) submit(org string, kind Kind, p *pendingCharge) error {
	p.result = make(chan error, 1)
	if c.queues.Add(org, p) {
		go c.drain(org)
	}
	err := <-p.result
	decisions.WithLabelValues(decisionOf(err), string(kind)).Inc()
	return err
}

// drain commits an organization's waiting charges, batch after batch, until none are left; then
// the organization is forgotten, so that the queues follow the organizations that create objects
// now.
func (c *Charger) drain(org string) {
	r := &run{}
	for {
		batch := c.queues.Next(org)
		if batch == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		c.commit(ctx, org, r, batch)
		cancel()
	}
}

// commit decides a batch and answers each of its requests.
func (c *Charger) commit(ctx context.Context, name string, r *run, batch []*pendingCharge) {
	results, err := c.decide(ctx, name, r, batch)
	for i, p := range batch {
		if err != nil {
			p.result <- apierrors.NewInternalError(fmt.Errorf("charging organization %s's quota ledger: %w", name, err))
			continue
		}
		p.result <- results[i]
	}
}

// decide decides a batch against the ledger and writes the admitted charges in one patch with
// an optimistic lock; on conflict it reads the organization again and decides again. A panic is
// returned as an error: the batch runs outside the webhook server's own recovery, and its
// requests must be answered.
func (c *Charger) decide(ctx context.Context, name string, r *run, batch []*pendingCharge) (results []error, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	results = make([]error, len(batch))
	for fresh := false; ; fresh = true {
		var org *tenancyv1alpha1.Organization
		if org, err = c.organization(ctx, name, r, fresh); err != nil {
			return nil, err
		}
		before := org.DeepCopy()
		start := org.Status.Quotas.LedgerOrNil()
		if start == nil {
			if start, err = c.observe(ctx, name, batch); err != nil {
				return nil, err
			}
		}
		l, admitted := c.reserveAll(name, start, Used(start), batch, results)
		if admitted < len(batch) && !fresh {
			// A copy that is not the API server's may miss room the controller freed: refuse
			// only on the ledger as it is now.
			continue
		}
		if admitted < len(batch) {
			// The ledger still counts objects deleted since the controller last looked, and
			// charges whose request was refused after the webhook: decide again on what exists.
			used, recounted, err := c.recount(ctx, org, start, hardOf(batch))
			if err != nil {
				return nil, err
			}
			if recounted {
				l, admitted = c.reserveAll(name, start, used, batch, results)
			}
		}
		if admitted == 0 {
			return results, nil
		}
		if org.Status.Quotas == nil {
			org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{}
		}
		org.Status.Quotas.Ledger = l
		err = c.writer.Status().Patch(ctx, org, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			r.latest = org
			return results, nil
		}
		if !apierrors.IsConflict(err) || ctx.Err() != nil {
			return nil, err
		}
		conflicts.Inc()
	}
}

// hardOf is the quota a batch is decided against: the one its latest request read.
// reserveAll reserves the batch's charges, in order, on start with used already in use, and
// records each one's outcome in results. It returns the ledger and how many were admitted.
func (c *Charger) reserveAll(name string, start *tenancyv1alpha1.QuotaLedger, used corev1.ResourceList, batch []*pendingCharge,
	results []error) (*tenancyv1alpha1.QuotaLedger, int) {
	l, admitted := start, 0
	// A charge's time is when it is written, which its object's storage follows, not when its
	// request arrived: under load a request waits for the batches before it.
	at := metav1.NewTime(ceilSecond(c.clock.Now()))
	for i, p := range batch {
		p.reservation.Time = at
		var next *tenancyv1alpha1.QuotaLedger
		var after corev1.ResourceList
		next, after, results[i] = Reserve(name, l, used, p.hard, p.reservation)
		if results[i] == nil {
			l, used, admitted = next, after, admitted+1
		}
	}
	return l, admitted
}

func hardOf(batch []*pendingCharge) corev1.ResourceList {
	return batch[len(batch)-1].hard
}

// ceilSecond rounds t up to the second, as a reservation's time is stored: a charge is never
// taken for older than it is.
func ceilSecond(t time.Time) time.Time {
	if r := t.UTC().Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t.UTC()
}

// organization returns the organization to decide against: the copy this run last wrote or
// the cache's, or, after a conflict or before refusing, the API server's.
func (c *Charger) organization(ctx context.Context, name string, r *run, fresh bool) (*tenancyv1alpha1.Organization, error) {
	if !fresh && r.latest != nil {
		return r.latest.DeepCopy(), nil
	}
	org := &tenancyv1alpha1.Organization{}
	reader := c.reader
	if fresh {
		reader = c.apiReader
	}
	if err := reader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		return nil, err
	}
	return org, nil
}

// check decides a dry run without charging it, refusing only on what the API server stores.
func (c *Charger) check(ctx context.Context, org *tenancyv1alpha1.Organization, p *pendingCharge) error {
	for fresh := false; ; fresh = true {
		l := org.Status.Quotas.LedgerOrNil()
		if l == nil {
			var err error
			if l, err = c.observe(ctx, org.Name, []*pendingCharge{p}); err != nil {
				return apierrors.NewInternalError(err)
			}
		}
		err := Check(org.Name, p.hard, Used(l), p.reservation.Usage)
		if err == nil {
			return nil
		}
		if fresh {
			used, recounted, rerr := c.recount(ctx, org, l, p.hard)
			if rerr != nil {
				return apierrors.NewInternalError(rerr)
			}
			if recounted {
				return Check(org.Name, p.hard, used, p.reservation.Usage)
			}
			return err
		}
		name := org.Name
		org = &tenancyv1alpha1.Organization{}
		if err := c.apiReader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
}

// recount returns what the organization uses according to what the API server stores, for a
// ledger that may count more: objects deleted since the controller last looked, charges whose
// request was refused after the webhook. It asks the API server only when the caches show less
// than the ledger, and reports whether it did.
func (c *Charger) recount(ctx context.Context, org *tenancyv1alpha1.Organization, l *tenancyv1alpha1.QuotaLedger, hard corev1.ResourceList) (corev1.ResourceList, bool, error) {
	namespaces, err := c.namespacesOf(ctx, org)
	if err != nil {
		return nil, false, err
	}
	kinds := KindsOf(hard)
	cached, err := c.holdings.List(ctx, namespaces, kinds)
	if err != nil {
		return nil, false, err
	}
	if !resourcelist.Below(Recount(l, cached, c.clock.Now()), Used(l)) {
		return nil, false, nil
	}
	stored, err := Stored(ctx, c.apiReader, namespaces, kinds)
	if err != nil {
		return nil, false, err
	}
	return Recount(l, stored, c.clock.Now()), true, nil
}

// namespacesOf returns every namespace whose objects the ledger may count: those the cache has
// labelled into the organization, and those the controller counted at its last status write.
func (c *Charger) namespacesOf(ctx context.Context, org *tenancyv1alpha1.Organization) ([]string, error) {
	labelled, err := inventory.OrganizationNamespaces(ctx, c.reader, org.Name)
	if err != nil {
		return nil, err
	}
	names := append([]string{org.Status.HomeNamespace}, org.Status.Namespaces...)
	for i := range labelled {
		names = append(names, labelled[i].Name)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	slices.Sort(names)
	return slices.Compact(names), nil
}

// observe starts a ledger from the caches, for an organization that has none yet.
func (c *Charger) observe(ctx context.Context, org string, batch []*pendingCharge) (*tenancyv1alpha1.QuotaLedger, error) {
	namespaces, err := inventory.OrganizationNamespaces(ctx, c.reader, org)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(namespaces))
	for i := range namespaces {
		names[i] = namespaces[i].Name
	}
	holdings, err := c.holdings.List(ctx, names, KindsOf(hardOf(batch)))
	if err != nil {
		return nil, err
	}
	observed, _ := Observe(holdings)
	return &tenancyv1alpha1.QuotaLedger{Observed: observed}, nil
}
