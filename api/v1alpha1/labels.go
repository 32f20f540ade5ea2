package v1alpha1

// Labels, annotations and finalizers the operator reads and writes. They are part of the API:
// GitOps repositories set OrganizationLabel on namespaces to make them join an organization.
const (
	// OrganizationLabel on a namespace makes it part of the named organization. The operator
	// also sets it on every object it creates for an organization.
	OrganizationLabel = "tenancy.orgoperator.io/organization"

	// HomeNamespaceLabel marks the namespace the operator created for an organization, named after
	// it, where its OrganizationMembers live.
	HomeNamespaceLabel = "tenancy.orgoperator.io/home"

	// MemberLabel names the OrganizationMember a RoleBinding was created for.
	MemberLabel = "tenancy.orgoperator.io/member"

	// ManagedByLabel is the recommended app.kubernetes.io label, set on everything the operator creates.
	ManagedByLabel = "app.kubernetes.io/managed-by"

	// ManagedByValue is the value of ManagedByLabel.
	ManagedByValue = "org-operator"

	// ForceQuotaAnnotation, set to "true" on an Organization, lets an update lower maxNamespaces or
	// maxMembers below what the organization already has.
	ForceQuotaAnnotation = "tenancy.orgoperator.io/force-quota"

	// OrganizationFinalizer lets the operator apply the deletion policy before an organization goes.
	OrganizationFinalizer = "tenancy.orgoperator.io/organization"

	// MemberFinalizer lets the operator remove a member's RoleBindings from every namespace,
	// which owner references cannot do across namespaces.
	MemberFinalizer = "tenancy.orgoperator.io/member"
)
