// Package metrics exports the state of every Organization as Prometheus metrics, read at scrape
// time from the manager's cache. It writes nothing and keeps no state of its own, so every
// replica (leader or not) serves the same series.
//
// Register the collector with controller-runtime's registry, which the manager serves on its
// metrics endpoint:
//
//	ctrlmetrics.Registry.MustRegister(metrics.NewCollector(mgr.GetCache()))
//
// Label cardinality is bounded: every family has one series set per organization, and the
// resource and role labels take values from fixed lists (UsageResources, "admin"/"member").
// docs/metrics.md describes each family.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// Namespace prefixes every metric name.
const Namespace = "orgoperator"

// listTimeout bounds one scrape's read of the cache, which blocks until the cache has synced.
const listTimeout = 10 * time.Second

// Emit sends one sample of a family; labelValues follow the organization label, in the order of
// the family's variable labels after "organization".
type Emit func(value float64, labelValues ...string)

// Family is one metric family with a series set per organization. New families plug in here:
// append them to DefaultFamilies or pass them to NewCollector. Keep their extra labels to bounded
// value lists.
type Family struct {
	// Desc describes the family; its first variable label must be "organization".
	Desc *prometheus.Desc
	// Type is prometheus.GaugeValue for every state read from an object.
	Type prometheus.ValueType
	// Collect emits the family's samples for one organization.
	Collect func(org *tenancyv1alpha1.Organization, emit Emit)
}

// UsageResource is one value of the resource label of orgoperator_organization_usage.
type UsageResource struct {
	// Name is the label value.
	Name string
	// Value reads it from status.usage, in base units (cores, bytes, objects).
	Value func(u *tenancyv1alpha1.OrganizationUsage) float64
}

// UsageResources is the fixed list of values of the resource label, in the order they are emitted.
var UsageResources = []UsageResource{
	{"namespaces", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.NamespaceCount) }},
	{"members", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.Members) }},
	{"pods", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.Pods) }},
	{"deployments", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.Deployments) }},
	{"statefulsets", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.StatefulSets) }},
	{"services", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.Services) }},
	{"persistentvolumeclaims", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return float64(u.PersistentVolumeClaims) }},
	{"requests.cpu", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return quantity(u.Requests, corev1.ResourceCPU) }},
	{"requests.memory", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return quantity(u.Requests, corev1.ResourceMemory) }},
	{"limits.cpu", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return quantity(u.Limits, corev1.ResourceCPU) }},
	{"limits.memory", func(u *tenancyv1alpha1.OrganizationUsage) float64 { return quantity(u.Limits, corev1.ResourceMemory) }},
}

// SubscriptionStates is the fixed list of values of the state label of
// orgoperator_organization_subscription_state.
var SubscriptionStates = []tenancyv1alpha1.SubscriptionState{
	tenancyv1alpha1.SubscriptionTrial, tenancyv1alpha1.SubscriptionActive, tenancyv1alpha1.SubscriptionGracePeriod,
	tenancyv1alpha1.SubscriptionExpired, tenancyv1alpha1.SubscriptionPlanNotFound,
}

// quantity returns a resource of list in base units (cores, bytes); 0 when absent.
func quantity(list corev1.ResourceList, name corev1.ResourceName) float64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	return q.AsApproximateFloat64()
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "organization", name), help,
		append([]string{"organization"}, labels...), nil)
}

// DefaultFamilies returns the families every organization has.
func DefaultFamilies() []Family {
	return []Family{
		{
			Desc: desc("info", "Always 1; labels carry the organization's spec.type and spec.subscription.plan (empty when none).",
				"type", "plan"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				emit(1, string(org.Spec.Type), tenancy.PlanName(org))
			},
		},
		{
			Desc: desc("ready", "1 when the organization's Ready condition is True for its current generation, 0 otherwise."),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				emit(boolValue(Ready(org)))
			},
		},
		{
			Desc: desc("members", "OrganizationMembers of the organization by role: admin (admin: true) or member (the others), from status.",
				"role"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				emit(float64(org.Status.AdminCount), "admin")
				emit(float64(org.Status.MemberCount-org.Status.AdminCount), "member")
			},
		},
		{
			Desc: desc("subscription_state", "1 for the subscription's state in status.subscription.state, 0 for the other states.",
				"state"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				st := org.Status.Subscription
				if st == nil {
					return
				}
				for _, state := range SubscriptionStates {
					emit(boolValue(st.State == state), string(state))
				}
			},
		},
		{
			Desc: desc("subscription_expiry_seconds", "Seconds from the scrape to status.subscription.endDate (the end date, "+
				"or the trial's end); negative once it has passed. No series when the subscription never ends."),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				if st := org.Status.Subscription; st != nil && st.EndDate != nil {
					emit(time.Until(st.EndDate.Time).Seconds())
				}
			},
		},
		{
			Desc: desc("quota_hard", "The organization-wide quota (status.quotas.hard), in base units, and the count "+
				"quotas maxNamespaces, maxMembers and maxAdmins; one series per limit set.", "resource"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				q := org.Status.Quotas
				if q == nil {
					return
				}
				for _, c := range []struct {
					name  string
					limit *int32
				}{{"maxNamespaces", q.MaxNamespaces}, {"maxMembers", q.MaxMembers}, {"maxAdmins", q.MaxAdmins}} {
					if c.limit != nil {
						emit(float64(*c.limit), c.name)
					}
				}
				for name, v := range q.Hard {
					emit(v.AsApproximateFloat64(), string(name))
				}
			},
		},
		{
			Desc: desc("quota_used", "What the organization uses of each resource of its organization-wide quota "+
				"(status.quotas.used), in base units.", "resource"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				if q := org.Status.Quotas; q != nil {
					for name, v := range q.Used {
						emit(v.AsApproximateFloat64(), string(name))
					}
				}
			},
		},
		{
			Desc: desc("usage", "What the organization's namespaces hold, from status.usage: object counts, "+
				"requests.cpu and limits.cpu in cores, requests.memory and limits.memory in bytes.",
				"resource"),
			Type: prometheus.GaugeValue,
			Collect: func(org *tenancyv1alpha1.Organization, emit Emit) {
				u := org.Status.Usage
				if u == nil {
					return // not observed yet: no series rather than zeros that look real
				}
				for _, r := range UsageResources {
					emit(r.Value(u), r.Name)
				}
			},
		},
	}
}

// Ready reports whether the organization's Ready condition is True for its current generation.
func Ready(org *tenancyv1alpha1.Organization) bool {
	c := meta.FindStatusCondition(org.Status.Conditions, tenancyv1alpha1.ReadyCondition)
	return c != nil && c.Status == metav1.ConditionTrue && org.Status.ObservedGeneration == org.Generation
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collector is a prometheus.Collector over the organizations a client.Reader lists.
type Collector struct {
	reader   client.Reader
	families []Family
	errors   prometheus.Counter
}

var _ prometheus.Collector = &Collector{}

// NewCollector returns a collector of DefaultFamilies and the given extra families over reader,
// normally the manager's cache (mgr.GetCache()), so that a scrape costs no API request.
func NewCollector(reader client.Reader, extra ...Family) *Collector {
	return &Collector{
		reader:   reader,
		families: append(DefaultFamilies(), extra...),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "metrics_list_errors_total",
			Help:      "Scrapes whose organization series are missing because listing organizations from the cache failed.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.families {
		ch <- f.Desc
	}
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector. A failed list costs the organization series of one
// scrape, not the whole scrape: the error is logged and counted.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	orgs := &tenancyv1alpha1.OrganizationList{}
	// Read only: the cache's own objects, without a deep copy of every organization per scrape.
	if err := c.reader.List(ctx, orgs, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.Log.WithName("metrics").Error(err, "Unable to list organizations for metrics")
		c.errors.Inc()
	}
	for i := range orgs.Items {
		org := &orgs.Items[i]
		for _, f := range c.families {
			f.Collect(org, func(value float64, labelValues ...string) {
				ch <- prometheus.MustNewConstMetric(f.Desc, f.Type, value, append([]string{org.Name}, labelValues...)...)
			})
		}
	}
	c.errors.Collect(ch)
}
