package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/patch"
)

// reconcileHomeNamespace creates the organization's home namespace, or restores the labels of the
// existing one. A home the organization cannot have is a stalled error when only a person can
// fix it.
func (r *OrganizationReconciler) reconcileHomeNamespace(ctx context.Context, s *organizationScope) error {
	switch {
	case s.homeProblem != nil:
		if s.homeProblem.stalled {
			return conditions.Stalled(s.homeProblem.reason, "%s", s.homeProblem.message)
		}
		return nil
	case s.home == nil:
		return r.createHomeNamespace(ctx, s)
	default:
		return r.ensureHomeLabels(ctx, s.org, s.home)
	}
}

func (r *OrganizationReconciler) createHomeNamespace(ctx context.Context, s *organizationScope) error {
	home := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.org.Name, Labels: homeLabels(s.org.Name)}}
	// Organization is in the scheme and the namespace has no owner yet: this cannot fail.
	_ = controllerutil.SetControllerReference(s.org, home, scheme())
	if err := r.Create(ctx, home); err != nil {
		return fmt.Errorf("creating home namespace %s: %w", s.org.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Created home namespace", "namespace", klog.KObj(home))
	r.Recorder.Eventf(s.org, home, corev1.EventTypeNormal, tenancyv1alpha1.NamespaceCreatedReason, "Create",
		"Created home namespace %s", home.Name)
	s.home = home
	s.homeCreated = true
	s.namespaces = withNamespace(s.namespaces, *home)
	return nil
}

func homeLabels(org string) map[string]string {
	return map[string]string{
		tenancyv1alpha1.OrganizationLabel:  org,
		tenancyv1alpha1.HomeNamespaceLabel: "true",
		tenancyv1alpha1.ManagedByLabel:     tenancyv1alpha1.ManagedByValue,
	}
}

// ensureHomeLabels restores the home namespace's labels if someone removed or changed them.
func (r *OrganizationReconciler) ensureHomeLabels(ctx context.Context, org *tenancyv1alpha1.Organization, home *corev1.Namespace) error {
	want := homeLabels(org.Name)
	if patch.HasLabels(home, want) {
		return nil
	}
	base := home.DeepCopy()
	patch.MergeLabels(home, want)
	if err := r.Patch(ctx, home, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("restoring labels of home namespace %s: %w", home.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Restored home namespace labels", "namespace", klog.KObj(home))
	return nil
}
