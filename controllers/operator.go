package controllers

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/orgoperator/org-operator/internal/metering"
	orgmetrics "github.com/orgoperator/org-operator/internal/metrics"
	"github.com/orgoperator/org-operator/internal/podcache"
	orgwebhook "github.com/orgoperator/org-operator/internal/webhook"
)

// ManagerOptions completes o with what every manager of this operator needs: a scheme from
// NewScheme unless o has one, and the cache of CacheOptions, which replaces o.Cache since the
// controllers and webhooks rely on what it holds. Everything else is the caller's (metrics,
// probes, webhook server, leader election).
func ManagerOptions(o ctrl.Options) ctrl.Options {
	if o.Scheme == nil {
		o.Scheme = NewScheme()
	}
	o.Cache = CacheOptions()
	return o
}

// OperatorOptions choose what SetupOperator wires.
type OperatorOptions struct {
	// Controllers tune the controllers. Pods and QuotaLedger are set by SetupOperator.
	Controllers Options
	// Webhooks says the admission webhooks will be served (Operator.SetupWebhooks): the pod
	// webhook charges the quota ledger that the controllers then settle.
	Webhooks bool
	// Metrics is where the per-organization gauges are registered; none if nil.
	Metrics prometheus.Registerer
	// DisableMetering leaves usage metering out: no tracker follows the pods and no usage
	// report is written or advanced (a run to compare metering's cost against).
	DisableMetering bool
}

// Operator is the operator wired into a manager.
type Operator struct {
	// Pods is the compact pod cache that the controllers and the webhooks read.
	Pods *podcache.Cache
	// Meter follows the pods of the cache for the usage reports; nil with DisableMetering.
	Meter *metering.Tracker

	mgr  ctrl.Manager
	opts OperatorOptions
}

// SetupOperator adds the operator to a manager made with ManagerOptions: the compact pod cache,
// the per-organization metrics and the controllers. The webhooks come separately, through
// Operator.SetupWebhooks, since their server may have to wait for its certificate.
func SetupOperator(mgr ctrl.Manager, opts OperatorOptions) (*Operator, error) {
	// Pods are kept compact, outside the manager's cache: usage and the quota ledger read them.
	pods, err := podcache.New(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("creating the pod cache: %w", err)
	}
	if err := mgr.Add(pods); err != nil {
		return nil, fmt.Errorf("adding the pod cache: %w", err)
	}
	if opts.Metrics != nil {
		// Read from the cache at scrape time.
		if err := opts.Metrics.Register(orgmetrics.NewCollector(mgr.GetCache())); err != nil {
			return nil, fmt.Errorf("registering the organization metrics: %w", err)
		}
		if err := opts.Metrics.Register(orgmetrics.NewMeteringCollector(mgr.GetCache())); err != nil {
			return nil, fmt.Errorf("registering the metering metrics: %w", err)
		}
	}
	opts.Controllers.Pods = pods
	var meter *metering.Tracker
	if !opts.DisableMetering {
		if meter, err = newMeter(pods, opts.Controllers); err != nil {
			return nil, err
		}
	}
	opts.Controllers.Meter = meter
	opts.Controllers.QuotaLedger = opts.Webhooks
	if err := SetupWithManager(mgr, opts.Controllers); err != nil {
		return nil, err
	}
	return &Operator{Pods: pods, Meter: meter, mgr: mgr, opts: opts}, nil
}

// newMeter makes the tracker that follows the cache's pods for the usage reports.
func newMeter(pods *podcache.Cache, opts Options) (*metering.Tracker, error) {
	meterClock := opts.Clock
	if meterClock == nil {
		meterClock = clock.RealClock{}
	}
	// A deleted pod waits for a checkpoint for a few intervals, at least an hour, then is dropped
	// (its namespace may be in no organization).
	interval := opts.CheckpointInterval
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	meter := metering.NewTracker(meterClock, max(3*interval, time.Hour))
	if err := meter.Register(pods.Informer()); err != nil {
		return nil, fmt.Errorf("registering the metering tracker: %w", err)
	}
	return meter, nil
}

// SetupWebhooks registers the admission webhooks on the manager's webhook server, which starts
// them at once if the manager is running. It needs OperatorOptions.Webhooks: without it the
// controllers do not settle the ledger that the pod webhook charges.
func (o *Operator) SetupWebhooks() error {
	if !o.opts.Webhooks {
		return errors.New("the operator was set up without webhooks (OperatorOptions.Webhooks)")
	}
	return orgwebhook.SetupWithManager(o.mgr, orgwebhook.Options{Pods: o.Pods, Clock: o.opts.Controllers.Clock})
}
