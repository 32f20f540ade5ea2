package controlplane_test

import (
	"context"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orgoperator/org-operator/internal/controlplane"
)

// Restarting etcd and then the API server keeps the data, the port and the clients' credentials.
func TestRestartKeepsDataAndCredentials(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Restart reads the running components from /proc")
	}
	cp, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	user, err := cp.AddUser("someone", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(user, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"}, Data: map[string]string{"a": "1"}}
	if err := c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{"etcd", "kube-apiserver", "kube-apiserver"} {
		if err := cp.Restart(ctx, component); err != nil {
			t.Fatalf("restarting %s: %v", component, err)
		}
		got := &corev1.ConfigMap{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cm), got); err != nil {
			t.Fatalf("after restarting %s: %v", component, err)
		}
		if got.Data["a"] != "1" {
			t.Fatalf("after restarting %s: data %v", component, got.Data)
		}
	}
	if err := cp.Restart(ctx, "kube-controller-manager"); err == nil {
		t.Fatal("restarting kube-controller-manager: want an error, it is not envtest's")
	}
}
