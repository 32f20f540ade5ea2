package controlplane

import (
	"context"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	// OperatorNamespace is the namespace config/default installs the operator in.
	OperatorNamespace = "org-operator-system"
	// OperatorUser is the user the operator's ServiceAccount authenticates as.
	OperatorUser = "system:serviceaccount:" + OperatorNamespace + ":org-operator-controller-manager"
	// installFieldOwner owns what InstallRBAC applies.
	installFieldOwner = "org-operator-install"
)

// RBACObjects renders config/rbac with kustomize: the operator's ServiceAccount, roles and
// bindings, the roles it hands out, and the admission policies that confine it. config/default
// installs exactly these, so `make run` and the tests install what a cluster gets.
func RBACObjects(root string) ([]*unstructured.Unstructured, error) {
	dir := filepath.Join(root, "config", "rbac")
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	objs := make([]*unstructured.Unstructured, 0, resources.Size())
	for _, r := range resources.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs, nil
}

// InstallRBAC server-side applies RBACObjects, creating the operator's namespace first.
func InstallRBAC(ctx context.Context, c client.Client, root string) error {
	objs, err := RBACObjects(root)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", OperatorNamespace, err)
	}
	for _, obj := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(installFieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// OperatorGroups are the groups the API server gives the operator's ServiceAccount token.
var OperatorGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + OperatorNamespace}

// OperatorKubeconfig returns a kubeconfig that authenticates as the operator's ServiceAccount
// (a client certificate with its user name and groups), for running the manager as installed.
func (cp *ControlPlane) OperatorKubeconfig() ([]byte, error) {
	u, err := cp.Env.ControlPlane.AddUser(envtest.User{Name: OperatorUser, Groups: OperatorGroups}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// OperatorConfig is OperatorKubeconfig as a client config.
func (cp *ControlPlane) OperatorConfig() (*rest.Config, error) {
	return cp.AddUser(OperatorUser, OperatorGroups...)
}
