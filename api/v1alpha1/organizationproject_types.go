package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OrganizationProjectSpec is a namespace an organization's admins ask for, and who may do what in it.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.namespace) || has(self.namespace)",message="namespace cannot be removed"
type OrganizationProjectSpec struct {
	// displayName is a human-readable name for the project.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// description says what the project is for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// namespace is the name of the project's namespace, unique in the cluster. Defaults to
	// <organization>-<project>; it cannot be changed once set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="namespace cannot be changed; create another project"
	Namespace string `json:"namespace,omitempty"`

	// members gives organization members a role in this project other than their kubernetesRole:
	// higher (Admin here, View elsewhere) or None (no access to this project). Members not listed
	// have their kubernetesRole here as everywhere in the organization.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1000
	Members []ProjectMember `json:"members,omitempty"`
}

// ProjectMember is one member's role in a project.
type ProjectMember struct {
	// name is the OrganizationMember's name, in the organization's home namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// kubernetesRole is the member's access in the project's namespace: Admin, Edit or View bind
	// the built-in ClusterRoles admin, edit or view; None binds nothing.
	// +required
	KubernetesRole KubernetesRole `json:"kubernetesRole"`
}

// OrganizationProjectStatus is what the operator observed about a project.
type OrganizationProjectStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready summarises NamespacesReady.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// organization is the organization the project belongs to, from its namespace.
	// +optional
	Organization string `json:"organization,omitempty"`

	// namespace is the project's namespace once it exists and is the project's.
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// usage is what runs in the project's namespace, as the organization's status.usage counts it.
	// +optional
	Usage *WorkloadUsage `json:"usage,omitempty"`
}

// OrganizationProject is a namespace of an organization that its admins create and delete
// themselves, in the organization's home namespace, with per-project roles for its members. The
// operator creates the namespace, labels it into the organization and keeps its quotas and
// RoleBindings like any other namespace of the organization.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=orgproject;orgprojects,categories=tenancy
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.status.organization`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.usage.pods`
// +kubebuilder:printcolumn:name="CPU",type=string,JSONPath=`.status.usage.requests.cpu`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters, so that it can be a label value"
// +kubebuilder:selectablefield:JSONPath=".spec.namespace"
type OrganizationProject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the project.
	// +optional
	Spec OrganizationProjectSpec `json:"spec,omitempty"`

	// status is the observed state of the project.
	// +optional
	Status OrganizationProjectStatus `json:"status,omitempty"`
}

// OrganizationProjectList is a list of OrganizationProjects.
// +kubebuilder:object:root=true
type OrganizationProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OrganizationProject `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OrganizationProject{}, &OrganizationProjectList{})
}
