package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/test/testenv"
)

// The plugin reads the reports the operator wrote on a real control plane, and prints their
// numbers: the JSON the reports', the table the same in hours with a bar per day.
func TestUsageAgainstTheOperator(t *testing.T) {
	env, err := testenv.Start(testenv.Options{Controllers: controllers.Options{CheckpointInterval: time.Second, SettleDelay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	c := env.Admin
	price := resource.MustParse("3.6") // per pod-hour: a milli-credit per second
	must(t, c.Create(ctx, &tenancyv1alpha1.OrganizationPlan{ObjectMeta: metav1.ObjectMeta{Name: "metered"},
		Spec: tenancyv1alpha1.OrganizationPlanSpec{DisplayName: "Metered", Free: true,
			Metering: &tenancyv1alpha1.PlanMetering{Prices: tenancyv1alpha1.MeteringPrices{PodHour: &price}}}}))
	start := metav1.NewTime(time.Now().Add(-time.Hour).Truncate(time.Second))
	must(t, c.Create(ctx, &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: tenancyv1alpha1.OrganizationSpec{DisplayName: "Acme", DeletionPolicy: tenancyv1alpha1.DeletionPolicyCascade,
			Subscription: &tenancyv1alpha1.Subscription{Plan: "metered", StartDate: &start}}}))
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "acme-web", Labels: map[string]string{tenancyv1alpha1.OrganizationLabel: "acme"}}}))
	waitFor(t, func() bool {
		ns := &corev1.Namespace{}
		return c.Get(ctx, client.ObjectKey{Name: "acme"}, ns) == nil
	})

	began := time.Now().Truncate(time.Second)
	for _, p := range []struct{ ns, name, cpu string }{{"acme", "a", "500m"}, {"acme-web", "b", "2"}} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.cpu), corev1.ResourceMemory: resource.MustParse("1Gi")}}}}}}
		must(t, c.Create(ctx, pod))
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &metav1.Time{Time: began}}
		must(t, c.Status().Update(ctx, pod))
	}
	time.Sleep(3 * time.Second)
	ended := time.Now().Truncate(time.Second)
	for _, ns := range []string{"acme", "acme-web"} {
		pods := &corev1.PodList{}
		must(t, c.List(ctx, pods, client.InNamespace(ns)))
		for i := range pods.Items {
			p := &pods.Items[i]
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: "registry.example/app:1", ImageID: "registry.example/app@sha256:0",
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{StartedAt: metav1.Time{Time: began}, FinishedAt: metav1.Time{Time: ended}}}}}
			must(t, c.Status().Update(ctx, p))
		}
	}
	lived := int64(ended.Sub(began) / time.Second)
	var report tenancyv1alpha1.OrganizationUsageReport
	waitFor(t, func() bool {
		list := &tenancyv1alpha1.OrganizationUsageReportList{}
		if c.List(ctx, list, client.InNamespace("acme")) != nil || len(list.Items) != 1 {
			return false
		}
		report = list.Items[0]
		return report.Status.CheckpointTime != nil && !report.Status.CheckpointTime.Time.Before(ended) && report.Status.Total.PodSeconds == 2*lived
	})

	kubeconfig := adminKubeconfig(t, env)
	var out bytes.Buffer
	must(t, run(ctx, []string{"usage", "acme", "--interval", "day", "-o", "json", "--kubeconfig", kubeconfig}, &out))
	var u Usage
	must(t, json.Unmarshal(out.Bytes(), &u))
	if len(u.Data) != len(report.Status.Days) {
		t.Fatalf("%d days printed, the report has %d: %s", len(u.Data), len(report.Status.Days), out.String())
	}
	var podSeconds int64
	for i, d := range u.Data {
		if d.Date != report.Status.Days[i].Date || d.PodSeconds != report.Status.Days[i].PodSeconds {
			t.Errorf("day %d printed as %+v, the report has %+v", i, d, report.Status.Days[i])
		}
		podSeconds += d.PodSeconds
	}
	if podSeconds != 2*lived {
		t.Errorf("the days sum to %d pod-seconds, the pods lived %d", podSeconds, 2*lived)
	}
	if len(u.DataProjects) != 2 || u.DataProjects[0].Namespace != "acme" || u.DataProjects[1].Namespace != "acme-web" ||
		u.DataProjects[1].CPUCoreSeconds != resource.NewQuantity(2*lived, resource.DecimalSI).String() {
		t.Errorf("namespaces: %+v", u.DataProjects)
	}
	wantCredits := resource.NewMilliQuantity(2*lived, resource.DecimalSI).String()
	if got := report.Status.Total.Credits.String(); got != wantCredits {
		t.Errorf("the report charges %s credits, want %s", got, wantCredits)
	}

	out.Reset()
	must(t, run(ctx, []string{"usage", "acme", "--kubeconfig", kubeconfig}, &out))
	table := out.String()
	t.Logf("table:\n%s", table)
	for _, want := range []string{"Organization acme", "PERIOD", start.UTC().Format(time.DateOnly), wantCredits, "acme-web", "█"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	if err := run(ctx, []string{"usage", "acme", "--interval", "week", "--kubeconfig", kubeconfig}, &out); err == nil {
		t.Error("an unknown interval was accepted")
	}
	if err := run(ctx, []string{"usage", "nobody", "--kubeconfig", kubeconfig}, &out); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("an unknown organization: %v", err)
	}
}

func adminKubeconfig(t *testing.T, env *testenv.Env) string {
	t.Helper()
	u, err := env.ControlPlane.Env.ControlPlane.AddUser(envtest.User{Name: "platform-admin", Groups: []string{"system:masters"}}, nil)
	must(t, err)
	b, err := u.KubeConfig()
	must(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, os.WriteFile(path, b, 0o600))
	return path
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
