package ledger

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/podcache"
	"github.com/orgoperator/org-operator/internal/resourcelist"
)

func list(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func podWith(requests, limits corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits},
	}}}}
}

func sameList(a, b corev1.ResourceList) bool {
	return equality.Semantic.DeepEqual(resourcelist.Canonical(a), resourcelist.Canonical(b))
}

func TestEnforced(t *testing.T) {
	hard := list("pods", "10", "requests.cpu", "4", "memory", "8Gi", "count/deployments.apps", "3", "requests.storage", "10Gi",
		"count/pods", "12", "gold.storageclass.storage.k8s.io/requests.storage", "1Ti", "count/secrets", "5", "services.loadbalancers", "1")
	want := list("pods", "10", "requests.cpu", "4", "memory", "8Gi", "count/deployments.apps", "3", "requests.storage", "10Gi",
		"count/pods", "12", "gold.storageclass.storage.k8s.io/requests.storage", "1Ti")
	if got := Enforced(hard); !sameList(got, want) {
		t.Errorf("Enforced = %v, want %v", got, want)
	}
	if got := Enforced(list("count/secrets", "2")); got != nil {
		t.Errorf("Enforced of nothing the ledger charges = %v, want nil", got)
	}
	if got, want := KindsOf(hard), []Kind{Deployments, Claims, Pods}; !slices.Equal(got, want) {
		t.Errorf("KindsOf = %v, want %v", got, want)
	}
}

func TestClaimUsage(t *testing.T) {
	gold := "gold"
	pvc := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &gold,
		Resources: corev1.VolumeResourceRequirements{Requests: list("storage", "10Gi")}}}
	want := list("persistentvolumeclaims", "1", "requests.storage", "10Gi",
		"gold.storageclass.storage.k8s.io/persistentvolumeclaims", "1", "gold.storageclass.storage.k8s.io/requests.storage", "10Gi")
	if got := ClaimUsage(pvc); !sameList(got, want) {
		t.Errorf("ClaimUsage = %v, want %v", got, want)
	}
	if v := ClaimVersion(pvc); v != 10<<30 {
		t.Errorf("ClaimVersion = %d, want the bytes requested", v)
	}
	grown := pvc.DeepCopy()
	grown.Spec.Resources.Requests = list("storage", "25Gi")
	if got, want := ClaimResizeUsage(pvc, grown), list("requests.storage", "15Gi", "gold.storageclass.storage.k8s.io/requests.storage", "15Gi"); !sameList(got, want) {
		t.Errorf("ClaimResizeUsage = %v, want %v", got, want)
	}
	// Allocated more than requested (a failed expansion being recovered): the allocation counts.
	grown.Status.AllocatedResources = list("storage", "30Gi")
	if got := ClaimUsage(grown)[corev1.ResourceRequestsStorage]; got.Cmp(resource.MustParse("30Gi")) != 0 {
		t.Errorf("requests.storage with 30Gi allocated = %v, want 30Gi", got.String())
	}
	// Without a class, nothing per class.
	bare := &corev1.PersistentVolumeClaim{}
	if got := ClaimUsage(bare); !sameList(got, list("persistentvolumeclaims", "1")) {
		t.Errorf("ClaimUsage of a claim without class or size = %v", got)
	}
}

func TestLimits(t *testing.T) {
	hard := list("count/deployments.apps", "3", "cpu", "2")
	for _, tc := range []struct {
		usage corev1.ResourceList
		want  bool
	}{
		{CountUsage(Deployments), true},
		{CountUsage(Services), false},
		{list("pods", "1"), false},
		{list("pods", "1", "requests.cpu", "100m"), true},
		{list("requests.cpu", "0"), false},
	} {
		if got := Limits(hard, tc.usage); got != tc.want {
			t.Errorf("Limits(%v) = %v, want %v", tc.usage, got, tc.want)
		}
	}
}

func TestPodUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want corev1.ResourceList
	}{
		{"no resources", podWith(nil, nil), list("pods", "1")},
		{"requests and limits", podWith(list("cpu", "250m", "memory", "64Mi"), list("cpu", "1", "ephemeral-storage", "1Gi")),
			list("pods", "1", "requests.cpu", "250m", "requests.memory", "64Mi", "limits.cpu", "1", "limits.ephemeral-storage", "1Gi")},
		{"zero requests are left out", podWith(list("cpu", "0"), nil), list("pods", "1")},
		{"init container larger than the app", &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Resources: corev1.ResourceRequirements{Requests: list("cpu", "2")}}},
			Containers:     []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: list("cpu", "500m")}}},
		}}, list("pods", "1", "requests.cpu", "2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodUsage(tc.pod); !sameList(got, tc.want) {
				t.Errorf("PodUsage = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	running := podWith(list("cpu", "1"), nil)
	running.UID = "a"
	done := podWith(list("cpu", "2"), nil)
	done.UID, done.Status.Phase = "b", corev1.PodSucceeded
	used, seen := Observe([]Holding{compactHolding(podcache.FromPod(running)), compactHolding(podcache.FromPod(done))})
	if !sameList(used, list("pods", "1", "requests.cpu", "1")) {
		t.Errorf("used = %v: a Succeeded pod must not count", used)
	}
	if _, ok := seen["a"]; !ok {
		t.Errorf("seen = %v: every pod settles its reservation, counted or not", seen)
	}
	if _, ok := seen["b"]; !ok {
		t.Errorf("seen = %v: every pod settles its reservation, counted or not", seen)
	}
}

func reservation(uid string, usage corev1.ResourceList, at time.Time) tenancyv1alpha1.QuotaReservation {
	return tenancyv1alpha1.QuotaReservation{UID: types.UID(uid), Namespace: "ns", Name: uid, Time: metav1.NewTime(at), Usage: usage}
}

func TestReserve(t *testing.T) {
	now := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	full := &tenancyv1alpha1.QuotaLedger{Observed: list("pods", "2"), Reservations: []tenancyv1alpha1.QuotaReservation{reservation("r", list("pods", "1"), now)}}
	for _, tc := range []struct {
		name    string
		ledger  *tenancyv1alpha1.QuotaLedger
		hard    corev1.ResourceList
		charge  tenancyv1alpha1.QuotaReservation
		wantErr string
		wantN   int
	}{
		{"fits in an empty ledger", nil, list("pods", "1"), reservation("x", list("pods", "1"), now), "", 1},
		{"reservations count next to observed usage", full, list("pods", "3"), reservation("x", list("pods", "1"), now),
			"exceeded organization quota: acme, requested: pods=1, used: pods=3, limited: pods=3", 1},
		{"count/pods limits pods too", full, list("count/pods", "4"), reservation("x", list("pods", "1"), now), "", 2},
		{"a pod already reserved is admitted again without a second charge", full, list("pods", "3"), reservation("r", list("pods", "1"), now), "", 1},
		{"bare cpu means requests", &tenancyv1alpha1.QuotaLedger{Observed: list("requests.cpu", "1500m")}, list("cpu", "2"),
			reservation("x", list("pods", "1", "requests.cpu", "600m"), now),
			"exceeded organization quota: acme, requested: cpu=600m, used: cpu=1500m, limited: cpu=2", 0},
		{"every exceeded resource is named", &tenancyv1alpha1.QuotaLedger{Observed: list("pods", "1", "limits.memory", "1Gi")}, list("pods", "1", "limits.memory", "1Gi"),
			reservation("x", list("pods", "1", "limits.memory", "1Mi"), now),
			"exceeded organization quota: acme, requested: limits.memory=1Mi,pods=1, used: limits.memory=1Gi,pods=1, limited: limits.memory=1Gi,pods=1", 0},
		{"a resource the pod does not use is not checked", &tenancyv1alpha1.QuotaLedger{Observed: list("requests.memory", "2Gi")}, list("memory", "1Gi", "pods", "5"),
			reservation("x", list("pods", "1"), now), "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Reserve("acme", tc.ledger, Used(tc.ledger), tc.hard, tc.charge)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Reserve: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("Reserve error = %v, want %q", err, tc.wantErr)
			}
			if len(got.Reservations) != tc.wantN {
				t.Errorf("%d reservations, want %d", len(got.Reservations), tc.wantN)
			}
		})
	}

	busy := &tenancyv1alpha1.QuotaLedger{}
	for i := range MaxReservations {
		busy.Reservations = append(busy.Reservations, reservation(fmt.Sprint("r", i), list("pods", "1"), now))
	}
	if _, _, err := Reserve("acme", busy, Used(busy), list("pods", "5000"), reservation("x", list("pods", "1"), now)); !errors.Is(err, ErrBusy) {
		t.Errorf("Reserve on a full ledger = %v, want ErrBusy", err)
	}

	// Decided in turn: what is used grows with each admitted charge.
	l, used, err := Reserve("acme", nil, list("pods", "1"), list("pods", "2"), reservation("a", list("pods", "1"), now))
	if err != nil || !sameList(used, list("pods", "2")) {
		t.Fatalf("Reserve = %v, %v; want pods=2 used", used, err)
	}
	if _, _, err := Reserve("acme", l, used, list("pods", "2"), reservation("b", list("pods", "1"), now)); err == nil {
		t.Error("a second charge past the limit was admitted")
	}

	// A resize tried again with another usage replaces its charge, checked as if both counted.
	resize := reservation("u/2", list("requests.cpu", "500m"), now)
	l = &tenancyv1alpha1.QuotaLedger{Observed: list("requests.cpu", "1"), Reservations: []tenancyv1alpha1.QuotaReservation{resize}}
	bigger := reservation("u/2", list("requests.cpu", "700m"), now)
	if _, _, err := Reserve("acme", l, Used(l), list("cpu", "2"), bigger); err == nil {
		t.Error("the replacement was not checked against the charge it replaces")
	}
	got, _, err := Reserve("acme", l, Used(l), list("cpu", "3"), bigger)
	if err != nil || len(got.Reservations) != 1 || !sameList(got.Reservations[0].Usage, bigger.Usage) {
		t.Errorf("Reserve of a changed resize = %v, %v; want one reservation with the new usage", got, err)
	}
	if l.Reservations[0].Usage.Name("requests.cpu", resource.DecimalSI).MilliValue() != 500 {
		t.Error("Reserve changed its input")
	}
}

func TestSettles(t *testing.T) {
	seen := Seen{"u": 3}
	for _, tc := range []struct {
		uid  string
		want bool
	}{
		{"u", true},    // the creation of a pod seen
		{"u/3", true},  // a resize the pod seen has
		{"u/2", true},  // an earlier resize
		{"u/4", false}, // a resize the pod seen does not have yet
		{"v", false},   // another pod
		{"v/1", false}, // a resize of another pod
		{"u/x", false}, // not a resize key: taken whole as a UID
	} {
		if got := seen.Settles(reservation(tc.uid, nil, time.Time{})); got != tc.want {
			t.Errorf("Settles(%s) = %v, want %v", tc.uid, got, tc.want)
		}
	}
	if uid, version := Reserved(reservation(string(UpdateKey("6f1c", 12)), nil, time.Time{})); uid != "6f1c" || version != 12 {
		t.Errorf("Reserved(UpdateKey(6f1c, 12)) = %s, %d", uid, version)
	}
}

func TestResizeUsage(t *testing.T) {
	old := podWith(list("cpu", "400m", "memory", "1Gi"), list("memory", "2Gi"))
	for _, tc := range []struct {
		name string
		new  *corev1.Pod
		want corev1.ResourceList
	}{
		{"increase", podWith(list("cpu", "1500m", "memory", "1Gi"), list("memory", "2Gi")), list("requests.cpu", "1100m")},
		{"decrease adds nothing", podWith(list("cpu", "100m", "memory", "512Mi"), list("memory", "1Gi")), list()},
		{"one up, one down", podWith(list("cpu", "200m", "memory", "1Gi"), list("memory", "3Gi")), list("limits.memory", "1Gi")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResizeUsage(old, tc.new); !sameList(got, tc.want) {
				t.Errorf("ResizeUsage = %v, want %v", got, tc.want)
			}
		})
	}

	// While the kubelet still holds the old allocation, a decrease frees nothing (as in
	// ResourceQuota), and growing back to it adds nothing.
	running := podWith(list("cpu", "400m"), nil)
	running.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Resources: &corev1.ResourceRequirements{Requests: list("cpu", "400m")}}}
	shrunk := running.DeepCopy()
	shrunk.Spec.Containers[0].Resources.Requests = list("cpu", "100m")
	if got := PodUsage(shrunk); got.Name("requests.cpu", resource.DecimalSI).MilliValue() != 400 {
		t.Errorf("PodUsage of a pod shrinking = %v, want the allocated 400m", got)
	}
	if got := ResizeUsage(shrunk, running); len(got) != 0 {
		t.Errorf("ResizeUsage back to the allocation = %v, want nothing", got)
	}
}

func TestRecount(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	stored := podWith(list("cpu", "1"), nil)
	stored.UID, stored.Generation = "stored", 1
	l := &tenancyv1alpha1.QuotaLedger{
		Observed: list("pods", "5", "requests.cpu", "5"), // pods deleted since: not counted
		Reservations: []tenancyv1alpha1.QuotaReservation{
			reservation("stored", list("pods", "1", "requests.cpu", "1"), now.Add(-time.Second)),             // in the list: once
			reservation("on-its-way", list("pods", "1", "requests.cpu", "250m"), now.Add(-time.Second)),      // young: counted
			reservation("refused", list("pods", "1", "requests.cpu", "2"), now.Add(-ReservationTimeout)),     // old and absent: not counted
			reservation(string(UpdateKey("stored", 2)), list("requests.cpu", "500m"), now.Add(-time.Second)), // resize not stored yet
		},
	}
	got := Recount(l, []Holding{compactHolding(podcache.FromPod(stored))}, now)
	if want := list("pods", "2", "requests.cpu", "1750m"); !sameList(got, want) {
		t.Errorf("Recount = %v, want %v", got, want)
	}
	if !resourcelist.Below(got, Used(l)) || resourcelist.Below(Used(l), got) {
		t.Errorf("Below(%v, %v) is wrong", got, Used(l))
	}
}

func TestRebase(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	young := reservation("young", list("pods", "1"), now.Add(-ReservationTimeout/2))
	seen := reservation("seen", list("pods", "1"), now.Add(-10*time.Second))
	lost := reservation("lost", list("pods", "1"), now.Add(-ReservationTimeout))
	slow := reservation("slow", list("pods", "1"), now.Add(-time.Minute))
	l := &tenancyv1alpha1.QuotaLedger{Observed: list("pods", "7"), Reservations: []tenancyv1alpha1.QuotaReservation{young, seen, lost, slow}}

	var asked []types.UID
	got, next, err := Rebase(l, list("pods", "3"), Seen{"seen": 1}, now, func(r tenancyv1alpha1.QuotaReservation) (bool, error) {
		asked = append(asked, r.UID)
		return r.UID == "slow", nil // stored, but not in the cache yet
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sameList(got.Observed, list("pods", "3")) {
		t.Errorf("observed = %v, want the new observation", got.Observed)
	}
	var kept []types.UID
	for _, r := range got.Reservations {
		kept = append(kept, r.UID)
	}
	if !equality.Semantic.DeepEqual(kept, []types.UID{"young", "slow"}) {
		t.Errorf("kept %v, want young (waiting) and slow (stored, not yet seen)", kept)
	}
	if !equality.Semantic.DeepEqual(asked, []types.UID{"lost", "slow"}) {
		t.Errorf("asked about %v, want only the reservations past the timeout", asked)
	}
	if want := young.Time.Add(ReservationTimeout); !next.Equal(want) {
		t.Errorf("next = %v, want %v (when the young reservation falls due)", next, want)
	}
	if l.Reservations[0].UID != "young" || len(l.Reservations) != 4 {
		t.Error("Rebase changed its input")
	}

	if _, _, err := Rebase(l, nil, nil, now, func(tenancyv1alpha1.QuotaReservation) (bool, error) {
		return false, errors.New("unreachable")
	}); err == nil {
		t.Error("Rebase must return the error of a failed existence check: dropping the charge could overshoot")
	}
	if got, next, _ := Rebase(nil, list("pods", "1"), nil, now, nil); len(got.Reservations) != 0 || !next.IsZero() {
		t.Errorf("Rebase(nil) = %v, %v", got, next)
	}
}

func BenchmarkReserve(b *testing.B) {
	now := time.Now()
	l := &tenancyv1alpha1.QuotaLedger{Observed: list("pods", "100", "requests.cpu", "50")}
	for i := range 200 {
		l.Reservations = append(l.Reservations, reservation(fmt.Sprint("r", i), list("pods", "1", "requests.cpu", "100m"), now))
	}
	hard := list("pods", "1000", "cpu", "200")
	r := reservation("new", list("pods", "1", "requests.cpu", "100m"), now)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Reserve("acme", l, Used(l), hard, r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCovering(t *testing.T) {
	got := Covering(list("pods", "3"), list("count/pods", "10", "cpu", "4", "limits.memory", "1Gi", "count/secrets", "5"))
	want := list("pods", "3", "requests.cpu", "0", "limits.memory", "0")
	if !sameList(got, want) {
		t.Errorf("Covering = %v, want %v", got, want)
	}
}
