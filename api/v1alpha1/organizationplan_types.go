package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Quotas limit what an organization may hold. On an OrganizationPlan they are the defaults for
// every organization on the plan; on an Organization they override the plan's, field by field and,
// in resource lists, resource by resource.
type Quotas struct {
	// maxNamespaces is how many namespaces the organization may have, its home namespace included.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxNamespaces *int32 `json:"maxNamespaces,omitempty"`

	// maxMembers is how many OrganizationMembers the organization may have.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxMembers *int32 `json:"maxMembers,omitempty"`

	// maxAdmins is how many of those members may be admins.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxAdmins *int32 `json:"maxAdmins,omitempty"`

	// namespaceQuota is the hard limit of a ResourceQuota the operator keeps in every namespace of
	// the organization (any resource a ResourceQuota accepts: cpu, requests.memory, pods, count/deployments.apps, ...).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	NamespaceQuota corev1.ResourceList `json:"namespaceQuota,omitempty"`

	// organizationQuota limits the sum, over all of the organization's namespaces, of what pods
	// use (pods, count/pods, and cpu, memory and ephemeral-storage requests, bare or requests.*,
	// and limits.*), of persistent volume claims and their storage (in total and per storage
	// class), and of the counts of Deployments, StatefulSets and Services. The operator charges
	// each object against it at admission (see docs/quotas.md). Other resources cannot be held
	// organization-wide and are refused: limit them per namespace with namespaceQuota.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k in ['count/deployments.apps', 'count/persistentvolumeclaims', 'count/pods', 'count/services', 'count/statefulsets.apps', 'cpu', 'ephemeral-storage', 'limits.cpu', 'limits.ephemeral-storage', 'limits.memory', 'memory', 'persistentvolumeclaims', 'pods', 'requests.cpu', 'requests.ephemeral-storage', 'requests.memory', 'requests.storage', 'services'] || k.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\\\\.storageclass\\\\.storage\\\\.k8s\\\\.io/(requests\\\\.storage|persistentvolumeclaims)$'))",message="organizationQuota supports only count/deployments.apps, count/persistentvolumeclaims, count/pods, count/services, count/statefulsets.apps, cpu, ephemeral-storage, limits.cpu, limits.ephemeral-storage, limits.memory, memory, persistentvolumeclaims, pods, requests.cpu, requests.ephemeral-storage, requests.memory, requests.storage, services, <class>.storageclass.storage.k8s.io/requests.storage, <class>.storageclass.storage.k8s.io/persistentvolumeclaims; limit other resources per namespace with namespaceQuota"
	OrganizationQuota corev1.ResourceList `json:"organizationQuota,omitempty"`

	// limitRange gives containers in the organization's namespaces default requests and limits,
	// through a LimitRange the operator keeps in each.
	// +optional
	LimitRange *LimitRangeDefaults `json:"limitRange,omitempty"`
}

// LimitRangeDefaults are the container defaults of a LimitRange.
type LimitRangeDefaults struct {
	// defaultRequest is the request of a container that sets none.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	DefaultRequest corev1.ResourceList `json:"defaultRequest,omitempty"`
	// default is the limit of a container that sets none.
	// +optional
	// +kubebuilder:validation:MaxProperties=8
	Default corev1.ResourceList `json:"default,omitempty"`
}

// OrganizationPlanSpec describes a plan.
// +kubebuilder:validation:XValidation:rule="!(has(self.free) && self.free && has(self.trialDays))",message="a free plan has no trial: remove trialDays or set free to false"
type OrganizationPlanSpec struct {
	// displayName is the plan's name for people, 1 to 50 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	DisplayName string `json:"displayName"`

	// description says what the plan offers, at most 256 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`

	// free plans never expire: their subscriptions must not set an endDate. Subscriptions to a
	// plan that is neither free nor a trial must set one.
	// +optional
	Free bool `json:"free,omitempty"`

	// trialDays makes the plan a trial of that many days from the subscription's startDate; the
	// subscription may then omit endDate and ends with the trial.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=366
	TrialDays *int32 `json:"trialDays,omitempty"`

	// gracePeriodDays is how long an organization keeps working after its subscription ends,
	// before it is Expired and its namespaces admit no new pods. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=365
	GracePeriodDays int32 `json:"gracePeriodDays,omitempty"`

	// quotas are the defaults for organizations on this plan.
	// +optional
	Quotas Quotas `json:"quotas,omitempty"`

	// metering prices what organizations on this plan use and grants them a credit allowance
	// per billing period (see docs/metering.md).
	// +optional
	Metering *PlanMetering `json:"metering,omitempty"`
}

// PlanMetering prices metered usage, in credits.
type PlanMetering struct {
	// prices are the credits charged per unit of requested resources; a unit without a price
	// costs nothing.
	// +optional
	Prices MeteringPrices `json:"prices,omitempty"`

	// monthlyAllowance is how many credits an organization may use per billing period. The
	// organization's CreditsExhausted condition says when it passes 80 % and 100 % of it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="monthlyAllowance must not be negative"
	MonthlyAllowance *resource.Quantity `json:"monthlyAllowance,omitempty"`

	// blockWhenExhausted makes an organization that has used its whole monthlyAllowance admit no
	// new pods until the next period (as an expired subscription does); nothing is deleted.
	// +optional
	BlockWhenExhausted bool `json:"blockWhenExhausted,omitempty"`
}

// MeteringPrices are credits per unit of requested resources, to the milli-credit.
type MeteringPrices struct {
	// cpuCoreHour is the price of one core requested for an hour.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="prices must not be negative"
	CPUCoreHour *resource.Quantity `json:"cpuCoreHour,omitempty"`
	// memoryGiBHour is the price of one GiB of memory requested for an hour.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="prices must not be negative"
	MemoryGiBHour *resource.Quantity `json:"memoryGiBHour,omitempty"`
	// podHour is the price of one pod running for an hour.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="prices must not be negative"
	PodHour *resource.Quantity `json:"podHour,omitempty"`
}

// OrganizationPlanStatus is what the operator observed about a plan.
type OrganizationPlanStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready is True once the plan has been counted.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// organizationCount is how many organizations are on the plan.
	// +optional
	OrganizationCount int32 `json:"organizationCount,omitempty"`
}

// OrganizationPlan is a named offer (free, trial, business, enterprise...): the quotas and trial
// length that organizations subscribed to it get.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=orgplan;orgplans,categories=tenancy
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Free",type=boolean,JSONPath=`.spec.free`
// +kubebuilder:printcolumn:name="Trial Days",type=integer,JSONPath=`.spec.trialDays`
// +kubebuilder:printcolumn:name="Organizations",type=integer,JSONPath=`.status.organizationCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be at most 63 lowercase letters, digits and '-', start with a letter and end with a letter or digit"
type OrganizationPlan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the plan.
	// +required
	Spec OrganizationPlanSpec `json:"spec"`

	// status is the observed state of the plan.
	// +optional
	Status OrganizationPlanStatus `json:"status,omitempty"`
}

// OrganizationPlanList is a list of OrganizationPlans.
// +kubebuilder:object:root=true
type OrganizationPlanList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationPlan `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrganizationPlan{}, &OrganizationPlanList{})
}
