package controllers

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/conditions"
	"github.com/orgoperator/org-operator/internal/patch"
	"github.com/orgoperator/org-operator/internal/tenancy"
)

// OrganizationPlanReconciler counts the organizations on each plan.
type OrganizationPlanReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=tenancy.orgoperator.io,resources=organizationplans/status,verbs=patch

// Reconcile sets a plan's organizationCount and Ready.
func (r *OrganizationPlanReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	plan := &tenancyv1alpha1.OrganizationPlan{}
	if err := r.Get(ctx, req.NamespacedName, plan); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := plan.DeepCopy()
	orgs := &tenancyv1alpha1.OrganizationList{}
	if err := r.List(ctx, orgs, client.MatchingFields{organizationPlanIndex: plan.Name}); err != nil {
		retErr = fmt.Errorf("listing organizations on plan: %w", err)
	} else {
		plan.Status.OrganizationCount = int32(len(orgs.Items))
		plan.Status.ObservedGeneration = plan.Generation
	}
	conditions.Summarize(&plan.Status.Conditions, plan.Generation, retErr)
	if err := patch.StatusIfChanged(ctx, r.Client, before, plan, before.Status, plan.Status); err != nil {
		retErr = errors.Join(retErr, err)
	}
	return ctrl.Result{}, retErr
}

// SetupWithManager registers the controller; an organization joining or leaving a plan
// re-counts that plan.
func (r *OrganizationPlanReconciler) SetupWithManager(mgr ctrl.Manager, _ Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tenancyv1alpha1.OrganizationPlan{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&tenancyv1alpha1.Organization{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if plan := tenancy.PlanName(o.(*tenancyv1alpha1.Organization)); plan != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: plan}}}
			}
			return nil
		}), builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool {
				return tenancy.PlanName(e.ObjectOld.(*tenancyv1alpha1.Organization)) != tenancy.PlanName(e.ObjectNew.(*tenancyv1alpha1.Organization))
			},
		})).
		Named("organizationplan").
		Complete(r)
}
