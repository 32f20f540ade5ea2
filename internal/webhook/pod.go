package webhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/inventory"
	"github.com/orgoperator/org-operator/internal/ledger"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/usage"
)

// Pods reach the webhook only in organization namespaces (never in system namespaces), so that
// failing closed blocks nothing else. Dry runs are checked without a charge. Creations and
// in-place resizes are charged; resizes have their own webhook so that the other updates of pods
// (labels, finalizers, owner references) never wait for the operator.
//
// +kubebuilder:webhook:path=/validate--v1-pod,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=vpod.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`
// +kubebuilder:webhook:path=/validate--v1-pod,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods/resize,verbs=update,versions=v1,name=vpodresize.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`

// commitTimeout bounds one ledger write, under the webhook's 5 s timeout.
const commitTimeout = 4 * time.Second

var (
	ledgerDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "orgoperator", Subsystem: "quota_ledger", Name: "decisions_total",
		Help: "Pods decided by the organization quota webhook, by decision: admitted, refused (over quota), busy (too many pending charges) or error (the ledger could not be written).",
	}, []string{"decision"})
	ledgerConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "orgoperator", Subsystem: "quota_ledger", Name: "conflicts_total",
		Help: "Ledger writes that lost a compare-and-swap to another writer and were decided again.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(ledgerDecisions, ledgerConflicts)
}

// PodValidator charges each new pod to its organization's quota ledger
// (status.quotas.ledger) and refuses the pod if it does not fit. Requests for one organization
// are committed in batches by one goroutine per organization: each batch is decided pod by pod
// against the ledger and written in one compare-and-swap, retried on conflict, so concurrent
// requests, in any namespaces and through any replica, can never take the organization past its
// limit. Build it with NewPodValidator.
type PodValidator struct {
	// reader is the manager's cache.
	reader client.Reader
	// apiReader reads from the API server, for a ledger the cache has not caught up with.
	apiReader client.Reader
	// writer patches the organization's status.
	writer client.Client
	// pods is the compact pod cache, for an organization that has no ledger yet.
	pods  podcache.Lister
	clock clock.PassiveClock

	mu    sync.Mutex
	queue map[string]*ledgerQueue
}

// NewPodValidator returns the pod webhook. reader is the manager's cache, apiReader reads from
// the API server, writer patches organizations' status and pods is the compact pod cache; all are
// required.
func NewPodValidator(reader, apiReader client.Reader, writer client.Client, pods podcache.Lister, clk clock.PassiveClock) *PodValidator {
	for _, dep := range []any{reader, apiReader, writer, pods, clk} {
		if v := reflect.ValueOf(dep); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
			panic("webhook.NewPodValidator: every dependency is required")
		}
	}
	return &PodValidator{reader: reader, apiReader: apiReader, writer: writer, pods: pods, clock: clk}
}

// ledgerQueue collects the charges waiting for one organization's ledger.
type ledgerQueue struct {
	mu      sync.Mutex
	pending []*charge
	running bool
	// latest is the organization as this replica last wrote it, so that the next batch does not
	// start from a cache that may not have seen that write yet.
	latest *tenancyv1alpha1.Organization
}

type charge struct {
	org         string
	hard        corev1.ResourceList
	reservation tenancyv1alpha1.QuotaReservation
	result      chan error
}

// ValidateCreate charges the pod to its organization's ledger.
func (v *PodValidator) ValidateCreate(ctx context.Context, pod *corev1.Pod) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if usage.Terminal(pod) {
		return nil, nil
	}
	return nil, v.charge(ctx, req, pod, pod.UID, ledger.PodUsage(pod))
}

// ValidateUpdate charges an in-place resize (the pods/resize subresource) with what it adds to
// the pod's usage, as ResourceQuota does; a decrease frees room once the controller sees the
// resized pod. Other updates cannot change what a pod uses.
func (v *PodValidator) ValidateUpdate(ctx context.Context, old, pod *corev1.Pod) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if req.SubResource != "resize" || usage.Terminal(pod) {
		return nil, nil
	}
	added := ledger.ResizeUsage(old, pod)
	if len(added) == 0 {
		return nil, nil
	}
	return nil, v.charge(ctx, req, pod, ledger.ResizeUID(pod.UID, pod.Generation), added)
}

// charge charges what a creation or a resize adds to the pod's organization, under key.
func (v *PodValidator) charge(ctx context.Context, req admission.Request, pod *corev1.Pod, key types.UID, added corev1.ResourceList) error {
	org, hard, err := v.organizationOf(ctx, req.Namespace)
	if err != nil || org == nil {
		return err
	}
	// The namespace's own ResourceQuotas are checked after the webhook: a pod they refuse must
	// not hold the organization's room while the controller finds out it does not exist.
	quotas := &corev1.ResourceQuotaList{}
	if err := v.apiReader.List(ctx, quotas, client.InNamespace(req.Namespace)); err != nil {
		return apierrors.NewInternalError(err)
	}
	nsErr := ledger.CheckNamespaceQuotas(quotas.Items, pod, added)
	c := &charge{
		org:         org.Name,
		hard:        hard,
		reservation: tenancyv1alpha1.QuotaReservation{UID: key, Namespace: req.Namespace, Name: pod.Name, Usage: added},
	}
	if nsErr != nil {
		// Refused either way; the organization's own words when its quota refuses the pod too.
		if err := v.check(ctx, org, c); err != nil {
			return forbidden(pod, err)
		}
		return apierrors.NewForbidden(corev1.Resource("pods"), pod.Name, nsErr)
	}
	if req.DryRun != nil && *req.DryRun {
		return forbidden(pod, v.check(ctx, org, c))
	}
	return forbidden(pod, v.submit(org.Name, c))
}

// ceilSecond rounds t up to the second, as a reservation's time is stored: a charge is never
// taken for older than it is.
func ceilSecond(t time.Time) time.Time {
	if r := t.UTC().Truncate(time.Second); r.Before(t) {
		return r.Add(time.Second)
	}
	return t.UTC()
}

// ValidateDelete allows deletion; the controller takes the pod out of the ledger.
func (v *PodValidator) ValidateDelete(context.Context, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
}

func forbidden(pod *corev1.Pod, err error) error {
	var exceeded *ledger.ExceededError
	switch {
	case errors.As(err, &exceeded):
		return apierrors.NewForbidden(corev1.Resource("pods"), pod.Name, err)
	case errors.Is(err, ledger.ErrBusy):
		return apierrors.NewTooManyRequests(err.Error(), 1)
	}
	return err
}

// organizationOf returns the organization of a namespace and the part of its organization-wide
// quota the ledger enforces; no organization when there is nothing to enforce.
func (v *PodValidator) organizationOf(ctx context.Context, namespace string) (*tenancyv1alpha1.Organization, corev1.ResourceList, error) {
	ns := &corev1.Namespace{}
	if err := v.reader.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, apierrors.NewInternalError(err)
	}
	name := ns.Labels[tenancyv1alpha1.OrganizationLabel]
	if name == "" {
		// The API server sent the pod because the namespace carries the label: the cache has
		// not seen the label yet. Ask the API server rather than let the pod through uncharged.
		if err := v.apiReader.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
			return nil, nil, apierrors.NewInternalError(err)
		}
		if name = ns.Labels[tenancyv1alpha1.OrganizationLabel]; name == "" {
			return nil, nil, nil
		}
	}
	org := &tenancyv1alpha1.Organization{}
	if err := v.reader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, apierrors.NewInternalError(err)
	}
	q, err := effectiveQuotas(ctx, v.reader, org)
	if err != nil {
		return nil, nil, err
	}
	hard := ledger.Enforced(q.OrganizationQuota)
	if len(hard) == 0 {
		return nil, nil, nil
	}
	return org, hard, nil
}

// submit queues a charge and waits for the batch that decides it. Each organization with
// charges waiting has one goroutine committing its batches, so that no request waits for other
// requests' batches after its own is decided.
func (v *PodValidator) submit(org string, c *charge) error {
	c.result = make(chan error, 1)
	v.mu.Lock()
	if v.queue == nil {
		v.queue = map[string]*ledgerQueue{}
	}
	q := v.queue[org]
	if q == nil {
		q = &ledgerQueue{}
		v.queue[org] = q
	}
	v.mu.Unlock()

	q.mu.Lock()
	q.pending = append(q.pending, c)
	if !q.running {
		q.running = true
		go v.drain(org, q)
	}
	q.mu.Unlock()
	return <-c.result
}

// drain commits an organization's waiting charges, batch after batch, until none are left; then
// it forgets the organization, so that the queues follow the organizations that create pods now.
func (v *PodValidator) drain(org string, q *ledgerQueue) {
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			break
		}
		q.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		v.commit(ctx, org, q, batch)
		cancel()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	// A charge queued since is drained by the goroutine it started; a queue dropped here while a
	// caller still holds it only costs batching, never correctness: every write is a
	// compare-and-swap.
	if !q.running && v.queue[org] == q {
		delete(v.queue, org)
	}
}

// commit decides a batch and answers each of its requests.
func (v *PodValidator) commit(ctx context.Context, name string, q *ledgerQueue, batch []*charge) {
	results, err := v.decide(ctx, name, q, batch)
	for i, c := range batch {
		switch {
		case err != nil:
			ledgerDecisions.WithLabelValues("error").Inc()
			c.result <- apierrors.NewInternalError(fmt.Errorf("charging organization %s's quota ledger: %w", name, err))
		case errors.Is(results[i], ledger.ErrBusy):
			ledgerDecisions.WithLabelValues("busy").Inc()
			c.result <- results[i]
		case results[i] != nil:
			ledgerDecisions.WithLabelValues("refused").Inc()
			c.result <- results[i]
		default:
			ledgerDecisions.WithLabelValues("admitted").Inc()
			c.result <- nil
		}
	}
}

// decide decides a batch against the ledger and writes the admitted charges in one patch with
// an optimistic lock; on conflict it reads the organization again and decides again. A panic is
// returned as an error: the batch runs outside the webhook server's own recovery, and its
// requests must be answered.
func (v *PodValidator) decide(ctx context.Context, name string, q *ledgerQueue, batch []*charge) (results []error, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	results = make([]error, len(batch))
	for fresh := false; ; fresh = true {
		var org *tenancyv1alpha1.Organization
		if org, err = v.organization(ctx, name, q, fresh); err != nil {
			return nil, err
		}
		before := org.DeepCopy()
		start := org.Status.Quotas.LedgerOrNil()
		if start == nil {
			if start, err = v.observe(ctx, name); err != nil {
				return nil, err
			}
		}
		reserveAll := func(used corev1.ResourceList) (*tenancyv1alpha1.QuotaLedger, int) {
			l, admitted := start, 0
			// A charge's time is when it is written, which its pod's storage follows, not when
			// its request arrived: under load a request waits for the batches before it.
			at := metav1.NewTime(ceilSecond(v.clock.Now()))
			for i, c := range batch {
				c.reservation.Time = at
				var next *tenancyv1alpha1.QuotaLedger
				var after corev1.ResourceList
				next, after, results[i] = ledger.Reserve(name, l, used, c.hard, c.reservation)
				if results[i] == nil {
					l, used, admitted = next, after, admitted+1
				}
			}
			return l, admitted
		}
		l, admitted := reserveAll(ledger.Used(start))
		if admitted < len(batch) && !fresh {
			// A copy that is not the API server's may miss room the controller freed: refuse
			// only on the ledger as it is now.
			continue
		}
		if admitted < len(batch) {
			// The ledger still counts pods deleted since the controller last looked, and charges
			// whose request was refused after the webhook: decide again on the pods that exist.
			used, recounted, err := v.recount(ctx, org, start)
			if err != nil {
				return nil, err
			}
			if recounted {
				l, admitted = reserveAll(used)
			}
		}
		if admitted == 0 {
			return results, nil
		}
		if org.Status.Quotas == nil {
			org.Status.Quotas = &tenancyv1alpha1.QuotaStatus{}
		}
		org.Status.Quotas.Ledger = l
		err = v.writer.Status().Patch(ctx, org, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			q.latest = org
			return results, nil
		}
		if !apierrors.IsConflict(err) || ctx.Err() != nil {
			return nil, err
		}
		ledgerConflicts.Inc()
	}
}

// organization returns the organization to decide against: the copy this replica last wrote or
// the cache's, or, after a conflict or before refusing a pod, the API server's.
func (v *PodValidator) organization(ctx context.Context, name string, q *ledgerQueue, fresh bool) (*tenancyv1alpha1.Organization, error) {
	if !fresh && q.latest != nil {
		return q.latest.DeepCopy(), nil
	}
	org := &tenancyv1alpha1.Organization{}
	reader := v.reader
	if fresh {
		reader = v.apiReader
	}
	if err := reader.Get(ctx, types.NamespacedName{Name: name}, org); err != nil {
		return nil, err
	}
	return org, nil
}

// check decides a dry run without charging it, refusing only on what the API server stores.
func (v *PodValidator) check(ctx context.Context, org *tenancyv1alpha1.Organization, c *charge) error {
	for fresh := false; ; fresh = true {
		l := org.Status.Quotas.LedgerOrNil()
		if l == nil {
			var err error
			if l, err = v.observe(ctx, org.Name); err != nil {
				return apierrors.NewInternalError(err)
			}
		}
		err := ledger.Check(org.Name, c.hard, ledger.Used(l), c.reservation.Usage)
		if err == nil {
			return nil
		}
		if fresh {
			used, recounted, rerr := v.recount(ctx, org, l)
			if rerr != nil {
				return apierrors.NewInternalError(rerr)
			}
			if recounted {
				return ledger.Check(org.Name, c.hard, used, c.reservation.Usage)
			}
			return err
		}
		org = &tenancyv1alpha1.Organization{}
		if err := v.apiReader.Get(ctx, types.NamespacedName{Name: c.org}, org); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
}

// recount returns what the organization uses according to the pods the API server stores, for a
// ledger that may count more: pods deleted since the controller last looked, charges whose
// request was refused after the webhook. It asks the API server only when the pod cache shows
// less than the ledger, and reports whether it did.
func (v *PodValidator) recount(ctx context.Context, org *tenancyv1alpha1.Organization, l *tenancyv1alpha1.QuotaLedger) (corev1.ResourceList, bool, error) {
	namespaces, err := v.namespacesOf(ctx, org)
	if err != nil {
		return nil, false, err
	}
	cached, err := podcache.InNamespaces(v.pods, namespaces)
	if err != nil {
		return nil, false, err
	}
	if !ledger.Below(ledger.Recount(l, cached, v.clock.Now()), ledger.Used(l)) {
		return nil, false, nil
	}
	var stored []*podcache.Pod
	for _, ns := range namespaces {
		pods := &corev1.PodList{}
		if err := v.apiReader.List(ctx, pods, client.InNamespace(ns)); err != nil {
			return nil, false, err
		}
		for i := range pods.Items {
			stored = append(stored, podcache.FromPod(&pods.Items[i]))
		}
	}
	return ledger.Recount(l, stored, v.clock.Now()), true, nil
}

// namespacesOf returns every namespace whose pods the ledger may count: those the cache has
// labelled into the organization, and those the controller counted at its last status write.
func (v *PodValidator) namespacesOf(ctx context.Context, org *tenancyv1alpha1.Organization) ([]string, error) {
	labelled, err := inventory.OrganizationNamespaces(ctx, v.reader, org.Name)
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

// observe starts a ledger from the pods in the cache, for an organization that has none yet.
func (v *PodValidator) observe(ctx context.Context, org string) (*tenancyv1alpha1.QuotaLedger, error) {
	namespaces, err := inventory.OrganizationNamespaces(ctx, v.reader, org)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(namespaces))
	for i := range namespaces {
		names[i] = namespaces[i].Name
	}
	pods, err := podcache.InNamespaces(v.pods, names)
	if err != nil {
		return nil, err
	}
	observed, _ := ledger.Observe(pods)
	return &tenancyv1alpha1.QuotaLedger{Observed: observed}, nil
}
