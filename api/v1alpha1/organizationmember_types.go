package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubernetesRole is the access a member gets in every namespace of its organization.
// +kubebuilder:validation:Enum=Admin;Edit;View;None
type KubernetesRole string

const (
	// KubernetesRoleAdmin binds the built-in ClusterRole admin.
	KubernetesRoleAdmin KubernetesRole = "Admin"
	// KubernetesRoleEdit binds the built-in ClusterRole edit.
	KubernetesRoleEdit KubernetesRole = "Edit"
	// KubernetesRoleView binds the built-in ClusterRole view.
	KubernetesRoleView KubernetesRole = "View"
	// KubernetesRoleNone binds nothing in the namespaces.
	KubernetesRoleNone KubernetesRole = "None"
)

// OrganizationMemberSpec says who the member is and what it may do. A member is exactly one
// identity: a user (email, and username when the authenticator names users otherwise), a group
// or a service account.
// +kubebuilder:validation:XValidation:rule="(has(self.email) ? 1 : 0) + (has(self.group) ? 1 : 0) + (has(self.serviceAccount) ? 1 : 0) == 1",message="a member is exactly one of: a user (email), a group (group) or a service account (serviceAccount)"
// +kubebuilder:validation:XValidation:rule="!has(self.username) || has(self.email)",message="username names a user member and needs email"
type OrganizationMemberSpec struct {
	// email identifies a user member; it is the RBAC user name unless username is set.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	Email string `json:"email,omitempty"`
	// username is the name the cluster's authenticator gives the user, when it is not the email.
	// RoleBindings name this user.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('system:')",message="username cannot be a system: identity"
	Username string `json:"username,omitempty"`
	// group makes every user of this group a member: the group name as the authenticator puts it
	// in the user's groups (an OIDC groups claim, with its prefix if the API server adds one).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('system:')",message="group cannot be a system: group"
	Group string `json:"group,omitempty"`
	// serviceAccount makes a service account a member, for CI and GitOps. It must live in one of
	// the organization's namespaces: elsewhere it would hand the organization's rights to a
	// workload the organization does not control.
	// +optional
	ServiceAccount *ServiceAccountSubject `json:"serviceAccount,omitempty"`
	// admin makes the member an organization admin: it may manage the organization's members.
	// +optional
	Admin bool `json:"admin,omitempty"`

	// kubernetesRole is the access the member gets in every namespace of the organization: Admin,
	// Edit or View bind the built-in ClusterRoles admin, edit or view; None binds nothing.
	// Defaults to View.
	// +optional
	// +kubebuilder:default=View
	KubernetesRole KubernetesRole `json:"kubernetesRole,omitempty"`
}

// ServiceAccountSubject names a service account.
type ServiceAccountSubject struct {
	// namespace is the service account's namespace, one of the organization's.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// name is the service account's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// AccessScope says which of an organization's namespaces a binding covers.
// +kubebuilder:validation:Enum=Organization;Home
type AccessScope string

const (
	// AccessScopeOrganization: every namespace of the organization, the home namespace included,
	// but the projects where the member has another role (status.projects).
	AccessScopeOrganization AccessScope = "Organization"
	// AccessScopeHome: the organization's home namespace only.
	AccessScopeHome AccessScope = "Home"
)

// MemberAccess is one ClusterRole a member is bound to, and where.
type MemberAccess struct {
	// clusterRole is the ClusterRole bound.
	// +required
	// +kubebuilder:validation:MaxLength=253
	ClusterRole string `json:"clusterRole"`

	// namespaces says where: Organization for every namespace of the organization, Home for the
	// home namespace only.
	// +required
	Namespaces AccessScope `json:"namespaces"`

	// roleBinding is the name of the RoleBinding that lists the member in each of those namespaces.
	// +required
	// +kubebuilder:validation:MaxLength=253
	RoleBinding string `json:"roleBinding"`
}

// ProjectAccess is a member's role in a project that gives it a role other than its kubernetesRole.
type ProjectAccess struct {
	// project is the OrganizationProject's name.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Project string `json:"project"`

	// namespace is the project's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// kubernetesRole is the role bound in the project's namespace; None binds nothing.
	// +required
	KubernetesRole KubernetesRole `json:"kubernetesRole"`

	// roleBinding is the name of the RoleBinding that lists the member there; empty for None.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	RoleBinding string `json:"roleBinding,omitempty"`
}

// OrganizationMemberStatus is what the operator observed about a member.
type OrganizationMemberStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready summarises RoleBindingsReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// organization is the organization the member belongs to, from its namespace.
	// +optional
	Organization string `json:"organization,omitempty"`
	// subject is the identity the member's RoleBindings name: User:<name>, Group:<name> or
	// ServiceAccount:<namespace>/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	Subject string `json:"subject,omitempty"`

	// access lists what the member is bound to: each ClusterRole, the namespaces it covers and the
	// RoleBinding that lists the member there. It does not change as namespaces join or leave the
	// organization; the Organization's status.namespaces lists them.
	// +optional
	// +listType=map
	// +listMapKey=clusterRole
	// +listMapKey=namespaces
	// +kubebuilder:validation:MaxItems=16
	Access []MemberAccess `json:"access,omitempty"`

	// projects lists the projects where the member has a role other than its kubernetesRole, and
	// the role bound there; status.access holds everywhere else.
	// +optional
	// +listType=map
	// +listMapKey=project
	// +kubebuilder:validation:MaxItems=1000
	Projects []ProjectAccess `json:"projects,omitempty"`

	// joinedAt is when the member first became Ready.
	// +optional
	JoinedAt *metav1.Time `json:"joinedAt,omitempty"`
}

// OrganizationMember is a user, group or service account of an organization. It lives in the
// organization's home namespace; the operator binds it to its kubernetesRole in every namespace
// of the organization.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=orgmember;orgmembers,categories=tenancy
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.status.subject`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`,priority=1
// +kubebuilder:printcolumn:name="Admin",type=boolean,JSONPath=`.spec.admin`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.kubernetesRole`
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.status.organization`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters, so that it can be a label value"
type OrganizationMember struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the member.
	// +required
	Spec OrganizationMemberSpec `json:"spec"`

	// status is the observed state of the member.
	// +optional
	Status OrganizationMemberStatus `json:"status,omitempty"`
}

// OrganizationMemberList is a list of OrganizationMembers.
// +kubebuilder:object:root=true
type OrganizationMemberList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationMember `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrganizationMember{}, &OrganizationMemberList{})
}
