package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// DeletedNamespace is the namespace label value of the deleted namespaces' usage together.
const DeletedNamespace = "(deleted)"

// MeteringCollector exports each organization's current usage report as counters, per
// namespace: what the report holds up to its checkpoint, so the series step at each checkpoint
// and restart from zero with each billing period (a counter reset, which rate() and increase()
// take in their stride). Namespaces are bounded by the report's 1,000.
type MeteringCollector struct {
	reader                     client.Reader
	cpu, memory, pods          *prometheus.Desc
	cpuLimit, memoryLimit      *prometheus.Desc
	creditsDesc, allowanceDesc *prometheus.Desc
	errors                     prometheus.Counter
}

var _ prometheus.Collector = &MeteringCollector{}

// MeteringFamilies are the names of the metering families, for docs/metrics.md.
var MeteringFamilies = []string{
	"orgoperator_organization_cpu_core_seconds_total", "orgoperator_organization_memory_byte_seconds_total",
	"orgoperator_organization_pod_seconds_total", "orgoperator_organization_cpu_limit_core_seconds_total",
	"orgoperator_organization_memory_limit_byte_seconds_total", "orgoperator_organization_credits_total",
	"orgoperator_organization_credit_allowance",
}

// NewMeteringCollector returns a collector of the usage reports reader lists, normally the
// manager's cache.
func NewMeteringCollector(reader client.Reader) *MeteringCollector {
	return &MeteringCollector{
		reader: reader,
		cpu: desc("cpu_core_seconds_total", "Requested cpu integrated over the pods' lifetimes in the current billing period, "+
			"in core-seconds, per namespace, up to the usage report's checkpoint.", "namespace"),
		memory: desc("memory_byte_seconds_total", "Requested memory integrated over the pods' lifetimes in the current billing period, "+
			"in byte-seconds, per namespace, up to the usage report's checkpoint.", "namespace"),
		pods: desc("pod_seconds_total", "The pods' lifetimes in the current billing period, in seconds, per namespace, "+
			"up to the usage report's checkpoint.", "namespace"),
		cpuLimit: desc("cpu_limit_core_seconds_total", "Cpu limits integrated over the pods' lifetimes in the current billing "+
			"period, in core-seconds, per namespace, up to the usage report's checkpoint.", "namespace"),
		memoryLimit: desc("memory_limit_byte_seconds_total", "Memory limits integrated over the pods' lifetimes in the current "+
			"billing period, in byte-seconds, per namespace, up to the usage report's checkpoint.", "namespace"),
		creditsDesc:   desc("credits_total", "Credits used in the current billing period, up to the usage report's checkpoint."),
		allowanceDesc: desc("credit_allowance", "The plan's monthlyAllowance, in credits; no series without one."),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "metering_metrics_list_errors_total",
			Help:      "Scrapes whose metering series are missing because listing usage reports from the cache failed.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *MeteringCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.memory, c.pods, c.cpuLimit, c.memoryLimit, c.creditsDesc, c.allowanceDesc} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *MeteringCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	reports := &tenancyv1alpha1.OrganizationUsageReportList{}
	if err := c.reader.List(ctx, reports, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.Log.WithName("metrics").Error(err, "Unable to list usage reports for metrics")
		c.errors.Inc()
	}
	// The current report of each organization: the one of the latest period.
	current := map[string]*tenancyv1alpha1.OrganizationUsageReport{}
	for i := range reports.Items {
		r := &reports.Items[i]
		if have := current[r.Spec.Organization]; have == nil || r.Spec.PeriodStart.After(have.Spec.PeriodStart.Time) {
			current[r.Spec.Organization] = r
		}
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for org, r := range current {
		st := &r.Status
		for _, ns := range st.Namespaces {
			counter(c.cpu, float(ns.CPU), org, ns.Name)
			counter(c.memory, float(ns.Memory), org, ns.Name)
			counter(c.pods, float64(ns.PodSeconds), org, ns.Name)
			counter(c.cpuLimit, float(ns.Limits.CPU), org, ns.Name)
			counter(c.memoryLimit, float(ns.Limits.Memory), org, ns.Name)
		}
		if d := st.DeletedNamespaces; d != nil {
			counter(c.cpu, float(d.Requests.CPU), org, DeletedNamespace)
			counter(c.memory, float(d.Requests.Memory), org, DeletedNamespace)
			counter(c.pods, float64(d.PodSeconds), org, DeletedNamespace)
			counter(c.cpuLimit, float(d.Limits.CPU), org, DeletedNamespace)
			counter(c.memoryLimit, float(d.Limits.Memory), org, DeletedNamespace)
		}
		if st.Total.Credits != nil {
			counter(c.creditsDesc, float(st.Total.Credits), org)
		}
		if st.Allowance != nil {
			ch <- prometheus.MustNewConstMetric(c.allowanceDesc, prometheus.GaugeValue, float(st.Allowance), org)
		}
	}
	c.errors.Collect(ch)
}

func float(q *resource.Quantity) float64 {
	if q == nil {
		return 0
	}
	return q.AsApproximateFloat64()
}
