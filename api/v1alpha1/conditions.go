package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types. Ready summarises the others and is always present; tools that follow kstatus
// conventions (kubectl wait, Flux, Argo CD health checks) read it together with observedGeneration.
const (
	// ReadyCondition is True when everything the object asks for exists and is up to date.
	ReadyCondition = "Ready"

	// NamespacesReadyCondition is True when the organization's home namespace exists and is owned
	// by it, and every namespace labelled into the organization is accounted for.
	NamespacesReadyCondition = "NamespacesReady"

	// MembersReadyCondition is True when every OrganizationMember of the organization is Ready.
	MembersReadyCondition = "MembersReady"

	// RoleBindingsReadyCondition is True when a member has exactly the RoleBindings its role asks for.
	RoleBindingsReadyCondition = "RoleBindingsReady"

	// NamespaceReadyCondition is True when a project's namespace exists, belongs to the project
	// and has the organization's quotas and RoleBindings.
	NamespaceReadyCondition = "NamespaceReady"

	// StalledCondition is present, and True, only while the object cannot make progress without
	// someone changing something (a name taken by a namespace, a missing plan or organization). Its
	// reason and message are Ready's. kstatus reports such objects as Failed rather than InProgress.
	StalledCondition = "Stalled"

	// SubscriptionActiveCondition is True in Active, Trial and GracePeriod; its reason is the state.
	SubscriptionActiveCondition = "SubscriptionActive"

	// QuotaExceededCondition is True while the organization is over one of its quotas; the message
	// and status.quotas.exceeded say which and by how much.
	QuotaExceededCondition = "QuotaExceeded"

	// QuotasReadyCondition is True when every namespace has the ResourceQuota and LimitRange its
	// quotas ask for.
	QuotasReadyCondition = "QuotasReady"

	// AdminMissingCondition is True while the organization has no admin member: nobody but a
	// platform admin can then change its members or projects. Alerts watch it; Ready does not
	// depend on it.
	AdminMissingCondition = "AdminMissing"

	// CreditsExhaustedCondition is True once the organization has used its plan's whole
	// monthlyAllowance in the current billing period; False below it, with reason
	// AllowanceNearlyUsed from 80 %. Absent when the plan grants no allowance.
	CreditsExhaustedCondition = "CreditsExhausted"
)

// Condition reasons, shared by events that report the same transition.
const (
	// ReconciledReason: the object matches its spec.
	ReconciledReason = "Reconciled"

	// ProgressingReason: the operator is still creating or updating what the object asks for.
	ProgressingReason = "Progressing"

	// NamespaceCreatedReason: the operator created the organization's home namespace.
	NamespaceCreatedReason = "NamespaceCreated"

	// NameCollisionReason: a namespace with the organization's name exists and belongs to
	// someone else. Rename the organization or remove that namespace.
	NameCollisionReason = "NameCollision"

	// NamespaceNotAdoptedReason: a project names a namespace that exists outside the organization.
	// A platform admin labels it into the organization and the project to adopt it.
	NamespaceNotAdoptedReason = "NamespaceNotAdopted"

	// NamespaceNotSetReason: a project has no spec.namespace (the project webhook sets it).
	NamespaceNotSetReason = "NamespaceNotSet"

	// ReservedNameReason: the organization's name is reserved for the system.
	ReservedNameReason = "ReservedName"

	// MembersNotReadyReason: at least one member is not Ready yet.
	MembersNotReadyReason = "MembersNotReady"

	// DeletionBlockedReason: the organization is being deleted with deletionPolicy Block and its
	// namespaces still hold workloads. Delete them, or switch to Cascade.
	DeletionBlockedReason = "DeletionBlocked"

	// DeletingReason: the organization is being deleted and its namespaces are being removed.
	DeletingReason = "Deleting"

	// OrganizationNotFoundReason: a member's namespace is not the home namespace of an existing
	// organization.
	OrganizationNotFoundReason = "OrganizationNotFound"

	// ServiceAccountOutsideOrganizationReason: a service account member's namespace is not one of
	// its organization's, so the operator binds it nowhere.
	ServiceAccountOutsideOrganizationReason = "ServiceAccountOutsideOrganization"

	// OwnerAddedReason: the operator made the organization's owner an admin member.
	OwnerAddedReason = "OwnerAdded"

	// OwnerNotAddedReason: admission refused the owner's member (a quota, or a member bound as it
	// under another name that is no admin); the message says why.
	OwnerNotAddedReason = "OwnerNotAdded"

	// AdminPresentReason and NoAdminReason are the states of AdminMissing.
	AdminPresentReason = "AdminPresent"
	NoAdminReason      = "NoAdmin"

	// RoleBindingsAppliedReason: the member's RoleBindings were created, changed or removed.
	RoleBindingsAppliedReason = "RoleBindingsApplied"

	// ReconcileErrorReason: the last reconcile failed; the message says why and it will be retried.
	ReconcileErrorReason = "ReconcileError"

	// WithinQuotaReason: the organization is within all of its quotas.
	WithinQuotaReason = "WithinQuota"

	// OverQuotaReason: the organization is over at least one quota.
	OverQuotaReason = "OverQuota"

	// WithinAllowanceReason: the organization has used less than 80 % of its credit allowance.
	WithinAllowanceReason = "WithinAllowance"

	// AllowanceNearlyUsedReason: the organization has used 80 % or more of its credit allowance.
	AllowanceNearlyUsedReason = "AllowanceNearlyUsed"

	// AllowanceExhaustedReason: the organization has used its whole credit allowance.
	AllowanceExhaustedReason = "AllowanceExhausted"
)

// GetConditions returns the organization's status conditions.
func (o *Organization) GetConditions() []metav1.Condition { return o.Status.Conditions }

// GetConditions returns the member's status conditions.
func (m *OrganizationMember) GetConditions() []metav1.Condition { return m.Status.Conditions }
