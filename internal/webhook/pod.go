package webhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
// failing closed blocks nothing else. Dry runs are checked without a charge.
//
// +kubebuilder:webhook:path=/validate--v1-pod,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups="",resources=pods,verbs=create,versions=v1,name=vpod.tenancy.orgoperator.io,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=org-operator-webhook-service,serviceNamespace=org-operator-system,patch=`{"namespaceSelector":{"matchExpressions":[{"key":"tenancy.orgoperator.io/organization","operator":"Exists"},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system","kube-public","kube-node-lease","default","org-operator-system"]}]}}`

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
	org, hard, err := v.organizationOf(ctx, req.Namespace)
	if err != nil || org == nil {
		return nil, err
	}
	c := &charge{
		org:  org.Name,
		hard: hard,
		reservation: tenancyv1alpha1.QuotaReservation{
			UID: pod.UID, Namespace: req.Namespace, Name: pod.Name,
			Time: metav1.NewTime(v.clock.Now().UTC().Truncate(time.Second)), Usage: ledger.PodUsage(pod),
		},
	}
	if req.DryRun != nil && *req.DryRun {
		return nil, forbidden(pod, v.check(ctx, org, c))
	}
	return nil, forbidden(pod, v.submit(org.Name, c))
}

// ValidateUpdate allows updates: the ledger charges creations. (A resize changes requests
// in place; the namespace's ResourceQuota bounds it.)
func (v *PodValidator) ValidateUpdate(context.Context, *corev1.Pod, *corev1.Pod) (admission.Warnings, error) {
	return nil, nil
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
		l, admitted := org.Status.Quotas.LedgerOrNil(), 0
		if l == nil {
			if l, err = v.observe(ctx, name); err != nil {
				return nil, err
			}
		}
		for i, c := range batch {
			var next *tenancyv1alpha1.QuotaLedger
			next, results[i] = ledger.Reserve(name, l, c.hard, c.reservation)
			if results[i] == nil {
				l, admitted = next, admitted+1
			}
		}
		if admitted < len(batch) && !fresh {
			// A copy that is not the API server's may miss room the controller freed: refuse
			// only on the ledger as it is now.
			continue
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

// check decides a dry run without charging it, refusing only on the API server's ledger.
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
		if err == nil || fresh {
			return err
		}
		org = &tenancyv1alpha1.Organization{}
		if err := v.apiReader.Get(ctx, types.NamespacedName{Name: c.org}, org); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
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
