package controllers_test

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/membership"
)

// writeCounter wraps a client and counts every write it makes, status writes included.
type writeCounter struct {
	client.Client
	writes atomic.Int64
}

func (w *writeCounter) Create(ctx context.Context, o client.Object, opts ...client.CreateOption) error {
	w.writes.Add(1)
	return w.Client.Create(ctx, o, opts...)
}

func (w *writeCounter) Update(ctx context.Context, o client.Object, opts ...client.UpdateOption) error {
	w.writes.Add(1)
	return w.Client.Update(ctx, o, opts...)
}

func (w *writeCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.PatchOption) error {
	w.writes.Add(1)
	return w.Client.Patch(ctx, o, p, opts...)
}

func (w *writeCounter) Delete(ctx context.Context, o client.Object, opts ...client.DeleteOption) error {
	w.writes.Add(1)
	return w.Client.Delete(ctx, o, opts...)
}

func (w *writeCounter) Status() client.SubResourceWriter {
	return &statusCounter{SubResourceWriter: w.Client.Status(), writes: &w.writes}
}

type statusCounter struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (s *statusCounter) Update(ctx context.Context, o client.Object, opts ...client.SubResourceUpdateOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Update(ctx, o, opts...)
}

func (s *statusCounter) Patch(ctx context.Context, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Patch(ctx, o, p, opts...)
}

var _ = Describe("An idle reconcile", func() {
	It("makes no write once everything is up to date", func(ctx SpecContext) {
		org := uniqueName("idle")
		Expect(k8s.Create(ctx, newOrganization(org, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		Expect(k8s.Create(ctx, labelledNamespace(org+"-x", org))).To(Succeed())
		expectOrgReady(ctx, org) // the operator has created the home namespace the member goes in
		Expect(k8s.Create(ctx, newMember(org, "ivy", "ivy@example.com", true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Expect(k8s.Create(ctx, pod(org, "p", "100m", "64Mi"))).To(Succeed())
		// A pod that ran and finished: the organization has a usage report, which stays as it is.
		done := &meteredPod{ns: org, name: "done", cpu: "100m", mem: "64Mi", start: time.Now().Truncate(time.Second)}
		done.create(ctx)
		time.Sleep(2 * time.Second)
		done.end = time.Now().Truncate(time.Second)
		done.setStatus(ctx)
		Expect(k8s.Create(ctx, newProject(org, "web",
			tenancyv1alpha1.ProjectMember{Name: "ivy", KubernetesRole: tenancyv1alpha1.KubernetesRoleAdmin}))).To(Succeed())
		expectMemberReady(ctx, org, "ivy")
		expectProjectReady(ctx, org, "web")
		Eventually(func(g Gomega) {
			o := getOrg(g, org)
			g.Expect(o).To(HaveField("Status.Usage.Pods", BeEquivalentTo(1)))
			g.Expect(o.Status.Namespaces).To(HaveLen(3))
			g.Expect(getMember(g, org, "ivy").Status.Projects).To(HaveLen(1))
		}).Should(Succeed())
		expectOrgReady(ctx, org)
		// Wait until the operator has nothing left to do: the organization, its reader binding and
		// the member keep their resourceVersions over a while.
		Eventually(func(g Gomega) {
			versions := func() []string {
				crb := &rbacv1.ClusterRoleBinding{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Name: membership.ReaderRoleName(org)}, crb)).To(Succeed())
				g.Expect(crb.Subjects).To(HaveLen(1))
				report := getReport(g, org)
				g.Expect(report.Status.Total.PodSeconds).To(Equal(int64(done.end.Sub(done.start) / time.Second)))
				return []string{getOrg(g, org).ResourceVersion, getMember(g, org, "ivy").ResourceVersion,
					getProject(g, org, "web").ResourceVersion, crb.ResourceVersion, report.ResourceVersion}
			}
			first := versions()
			time.Sleep(time.Second)
			g.Expect(versions()).To(Equal(first))
		}).Should(Succeed())
		// The manager's cache must have seen the last status writes before the check.
		Eventually(func(g Gomega) {
			cached := &tenancyv1alpha1.Organization{}
			g.Expect(mgrClient.Get(ctx, client.ObjectKey{Name: org}, cached)).To(Succeed())
			g.Expect(cached.Status).To(Equal(getOrg(g, org).Status))
			m := &tenancyv1alpha1.OrganizationMember{}
			g.Expect(mgrClient.Get(ctx, client.ObjectKey{Namespace: org, Name: "ivy"}, m)).To(Succeed())
			g.Expect(m.Status).To(Equal(getMember(g, org, "ivy").Status))
			p := &tenancyv1alpha1.OrganizationProject{}
			g.Expect(mgrClient.Get(ctx, client.ObjectKey{Namespace: org, Name: "web"}, p)).To(Succeed())
			g.Expect(p.Status).To(Equal(getProject(g, org, "web").Status))
			reports := &tenancyv1alpha1.OrganizationUsageReportList{}
			g.Expect(mgrClient.List(ctx, reports, client.InNamespace(org))).To(Succeed())
			g.Expect(reports.Items).To(HaveLen(1))
			g.Expect(reports.Items[0].Status).To(Equal(getReport(g, org).Status))
		}).Should(Succeed())

		counter := &writeCounter{Client: mgrClient}
		recorder := events.NewFakeRecorder(10)
		orgs := &controllers.OrganizationReconciler{Client: counter, Recorder: recorder, Clock: realClock{}, Pods: env.Pods, Meter: env.Meter,
			CheckpointInterval: meterInterval, SettleDelay: time.Second}
		members := &controllers.OrganizationMemberReconciler{Client: counter, Recorder: recorder}
		for range 3 {
			_, err := orgs.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: org}})
			Expect(err).NotTo(HaveOccurred())
			_, err = members.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: org, Name: "ivy"}})
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(counter.writes.Load()).To(BeZero())
		Expect(recorder.Events).To(BeEmpty())
	})
})
