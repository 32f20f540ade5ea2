package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bounds of an OrganizationUsageReport's status, so that a report of 1,000 namespaces stays
// under 256 KiB.
const (
	// MaxReportNamespaces is how many namespaces a report lists; the others count in the totals only.
	MaxReportNamespaces = 1000
	// MaxReportDays is how many day buckets a period has at most (31 calendar days, the first
	// and last partial).
	MaxReportDays = 32
)

// ReportPeriodLabel on an OrganizationUsageReport is its period's first day, YYYY-MM-DD (UTC).
const ReportPeriodLabel = "tenancy.orgoperator.io/period"

// ResourceSeconds integrates a resource over time.
type ResourceSeconds struct {
	// cpu is in core-seconds, to the millicore-second.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// memory is in byte-seconds.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
}

// MeteredUsage is what pods used over a span of time: their lifetimes multiplied by what they
// requested and, separately, by their limits.
type MeteredUsage struct {
	// podSeconds is the sum of the pods' lifetimes, in seconds.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PodSeconds int64 `json:"podSeconds,omitempty"`
	// requests integrates the pods' cpu and memory requests.
	// +optional
	Requests ResourceSeconds `json:"requests,omitempty"`
	// limits integrates the pods' cpu and memory limits (a pod without a limit adds nothing).
	// +optional
	Limits ResourceSeconds `json:"limits,omitempty"`
	// credits are what the requests and pod-seconds cost at the plan's prices, rounded down to the
	// milli-credit; absent when the plan prices nothing.
	// +optional
	Credits *resource.Quantity `json:"credits,omitempty"`
}

// DayUsage is the usage of one UTC calendar day of the period.
type DayUsage struct {
	// date is the day, YYYY-MM-DD, UTC.
	// +required
	// +kubebuilder:validation:Pattern=`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	Date         string `json:"date"`
	MeteredUsage `json:",inline"`
}

// NamespaceMeteredUsage is one namespace's usage over the period: pod-seconds and requests, flat,
// and limits.
type NamespaceMeteredUsage struct {
	// name is the namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// podSeconds is the sum of the namespace's pods' lifetimes, in seconds.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PodSeconds int64 `json:"podSeconds,omitempty"`
	// cpu integrates cpu requests, in core-seconds.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// memory integrates memory requests, in byte-seconds.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// limits integrates the namespace's pods' cpu and memory limits (a pod without a limit adds
	// nothing).
	// +optional
	Limits ResourceSeconds `json:"limits,omitempty"`
}

// OrganizationUsageReportSpec names the organization and the billing period. The operator
// creates reports; nobody changes their spec.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a report's spec never changes"
// +kubebuilder:validation:XValidation:rule="self.periodStart < self.periodEnd",message="periodStart must be before periodEnd"
type OrganizationUsageReportSpec struct {
	// organization is the Organization the report meters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Organization string `json:"organization"`
	// periodStart is the start of the billing period: the subscription's startDate, monthly.
	// +required
	PeriodStart metav1.Time `json:"periodStart"`
	// periodEnd is the end of the period, excluded: periodStart a month later.
	// +required
	PeriodEnd metav1.Time `json:"periodEnd"`
}

// OrganizationUsageReportStatus is the metered usage of the period up to checkpointTime. It is
// also the checkpoint the operator continues from: pods carry their own start and end times, so
// the amounts up to checkpointTime and the pods themselves are all that is needed to go on.
type OrganizationUsageReportStatus struct {
	// checkpointTime is the moment every amount below is integrated up to.
	// +optional
	CheckpointTime *metav1.Time `json:"checkpointTime,omitempty"`
	// total is the organization's usage over the period up to checkpointTime, every namespace
	// included (also those not listed and those deleted).
	// +optional
	Total MeteredUsage `json:"total,omitempty"`
	// days breaks total down by UTC calendar day, oldest first. Reports older than the previous
	// period drop them.
	// +optional
	// +listType=map
	// +listMapKey=date
	// +kubebuilder:validation:MaxItems=32
	Days []DayUsage `json:"days,omitempty"`
	// namespaces breaks total down by namespace of the organization, sorted by name; at most
	// 1000 are listed, the others count in total only. The operator writes the list whole.
	// +optional
	// Atomic: the API server then records one managedFields entry for the list, not one per
	// namespace, which would double the report's size.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Namespaces []NamespaceMeteredUsage `json:"namespaces,omitempty"`
	// deletedNamespaces is, together, the usage of listed namespaces that were deleted or left
	// the organization during the period.
	// +optional
	DeletedNamespaces *MeteredUsage `json:"deletedNamespaces,omitempty"`
	// allowance is the plan's monthlyAllowance, in credits, when it has one.
	// +optional
	Allowance *resource.Quantity `json:"allowance,omitempty"`
}

// OrganizationUsageReport is an organization's metered usage over one billing period, in its
// home namespace, named <organization>-<periodStart as YYYY-MM-DD>. The operator writes it;
// the organization's members read it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=orgusage;orgusages,categories=tenancy
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// Start and End print as timestamps: kubectl shows a date column as an age, a future one as <invalid>.
// +kubebuilder:printcolumn:name="Start",type=string,JSONPath=`.spec.periodStart`
// +kubebuilder:printcolumn:name="End",type=string,JSONPath=`.spec.periodEnd`
// +kubebuilder:printcolumn:name="CPU Core-Seconds",type=string,JSONPath=`.status.total.requests.cpu`
// +kubebuilder:printcolumn:name="Pod-Seconds",type=integer,JSONPath=`.status.total.podSeconds`
// +kubebuilder:printcolumn:name="Credits",type=string,JSONPath=`.status.total.credits`
// +kubebuilder:printcolumn:name="Allowance",type=string,JSONPath=`.status.allowance`,priority=1
// +kubebuilder:printcolumn:name="Checkpoint",type=date,JSONPath=`.status.checkpointTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OrganizationUsageReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the organization and the period.
	// +required
	Spec OrganizationUsageReportSpec `json:"spec"`

	// status is the usage metered so far.
	// +optional
	Status OrganizationUsageReportStatus `json:"status,omitempty"`
}

// OrganizationUsageReportList is a list of OrganizationUsageReports.
// +kubebuilder:object:root=true
type OrganizationUsageReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationUsageReport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrganizationUsageReport{}, &OrganizationUsageReportList{})
}
