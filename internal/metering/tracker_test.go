package metering_test

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// An in-place resize splits a running pod's lifetime at the write that resized it: the part
// before counts at the old amounts, the part after at the new, whether or not a checkpoint falls
// in between, and the pod's deletion keeps the split.
func TestTrackerSplitsResizedPods(t *testing.T) {
	period := metering.Period{Start: time.Unix(0, 0), End: time.Unix(100_000, 0)}
	resized := func(p *podcache.Pod, at, mcpu int64) *podcache.Pod {
		c := *p
		c.Requests.CPU, c.Limits.CPU, c.Written = mcpu, 2*mcpu, at
		return &c
	}
	// 1 core from 1000, 2 cores from 1100, half a core from 1200, deleted at 1300; a status
	// write at 1150 that changes nothing.
	p0 := pod("ns", 1, 1000, 0, 1000, 1<<20)
	p1 := resized(p0, 1100, 2000)
	p2 := *p1
	p2.Written = 1150
	p3 := resized(&p2, 1200, 500)
	p4 := *p3
	p4.End = 1300
	want := int64(1000*100 + 2000*100 + 500*100)

	for _, checkpoints := range [][]int64{{1300}, {1120, 1300}, {1050, 1180, 1250, 1300}} {
		inf := &controllertest.FakeInformer{}
		tr := metering.NewTracker(clocktesting.NewFakePassiveClock(time.Unix(1300, 0)), time.Hour)
		if err := tr.Register(inf); err != nil {
			t.Fatal(err)
		}
		steps := []func(){
			func() { inf.Add(p0) },
			func() { inf.Update(p0, p1) },
			func() { inf.Update(p1, &p2) },
			func() { inf.Update(&p2, p3) },
			func() { inf.Delete(&p4) },
		}
		at := []int64{1000, 1100, 1150, 1200, 1300}
		var st tenancyv1alpha1.OrganizationUsageReportStatus
		next := 0
		for i, step := range steps {
			step()
			for next < len(checkpoints) && checkpoints[next] <= at[i] {
				adv := metering.AdvanceStatus(&st, period, []string{"ns"}, tr.Pods, time.Unix(checkpoints[next], 0), nil)
				st = adv.Status
				tr.Forget("ns", checkpoints[next])
				next++
			}
		}
		if got := st.Total.Requests.CPU.MilliValue(); got != want {
			t.Errorf("checkpoints %v: %d millicore-seconds, want %d", checkpoints, got, want)
		}
		if got := st.Total.Limits.CPU.MilliValue(); got != 2*want {
			t.Errorf("checkpoints %v: limits %d millicore-seconds, want %d", checkpoints, got, 2*want)
		}
		if st.Total.PodSeconds != 300 {
			t.Errorf("checkpoints %v: %d pod-seconds, want 300", checkpoints, st.Total.PodSeconds)
		}
		if live, gone := tr.Pods("ns"); len(live)+len(gone) != 0 {
			t.Errorf("checkpoints %v: the tracker still holds %d live and %d deleted pods", checkpoints, len(live), len(gone))
		}
	}
}
