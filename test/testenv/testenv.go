// Package testenv runs the operator for tests: a real control plane (etcd, kube-apiserver and
// kube-controller-manager built from source), the CRDs, the webhook configurations, the RBAC and
// admission policies of config/rbac, and a manager that runs as the operator's ServiceAccount, so
// that tests exercise the permissions and confinement a real install has.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/controlplane"
	"github.com/orgoperator/org-operator/internal/metering"
	"github.com/orgoperator/org-operator/internal/podcache"
)

// OperatorUser is the user the manager runs as: the operator's ServiceAccount.
const OperatorUser = controlplane.OperatorUser

// Options choose what runs.
type Options struct {
	// Webhooks serves the admission webhooks and installs their configurations.
	Webhooks bool
	// Controllers options; the controllers always run.
	Controllers controllers.Options
}

// Env is a running control plane with the operator.
type Env struct {
	ControlPlane *controlplane.ControlPlane
	// Admin is an uncached cluster-admin client: what tests assert through.
	Admin  client.Client
	Scheme *runtime.Scheme
	// Manager runs the operator; its client reads from the operator's cache.
	Manager manager.Manager
	// Pods is the operator's compact pod cache.
	Pods *podcache.Cache
	// Meter is the operator's metering tracker.
	Meter *metering.Tracker

	root   string
	opts   Options
	cancel context.CancelFunc
	done   chan error
}

// Start starts the control plane and the operator. Call Stop when done.
func Start(opts Options) (*Env, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	cpOpts := controlplane.Options{
		CRDDirectoryPaths: []string{filepath.Join(root, "config", "crd", "bases")},
		ControllerManager: true,
	}
	if opts.Webhooks {
		cpOpts.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
		}
	}
	cp, err := controlplane.Start(cpOpts)
	if err != nil {
		return nil, err
	}
	env := &Env{ControlPlane: cp, Scheme: controllers.NewScheme(), root: root, opts: opts}
	if err := env.startOperator(root, opts); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return env, nil
}

func (e *Env) startOperator(root string, opts Options) error {
	var err error
	e.Admin, err = client.New(e.ControlPlane.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		return err
	}
	// Exactly the RBAC and admission policies an install has (config/rbac), the operator confined
	// by them as its ServiceAccount is.
	if err := controlplane.InstallRBAC(context.Background(), e.Admin, root); err != nil {
		return err
	}
	cfg, err := e.ControlPlane.OperatorConfig()
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.UserAgent = "org-operator"

	mgrOpts := ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// RestartOperator starts the same controllers again in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if opts.Webhooks {
		w := e.ControlPlane.Env.WebhookInstallOptions
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir})
	}
	e.Manager, err = ctrl.NewManager(cfg, controllers.ManagerOptions(mgrOpts))
	if err != nil {
		return err
	}
	op, err := controllers.SetupOperator(e.Manager, controllers.OperatorOptions{Controllers: opts.Controllers, Webhooks: opts.Webhooks})
	if err != nil {
		return err
	}
	e.Pods = op.Pods
	e.Meter = op.Meter
	if opts.Webhooks {
		if err := op.SetupWebhooks(); err != nil {
			return err
		}
	}
	var mgrCtx context.Context
	mgrCtx, e.cancel = context.WithCancel(context.Background())
	e.done = make(chan error, 1)
	go func() { e.done <- e.Manager.Start(mgrCtx) }()
	if !e.Manager.GetCache().WaitForCacheSync(mgrCtx) || !toolscache.WaitForCacheSync(mgrCtx.Done(), e.Pods.Informer().HasSynced) {
		return errors.New("the operator's cache did not sync")
	}
	if opts.Webhooks {
		if err := waitForWebhookServer(e.Manager.GetWebhookServer(), 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func waitForWebhookServer(s webhook.Server, timeout time.Duration) error {
	check := s.StartedChecker()
	deadline := time.Now().Add(timeout)
	for {
		err := check(nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server did not start: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ClientAs returns an uncached client that impersonates a user, as a tenant's kubectl would.
func (e *Env) ClientAs(user string, groups ...string) (client.Client, error) {
	cfg := rest.CopyConfig(e.ControlPlane.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append([]string{"system:authenticated"}, groups...)}
	return client.New(cfg, client.Options{Scheme: e.Scheme})
}

// RestartOperator stops the operator, forgetting everything it held in memory, and starts a new
// one on the same control plane, as a restarted pod would.
func (e *Env) RestartOperator() error {
	if err := e.StopOperator(); err != nil {
		return err
	}
	return e.StartOperator()
}

// StopOperator stops the operator and leaves the control plane running, as when the operator's
// pod is gone.
func (e *Env) StopOperator() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	if err := <-e.done; err != nil {
		return fmt.Errorf("stopping the operator: %w", err)
	}
	return nil
}

// StartOperator starts a new operator after StopOperator.
func (e *Env) StartOperator() error { return e.startOperator(e.root, e.opts) }

// Stop stops the operator and the control plane.
func (e *Env) Stop() error {
	var errs []error
	if e.cancel != nil {
		e.cancel()
		errs = append(errs, <-e.done)
	}
	errs = append(errs, e.ControlPlane.Stop())
	return errors.Join(errs...)
}

// OffsetClock is the real time moved by an offset that tests change, so that a controller's
// RequeueAfter, which waits in real time, still lands on the boundary the test moved next to.
type OffsetClock struct {
	offset atomic.Int64
	// frozen, when not zero, is the moment Now returns, in Unix nanoseconds.
	frozen atomic.Int64
}

// Now is the real time plus the offset, or the moment the clock is frozen at.
func (c *OffsetClock) Now() time.Time {
	if f := c.frozen.Load(); f != 0 {
		return time.Unix(0, f)
	}
	return time.Now().Add(time.Duration(c.offset.Load()))
}

// Since is the time elapsed since t on this clock.
func (c *OffsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Set makes Now return t, as time goes on from there.
func (c *OffsetClock) Set(t time.Time) {
	c.frozen.Store(0)
	c.offset.Store(int64(time.Until(t)))
}

// Freeze makes Now return t until Set, Freeze or Reset: a spec can then judge a boundary to
// the second, however long the operator takes to reconcile.
func (c *OffsetClock) Freeze(t time.Time) { c.frozen.Store(t.UnixNano()) }

// Reset makes Now the real time again.
func (c *OffsetClock) Reset() {
	c.frozen.Store(0)
	c.offset.Store(0)
}
