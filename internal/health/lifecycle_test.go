package health_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/health"
)

// hold keeps deleted objects around, with a deletionTimestamp, as the operator's finalizers do.
const hold = "health.test/hold"

// stage is one step of an object's life: what is done to the live object, and what kstatus and
// Argo CD must say about it once read back from the API server.
type stage struct {
	name string
	// do changes the object in the API server (spec, status through the subresource, deletion).
	do func(u *unstructured.Unstructured)
	// kstatus is the status.Compute result; argo and argoMessage what Argo CD shows.
	kstatus     status.Status
	argo        string
	argoMessage string
}

// condition returns a metav1.Condition as unstructured content, dated to generation.
func condition(typ string, st metav1.ConditionStatus, reason, message string, generation int64) map[string]any {
	return map[string]any{
		"type": typ, "status": string(st), "reason": reason, "message": message,
		"observedGeneration": generation, "lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}
}

// setStatus writes status through the status subresource: observedGeneration (omitted when < 0)
// and the conditions, each built for the object's current generation by cond.
func setStatus(observedGeneration int64, conds ...func(generation int64) map[string]any) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		GinkgoHelper()
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		st := map[string]any{}
		if observedGeneration == current {
			st["observedGeneration"] = u.GetGeneration()
		} else if observedGeneration >= 0 {
			st["observedGeneration"] = observedGeneration
		}
		list := make([]any, 0, len(conds))
		for _, c := range conds {
			list = append(list, c(u.GetGeneration()))
		}
		st["conditions"] = list
		u.Object["status"] = st
		Expect(k8s.Status().Update(ctx, u)).To(Succeed())
	}
}

// current as an observedGeneration means the object's generation at the time of the write.
const current = -2

// ready returns a Ready condition builder.
func ready(st metav1.ConditionStatus, reason, message string) func(int64) map[string]any {
	return cond(tenancyv1alpha1.ReadyCondition, st, reason, message)
}

func cond(typ string, st metav1.ConditionStatus, reason, message string) func(int64) map[string]any {
	return func(generation int64) map[string]any { return condition(typ, st, reason, message, generation) }
}

// stalled returns the conditions the controllers set for a failure no retry can fix: Ready False
// and Stalled True, with the same reason and message (conditions.Summarize in internal/conditions).
func stalled(reason, message string) []func(int64) map[string]any {
	return []func(int64) map[string]any{
		ready(metav1.ConditionFalse, reason, message),
		cond(tenancyv1alpha1.StalledCondition, metav1.ConditionTrue, reason, message),
	}
}

// changeSpec sets a spec field, which bumps metadata.generation.
func changeSpec(field, value string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		GinkgoHelper()
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		Expect(unstructured.SetNestedField(u.Object, value, "spec", field)).To(Succeed())
		Expect(k8s.Update(ctx, u)).To(Succeed())
	}
}

func deleteObject(u *unstructured.Unstructured) {
	GinkgoHelper()
	Expect(k8s.Delete(ctx, u)).To(Succeed())
}

// runLifecycle creates obj and walks it through the stages, checking kstatus and Argo CD on the
// object as read back after each, and reports a table of what they said.
func runLifecycle(obj *unstructured.Unstructured, stages []stage) {
	GinkgoHelper()
	script := scripts[obj.GetKind()]
	Expect(script).NotTo(BeEmpty())
	obj.SetFinalizers([]string{hold})
	Expect(k8s.Create(ctx, obj)).To(Succeed())
	DeferCleanup(func() {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(obj.GroupVersionKind())
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), u); err == nil {
			u.SetFinalizers(nil)
			_ = k8s.Update(ctx, u)
		}
	})

	var report strings.Builder
	fmt.Fprintf(&report, "%-66s | gen | obsGen | %-11s | %s\n", obj.GetKind()+" stage", "kstatus", "Argo CD")
	for _, s := range stages {
		By(s.name)
		if s.do != nil {
			s.do(obj)
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(obj.GroupVersionKind())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), live)).To(Succeed())

		ks, err := status.Compute(live)
		Expect(err).NotTo(HaveOccurred())
		argo, err := health.ArgoCD(script, live)
		Expect(err).NotTo(HaveOccurred())
		observed, _, _ := unstructured.NestedInt64(live.Object, "status", "observedGeneration")
		fmt.Fprintf(&report, "%-66s | %3d | %6d | %-11s | %s: %s\n", s.name, live.GetGeneration(), observed, ks.Status, argo.Status, argo.Message)

		Expect(ks.Status).To(Equal(s.kstatus), "kstatus at stage %q: %s", s.name, ks.Message)
		Expect(argo.Status).To(Equal(s.argo), "Argo CD at stage %q: %s", s.name, argo.Message)
		Expect(argo.Message).To(ContainSubstring(s.argoMessage), "Argo CD message at stage %q", s.name)
	}
	AddReportEntry(obj.GetKind()+" lifecycle", report.String())
}

func newUnstructured(kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(tenancyv1alpha1.GroupVersion.WithKind(kind))
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

var _ = Describe("kstatus and Argo CD health through an object's life", func() {
	It("Organization", func() {
		org := newUnstructured("Organization", "", "health-org", map[string]any{"displayName": "Health"})
		runLifecycle(org, []stage{
			{name: "created, no status yet", kstatus: status.CurrentStatus,
				argo: health.Progressing, argoMessage: "Waiting for the operator"},
			{name: "first reconcile: Ready Unknown (Progressing)",
				do:      setStatus(current, ready(metav1.ConditionUnknown, tenancyv1alpha1.ProgressingReason, "NamespacesReady not yet determined")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "not yet determined"},
			{name: "ready: Ready True, observedGeneration current",
				do:      setStatus(current, ready(metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, "Reconciled")),
				kstatus: status.CurrentStatus, argo: health.Healthy, argoMessage: "Reconciled"},
			{name: "spec changed, generation not yet observed", do: changeSpec("description", "changed"),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "observe generation 2"},
			{name: "ready again for generation 2",
				do:      setStatus(current, ready(metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, "Reconciled")),
				kstatus: status.CurrentStatus, argo: health.Healthy},
			{name: "waiting for members: Ready False MembersNotReady",
				do:      setStatus(current, ready(metav1.ConditionFalse, tenancyv1alpha1.MembersNotReadyReason, "1 of 2 members are not Ready")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "1 of 2 members"},
			{name: "working: Ready False Progressing (old home namespace terminating)",
				do:      setStatus(current, ready(metav1.ConditionFalse, tenancyv1alpha1.ProgressingReason, "Waiting for the old home namespace health-org to finish terminating")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "Progressing: Waiting for the old home namespace"},
			{name: "failed: Ready False NameCollision, Stalled True",
				do:      setStatus(current, stalled(tenancyv1alpha1.NameCollisionReason, "Namespace health-org belongs to someone else")...),
				kstatus: status.FailedStatus, argo: health.Degraded, argoMessage: "NameCollision: Namespace health-org"},
			{name: "spec changed while stalled: the Stalled of generation 2 no longer counts",
				do:      changeSpec("description", "changed again"),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "observe generation 3"},
			{name: "reconcile error on generation 3, observedGeneration left at 2, no Stalled",
				do:      setStatus(2, ready(metav1.ConditionFalse, tenancyv1alpha1.ReconcileErrorReason, "listing members: timeout")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "ReconcileError: listing members"},
			{name: "deleting, blocked: Ready False DeletionBlocked", do: func(u *unstructured.Unstructured) {
				deleteObject(u)
				setStatus(3, ready(metav1.ConditionFalse, tenancyv1alpha1.DeletionBlockedReason, "Deletion blocked by deletionPolicy Block"))(u)
			}, kstatus: status.TerminatingStatus, argo: health.Progressing, argoMessage: "Pending deletion"},
		})
	})

	It("OrganizationMember", func() {
		Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "health-org-home"}})).To(Succeed())
		member := newUnstructured("OrganizationMember", "health-org-home", "alice", map[string]any{"email": "alice@example.com"})
		runLifecycle(member, []stage{
			{name: "created, no status yet", kstatus: status.CurrentStatus,
				argo: health.Progressing, argoMessage: "reconcile the member"},
			{name: "failed: Ready False OrganizationNotFound, Stalled True",
				do:      setStatus(current, stalled(tenancyv1alpha1.OrganizationNotFoundReason, "Namespace health-org-home is not the home of an organization")...),
				kstatus: status.FailedStatus, argo: health.Degraded, argoMessage: "OrganizationNotFound: Namespace"},
			{name: "ready: Ready True, observedGeneration current",
				do:      setStatus(current, ready(metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, "Bound to view in 2 namespaces")),
				kstatus: status.CurrentStatus, argo: health.Healthy, argoMessage: "Bound to view"},
			{name: "role changed, generation not yet observed", do: changeSpec("kubernetesRole", "Edit"),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "observe generation 2"},
			{name: "reconciling: Ready Unknown",
				do:      setStatus(current, ready(metav1.ConditionUnknown, tenancyv1alpha1.ProgressingReason, "RoleBindingsReady not yet determined")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "not yet determined"},
			{name: "deleting", do: deleteObject,
				kstatus: status.TerminatingStatus, argo: health.Progressing, argoMessage: "Pending deletion"},
		})
	})

	It("OrganizationPlan, when config/crd/bases has its CRD", func() {
		if _, err := os.Stat(filepath.Join("..", "..", "config", "crd", "bases", "tenancy.orgoperator.io_organizationplans.yaml")); err != nil {
			Skip("no OrganizationPlan CRD in config/crd/bases yet")
		}
		plan := newUnstructured("OrganizationPlan", "", "health-plan", map[string]any{"displayName": "Health"})
		runLifecycle(plan, []stage{
			{name: "created, no status yet", kstatus: status.CurrentStatus,
				argo: health.Progressing, argoMessage: "reconcile the plan"},
			{name: "ready: Ready True, observedGeneration current",
				do:      setStatus(current, ready(metav1.ConditionTrue, tenancyv1alpha1.ReconciledReason, "Used by 0 organizations")),
				kstatus: status.CurrentStatus, argo: health.Healthy, argoMessage: "Used by 0"},
			{name: "spec changed, generation not yet observed", do: changeSpec("description", "changed"),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "observe generation 2"},
			{name: "reconcile error: Ready False ReconcileError, no Stalled (retried)",
				do:      setStatus(current, ready(metav1.ConditionFalse, tenancyv1alpha1.ReconcileErrorReason, "listing organizations: timeout")),
				kstatus: status.InProgressStatus, argo: health.Progressing, argoMessage: "ReconcileError: listing"},
			{name: "deleting", do: deleteObject,
				kstatus: status.TerminatingStatus, argo: health.Progressing, argoMessage: "Pending deletion"},
		})
	})

	// The same conventions on objects built here, whatever the CRD's state.
	It("OrganizationPlan objects built in memory", func() {
		plan := func(generation, observed int64, conds ...map[string]any) *unstructured.Unstructured {
			u := newUnstructured("OrganizationPlan", "", "business", map[string]any{})
			u.SetGeneration(generation)
			if observed > 0 || len(conds) > 0 {
				list := make([]any, 0, len(conds))
				for _, c := range conds {
					list = append(list, c)
				}
				u.Object["status"] = map[string]any{"observedGeneration": observed, "conditions": list}
			}
			return u
		}
		for _, c := range []struct {
			obj     *unstructured.Unstructured
			want    string
			message string
		}{
			{plan(1, 0), health.Progressing, "reconcile the plan"},
			{plan(2, 1, condition("Ready", metav1.ConditionTrue, "Reconciled", "Reconciled", 1)), health.Progressing, "observe generation 2"},
			{plan(1, 1, condition("Ready", metav1.ConditionUnknown, "Progressing", "Counting organizations", 1)), health.Progressing, "Counting"},
			{plan(1, 1, condition("Ready", metav1.ConditionTrue, "Reconciled", "Used by 3 organizations", 1)), health.Healthy, "Used by 3"},
			{plan(1, 1, condition("Ready", metav1.ConditionFalse, "InvalidQuota", "pods must be positive", 1),
				condition("Stalled", metav1.ConditionTrue, "InvalidQuota", "pods must be positive", 1)), health.Degraded, "InvalidQuota: pods"},
			{plan(1, 1, condition("Ready", metav1.ConditionFalse, "InvalidQuota", "pods must be positive", 1),
				condition("Stalled", metav1.ConditionTrue, "", "", 1)), health.Degraded, "InvalidQuota: pods"},
			{plan(1, 1, condition("Ready", metav1.ConditionFalse, "ReconcileError", "listing organizations: timeout", 1)), health.Progressing, "ReconcileError: listing"},
		} {
			got, err := health.ArgoCD(scripts["OrganizationPlan"], c.obj)
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Status).To(Equal(c.want), "%v", c.obj.Object["status"])
			Expect(got.Message).To(ContainSubstring(c.message))
		}
	})

	// Generation 2 failed to reconcile: Ready is dated 2, status.observedGeneration and a Stalled
	// left over from generation 1 are not. Only a Stalled of generation 2 makes the object Degraded.
	It("a Stalled condition of an old generation does not make the object Degraded", func() {
		for _, c := range health.Checks {
			obj := func(stalledGeneration int64) *unstructured.Unstructured {
				u := newUnstructured(c.Kind, "", "old-stalled", map[string]any{})
				u.SetGeneration(2)
				u.Object["status"] = map[string]any{"observedGeneration": int64(1), "conditions": []any{
					condition("Ready", metav1.ConditionFalse, "ReconcileError", "listing members: timeout", 2),
					condition("Stalled", metav1.ConditionTrue, "NameCollision", "Namespace old-stalled belongs to someone else", stalledGeneration),
				}}
				return u
			}

			old := obj(1)
			got, err := health.ArgoCD(scripts[c.Kind], old)
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(health.Status{Status: health.Progressing, Message: "ReconcileError: listing members: timeout"}), c.Kind)
			ks, err := status.Compute(old)
			Expect(err).NotTo(HaveOccurred())
			Expect(ks.Status).To(Equal(status.InProgressStatus), c.Kind)

			got, err = health.ArgoCD(scripts[c.Kind], obj(2))
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(Equal(health.Status{Status: health.Degraded, Message: "NameCollision: Namespace old-stalled belongs to someone else"}), c.Kind)
		}
	})
})
