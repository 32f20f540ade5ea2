package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// OrganizationType says what kind of customer an organization is.
// +kubebuilder:validation:Enum=Business;Enterprise;Individual;Trial
type OrganizationType string

const (
	OrganizationTypeBusiness   OrganizationType = "Business"
	OrganizationTypeEnterprise OrganizationType = "Enterprise"
	OrganizationTypeIndividual OrganizationType = "Individual"
	OrganizationTypeTrial      OrganizationType = "Trial"
)

// DeletionPolicy says what happens to an organization's namespaces when it is deleted.
// +kubebuilder:validation:Enum=Block;Cascade
type DeletionPolicy string

const (
	// DeletionPolicyBlock keeps the organization, with a DeletionBlocked condition, while any of its
	// namespaces still holds workloads. Once they are gone the home namespace is deleted; namespaces
	// that joined by label are left in place.
	DeletionPolicyBlock DeletionPolicy = "Block"

	// DeletionPolicyCascade deletes the home namespace and every namespace labelled into the
	// organization, with everything in them.
	DeletionPolicyCascade DeletionPolicy = "Cascade"
)

// OrganizationSpec is what a platform team declares about a tenant.
type OrganizationSpec struct {
	// displayName is the human-readable name shown in UIs, 1 to 50 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	DisplayName string `json:"displayName"`

	// description says what the organization is, at most 256 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`

	// logoURL is an http(s) URL of the organization's logo.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="logoURL must be an absolute http or https URL"
	LogoURL string `json:"logoURL,omitempty"`

	// links maps a short name (website, docs, support...) to an http(s) URL. At most 16 entries.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 63 && k.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$'))",message="link names must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 2048 && isURL(self[k]) && url(self[k]).getScheme() in ['http', 'https'])",message="link targets must be absolute http or https URLs of at most 2048 characters"
	Links map[string]string `json:"links,omitempty"`

	// contactEmail is where the platform team reaches the organization.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	ContactEmail string `json:"contactEmail,omitempty"`

	// type is the kind of customer: Business, Enterprise, Individual or Trial. Defaults to Business.
	// +optional
	// +kubebuilder:default=Business
	Type OrganizationType `json:"type,omitempty"`

	// subscription is the plan the organization is on and the dates it runs between.
	// +optional
	Subscription *Subscription `json:"subscription,omitempty"`

	// quotas override the plan's quotas, field by field; resource lists override resource by resource.
	// +optional
	Quotas *Quotas `json:"quotas,omitempty"`

	// deletionPolicy says what deleting the organization does to its namespaces. Block (the
	// default) waits, with a DeletionBlocked condition, until they hold no workloads; Cascade
	// deletes them.
	// +optional
	// +kubebuilder:default=Block
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// owner is who the organization starts with: the operator makes it an admin member once (the
	// member named in status.owner), so that a new organization never starts without an admin.
	// Changing the owner makes the new one an admin too; the earlier owner's member stays.
	// +optional
	Owner *OrganizationOwner `json:"owner,omitempty"`
}

// OrganizationOwner is a user, by email and optionally username, or a group.
// +kubebuilder:validation:XValidation:rule="has(self.email) != has(self.group)",message="an owner is either a user (email) or a group (group)"
// +kubebuilder:validation:XValidation:rule="!has(self.username) || has(self.email)",message="username names a user owner and needs email"
type OrganizationOwner struct {
	// email is the owner's email; it is the RBAC user name unless username is set.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	Email string `json:"email,omitempty"`
	// username is the name the cluster's authenticator gives the owner, when it is not the email.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('system:')",message="username cannot be a system: identity"
	Username string `json:"username,omitempty"`
	// group makes a group the owner: every user in it becomes an admin.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('system:')",message="group cannot be a system: group"
	Group string `json:"group,omitempty"`
}

// OwnerStatus records the member the operator made the owner's.
type OwnerStatus struct {
	// subject is the owner it was made for, as the member's status.subject says it.
	// +kubebuilder:validation:MaxLength=320
	Subject string `json:"subject"`
	// member is the OrganizationMember that holds the owner's access.
	// +kubebuilder:validation:MaxLength=63
	Member string `json:"member"`
}

// Subscription is an organization's plan and the time it runs.
// +kubebuilder:validation:XValidation:rule="!has(self.endDate) || !has(self.startDate) || self.endDate > self.startDate",message="subscription.endDate must be after subscription.startDate"
type Subscription struct {
	// plan is the name of the OrganizationPlan the organization is on.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Plan string `json:"plan,omitempty"`

	// startDate is when the subscription starts (RFC 3339).
	// +optional
	StartDate *metav1.Time `json:"startDate,omitempty"`

	// endDate is when the subscription ends (RFC 3339); it must be after startDate.
	// +optional
	EndDate *metav1.Time `json:"endDate,omitempty"`

	// selfService is true when the organization manages its subscription itself rather than
	// through the platform team.
	// +optional
	SelfService bool `json:"selfService,omitempty"`
}

// OrganizationStatus is what the operator observed about an organization.
type OrganizationStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready summarises NamespacesReady and MembersReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// homeNamespace is the namespace the operator created for the organization; its members live there.
	// +optional
	HomeNamespace string `json:"homeNamespace,omitempty"`

	// namespaces lists, sorted, every namespace of the organization: the home namespace and those
	// labelled tenancy.orgoperator.io/organization=<name>.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10000
	Namespaces []string `json:"namespaces,omitempty"`

	// memberCount is the number of OrganizationMembers in the home namespace.
	// +optional
	MemberCount int32 `json:"memberCount,omitempty"`

	// adminCount is the number of those members with admin: true.
	// +optional
	AdminCount int32 `json:"adminCount,omitempty"`

	// owner is the member the operator made for spec.owner; once it is recorded here, the
	// operator does not make it again, so that the organization's admins may change or remove it.
	// +optional
	Owner *OwnerStatus `json:"owner,omitempty"`

	// usage is what the organization's namespaces hold right now.
	// +optional
	Usage *OrganizationUsage `json:"usage,omitempty"`

	// subscription is where the organization stands in its subscription's lifecycle.
	// +optional
	Subscription *SubscriptionStatus `json:"subscription,omitempty"`

	// metering is the current billing period's metered usage, as its OrganizationUsageReport
	// last recorded it.
	// +optional
	Metering *MeteringStatus `json:"metering,omitempty"`

	// quotas are the effective limits (the plan's, overridden by spec.quotas) next to what is used.
	// +optional
	Quotas *QuotaStatus `json:"quotas,omitempty"`

	// admitted records the member and namespace changes the admission webhooks admitted in the
	// last minute, which the API server may not show yet. Rules that must hold under concurrency
	// (the last admin, maxMembers, maxAdmins, maxNamespaces, unique emails) are decided against
	// the stored objects and these records, and each decision is a compare-and-swap on the
	// organization's resourceVersion. The operator writes it.
	// +optional
	Admitted *AdmittedChanges `json:"admitted,omitempty"`
}

// AdmittedChanges are changes admitted to an organization's members and namespaces that the API
// server may not have stored yet. A record goes once the stored objects show it, or after a minute
// (the longest a request may take), when its request was refused after admission.
type AdmittedChanges struct {
	// members are admitted creations, updates and deletions of members, one per member name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1000
	Members []AdmittedMember `json:"members,omitempty"`
	// namespaces are admitted joins of namespaces to the organization, one per namespace.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1000
	Namespaces []AdmittedNamespace `json:"namespaces,omitempty"`
}

// AdmittedMember is a member as an admitted request leaves it.
type AdmittedMember struct {
	// name is the OrganizationMember's name.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// email is the member's email, lower-cased; empty when deleted.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	Email string `json:"email,omitempty"`
	// subject is the member's RBAC subject, as its status.subject says it; empty when deleted.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	Subject string `json:"subject,omitempty"`
	// admin is the member's admin flag.
	// +optional
	Admin bool `json:"admin,omitempty"`
	// deleted is true when the request deletes the member.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
	// time is when the request was admitted.
	Time metav1.Time `json:"time"`
}

// AdmittedNamespace is a namespace admitted into the organization.
type AdmittedNamespace struct {
	// name is the namespace.
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// time is when the request was admitted.
	Time metav1.Time `json:"time"`
}

// SubscriptionState is where a subscription stands.
// +kubebuilder:validation:Enum=Active;Trial;GracePeriod;Expired;PlanNotFound
type SubscriptionState string

const (
	// SubscriptionActive: running, and paid for or free.
	SubscriptionActive SubscriptionState = "Active"
	// SubscriptionTrial: within the plan's trial.
	SubscriptionTrial SubscriptionState = "Trial"
	// SubscriptionGracePeriod: ended, but still working for the plan's grace period.
	SubscriptionGracePeriod SubscriptionState = "GracePeriod"
	// SubscriptionExpired: ended and past its grace period. The organization's namespaces admit no
	// new pods; nothing is deleted.
	SubscriptionExpired SubscriptionState = "Expired"
	// SubscriptionPlanNotFound: the plan named by spec.subscription.plan does not exist. The quotas
	// last applied (status.quotas) hold, in the namespaces and at admission, until it does; an
	// organization that never had any is held to spec.quotas alone. Nothing is removed.
	SubscriptionPlanNotFound SubscriptionState = "PlanNotFound"
)

// SubscriptionStatus is the state of an organization's subscription as of the last reconcile.
// The operator reconciles again at each boundary (trial end, end date, grace end) and when the
// days remaining change, so the values are exact at those moments.
type SubscriptionStatus struct {
	// plan is the plan the organization is on.
	// +optional
	Plan string `json:"plan,omitempty"`
	// state is Active, Trial, GracePeriod, Expired or PlanNotFound.
	State SubscriptionState `json:"state"`
	// hasActiveSubscription is true in Active, Trial and GracePeriod.
	HasActiveSubscription bool `json:"hasActiveSubscription"`
	// startDate is when the subscription started (spec.subscription.startDate, or creation).
	// +optional
	StartDate *metav1.Time `json:"startDate,omitempty"`
	// endDate is when it ends: spec.subscription.endDate, or the end of the trial.
	// +optional
	EndDate *metav1.Time `json:"endDate,omitempty"`
	// trialExpiresAt is when the trial ends, for plans with trialDays.
	// +optional
	TrialExpiresAt *metav1.Time `json:"trialExpiresAt,omitempty"`
	// trialExpirySeconds is how many seconds of trial were left at the last reconcile.
	// +optional
	TrialExpirySeconds *int64 `json:"trialExpirySeconds,omitempty"`
	// gracePeriodEndsAt is when the organization becomes Expired.
	// +optional
	GracePeriodEndsAt *metav1.Time `json:"gracePeriodEndsAt,omitempty"`
	// daysRemaining is how many started days are left before endDate; absent when it never ends.
	// +optional
	DaysRemaining *int32 `json:"daysRemaining,omitempty"`
}

// QuotaStatus shows the effective limits and what is used of them.
type QuotaStatus struct {
	// maxNamespaces, maxMembers and maxAdmins are the effective count limits; absent means unlimited.
	// +optional
	MaxNamespaces *int32 `json:"maxNamespaces,omitempty"`
	// +optional
	MaxMembers *int32 `json:"maxMembers,omitempty"`
	// +optional
	MaxAdmins *int32 `json:"maxAdmins,omitempty"`
	// namespaceQuota is the hard limit of the ResourceQuota in every namespace.
	// +optional
	NamespaceQuota corev1.ResourceList `json:"namespaceQuota,omitempty"`
	// hard is the organization-wide limit (the effective organizationQuota).
	// +optional
	Hard corev1.ResourceList `json:"hard,omitempty"`
	// used is what the organization's namespaces use of the resources in hard, as their
	// ResourceQuotas count it.
	// +optional
	Used corev1.ResourceList `json:"used,omitempty"`
	// exceeded lists every quota the organization is over, and by how much. Nothing is removed
	// when a quota is exceeded; new objects of that kind are refused.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Exceeded []QuotaExcess `json:"exceeded,omitempty"`
	// ledger is what the admission webhooks charge against hard, so that concurrent creations in
	// different namespaces can never take the organization past its limit. It covers every
	// resource organizationQuota accepts: what pods use, persistent volume claims and their
	// storage (in total and per storage class), and the counts of Deployments, StatefulSets and
	// Services. The operator writes it; absent when hard names none of these or the operator runs
	// without its webhooks.
	// +optional
	Ledger *QuotaLedger `json:"ledger,omitempty"`
}

// LedgerOrNil returns the ledger; nil when the status or its ledger is absent.
func (s *QuotaStatus) LedgerOrNil() *QuotaLedger {
	if s == nil {
		return nil
	}
	return s.Ledger
}

// QuotaLedger is the organization-wide quota's account: what the operator has seen, plus what the
// webhooks admitted since. Every write to it is a compare-and-swap on the organization's
// resourceVersion, so webhook replicas and the controller never lose each other's charges.
type QuotaLedger struct {
	// observed is the usage of the objects the operator has seen in the organization's namespaces.
	// +optional
	Observed corev1.ResourceList `json:"observed,omitempty"`
	// reservations are objects (and resizes) the webhooks admitted that the operator has not seen
	// yet, and the holdings of namespaces admitted into the organization. A reservation ends when
	// its object is seen; one whose object was never stored (a later admission check or the
	// storage refused it) stops counting 2 to 3 seconds after it was written.
	// +optional
	// +listType=map
	// +listMapKey=uid
	// +kubebuilder:validation:MaxItems=1000
	Reservations []QuotaReservation `json:"reservations,omitempty"`
}

// QuotaReservation is one admitted object's charge.
type QuotaReservation struct {
	// uid is the object's UID, assigned before admission; for a resize, followed by /<the version
	// the resize gives it: a pod's generation, a claim's storage in bytes>.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	UID types.UID `json:"uid"`
	// resource is the kind of object charged: pods (when absent), persistentvolumeclaims,
	// deployments.apps, statefulsets.apps or services.
	// +optional
	// +kubebuilder:validation:Enum=pods;persistentvolumeclaims;deployments.apps;statefulsets.apps;services
	Resource string `json:"resource,omitempty"`
	// namespace is the object's namespace.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name is the object's name.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// time is when the webhook admitted the object.
	Time metav1.Time `json:"time"`
	// usage is what the object uses (or a resize adds) of the enforced resources.
	// +optional
	Usage corev1.ResourceList `json:"usage,omitempty"`
}

// QuotaExcess is one quota the organization is over.
type QuotaExcess struct {
	// name is the quota: maxNamespaces, maxMembers, maxAdmins, or a resource of hard.
	Name string `json:"name"`
	// hard is the limit.
	Hard string `json:"hard"`
	// used is what is used.
	Used string `json:"used"`
}

// OrganizationUsage counts what an organization's namespaces hold. Pods in phase Succeeded or
// Failed do not count, as in ResourceQuota.
type OrganizationUsage struct {
	// namespaceCount is the number of namespaces of the organization.
	NamespaceCount int32 `json:"namespaceCount"`
	// members is the number of OrganizationMembers.
	Members int32 `json:"members"`
	// namespaces breaks the usage down by namespace, sorted by name, as OpenShift's
	// ClusterResourceQuota does in status.namespaces. Only the first 500 namespaces are listed;
	// the totals count them all.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=500
	Namespaces    []NamespaceUsage `json:"namespaces,omitempty"`
	WorkloadUsage `json:",inline"`
}

// MeteringStatus is the current billing period's usage.
type MeteringStatus struct {
	// report is the name of the period's OrganizationUsageReport in the home namespace; empty
	// until something ran in the period.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Report string `json:"report,omitempty"`
	// periodStart is the start of the current billing period.
	// +required
	PeriodStart metav1.Time `json:"periodStart"`
	// periodEnd is the end of the current billing period, excluded.
	// +required
	PeriodEnd metav1.Time `json:"periodEnd"`
	// checkpointTime is the moment total is integrated up to.
	// +optional
	CheckpointTime *metav1.Time `json:"checkpointTime,omitempty"`
	// total is the organization's usage in the period up to checkpointTime.
	// +optional
	Total MeteredUsage `json:"total,omitempty"`
	// allowance is the plan's monthlyAllowance, in credits, when it has one.
	// +optional
	Allowance *resource.Quantity `json:"allowance,omitempty"`
}

// NamespaceUsage is what one namespace of an organization holds.
type NamespaceUsage struct {
	// name is the namespace.
	// +kubebuilder:validation:MaxLength=63
	Name          string `json:"name"`
	WorkloadUsage `json:",inline"`
}

// WorkloadUsage counts workloads and sums the pods' resources.
type WorkloadUsage struct {
	// pods is the number of pods that are not Succeeded or Failed.
	Pods int32 `json:"pods"`
	// deployments is the number of Deployments.
	Deployments int32 `json:"deployments"`
	// statefulSets is the number of StatefulSets.
	StatefulSets int32 `json:"statefulSets"`
	// services is the number of Services.
	Services int32 `json:"services"`
	// persistentVolumeClaims is the number of PersistentVolumeClaims.
	PersistentVolumeClaims int32 `json:"persistentVolumeClaims"`
	// requests sums the cpu and memory requests of the counted pods' containers (init containers
	// counted as the scheduler does: the larger of their maximum and the sum of the app containers).
	// +optional
	Requests corev1.ResourceList `json:"requests,omitempty"`
	// limits sums the cpu and memory limits of the counted pods, in the same way as requests.
	// +optional
	Limits corev1.ResourceList `json:"limits,omitempty"`
}

// Organization is a tenant of the platform: a set of namespaces, the people who may use them and
// the subscription that pays for them. The operator creates a home namespace named after it;
// other namespaces join by carrying the label tenancy.orgoperator.io/organization=<name>.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=org;orgs,categories=tenancy
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Plan",type=string,JSONPath=`.spec.subscription.plan`
// +kubebuilder:printcolumn:name="Subscription",type=string,JSONPath=`.status.subscription.state`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.memberCount`
// +kubebuilder:printcolumn:name="Namespaces",type=integer,JSONPath=`.status.usage.namespaceCount`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.usage.pods`,priority=1
// +kubebuilder:printcolumn:name="CPU Req",type=string,JSONPath=`.status.usage.requests.cpu`,priority=1
// +kubebuilder:printcolumn:name="CPU Quota",type=string,JSONPath=`.status.quotas.hard.requests\.cpu`,priority=1
// +kubebuilder:printcolumn:name="Pod Quota",type=string,JSONPath=`.status.quotas.hard.pods`,priority=1
// +kubebuilder:printcolumn:name="Days Left",type=integer,JSONPath=`.status.subscription.daysRemaining`,priority=1
// +kubebuilder:printcolumn:name="Credits",type=string,JSONPath=`.status.metering.total.credits`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be at most 63 lowercase letters, digits and '-', start with a letter and end with a letter or digit"
// +kubebuilder:validation:XValidation:rule="!(self.metadata.name in ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'openshift', 'org-operator-system']) && !self.metadata.name.startsWith('kube-') && !self.metadata.name.startsWith('openshift-')",message="metadata.name is reserved for the system: default, openshift, kube-* and openshift-* cannot name an organization"
type Organization struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the organization.
	// +required
	Spec OrganizationSpec `json:"spec"`

	// status is the observed state of the organization.
	// +optional
	Status OrganizationStatus `json:"status,omitempty"`
}

// OrganizationList is a list of Organizations.
// +kubebuilder:object:root=true
type OrganizationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Organization `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Organization{}, &OrganizationList{})
}
