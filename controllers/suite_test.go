package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/test/testenv"
)

// The controllers run without the admission webhooks here, so that these specs exercise the
// controllers' own lines of defence (finalizers, conditions) as if the webhooks were bypassed.
var (
	env       *testenv.Env
	k8s       client.Client // cluster admin, uncached: what the tests assert through
	mgrClient client.Client // the manager's cached client, as the operator's user
	// clock is the operator's clock; subscription specs move it next to a boundary.
	clock = &testenv.OffsetClock{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start(testenv.Options{Controllers: controllers.Options{MaxConcurrentReconciles: 2, Clock: clock, CheckpointInterval: meterInterval, SettleDelay: settleDelay}})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Admin
	mgrClient = env.Manager.GetClient()
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

const (
	// meterInterval is the usage reports' checkpoint interval here: long enough that a spec can
	// tell a checkpoint from a reconcile, short enough to wait for a few.
	meterInterval = 4 * time.Second
	// settleDelay is how far the operator's checkpoints trail its clock here.
	settleDelay = time.Second

	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
)

func init() {
	SetDefaultEventuallyTimeout(timeout)
	SetDefaultEventuallyPollingInterval(interval)
	SetDefaultConsistentlyDuration(2 * time.Second)
}
