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

	// ProjectLabel on a namespace names the OrganizationProject, in the home namespace of the
	// organization OrganizationLabel names, whose namespace it is. Only platform admins and the
	// operator may set, change or remove it.
	ProjectLabel = "tenancy.orgoperator.io/project"

	// MemberLabel named the OrganizationMember a per-member RoleBinding was created for, before
	// members shared one RoleBinding per namespace and role. The operator removes such bindings
	// once the shared ones are in place.
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

	// MemberFinalizer keeps a member until the operator has taken it out of its organization's
	// RoleBindings in every namespace: once it is gone, so is its access.
	MemberFinalizer = "tenancy.orgoperator.io/member"
)
