// Package podcache keeps, for every pod in the cluster, the little the operator reads of it: its
// identity, whether it has finished, and its effective requests and limits. Clusters hold many
// pods; a cached corev1.Pod, even stripped, costs about 2.5 KB, a Pod here about 400 bytes.
//
// Pod is not an API type: it is never sent to or read from the API server.
// +kubebuilder:skip
package podcache

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orgoperator/org-operator/internal/resourcelist"
	"github.com/orgoperator/org-operator/internal/usage"
)

// Amounts are a pod's effective requests or limits: cpu in millicores, memory and ephemeral
// storage in bytes.
type Amounts struct {
	CPU, Memory, EphemeralStorage int64
}

// Pod is a pod compacted to what usage and the quota ledger read.
type Pod struct {
	metav1.TypeMeta `json:",inline"`
	// ObjectMeta holds the name, namespace, UID and generation only.
	metav1.ObjectMeta `json:"metadata"`
	// Terminal is true once the pod has Succeeded or Failed: it no longer counts.
	Terminal bool `json:"terminal"`
	// Requests and Limits are computed as ResourceQuota computes them: init containers, sidecars,
	// overhead and pod-level resources included, and, while an in-place resize is under way, the
	// larger of what the spec asks and what the kubelet has allocated.
	Requests Amounts `json:"requests"`
	Limits   Amounts `json:"limits"`
	// Start and End are the pod's own times, in Unix seconds, that metering integrates between
	// (see Lifetime); zero when unknown.
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
	// Written is when the pod was last written, in Unix seconds, as the API server recorded it
	// in its managedFields: the moment an update, such as an in-place resize, took effect.
	Written int64 `json:"written,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (p *Pod) DeepCopyObject() runtime.Object {
	out := *p
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return &out
}

var podKind = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}

// quotaOptions compute requests and limits as ResourceQuota does.
var quotaOptions = resourcehelper.PodResourcesOptions{UseStatusResources: true}

// FromPod compacts a pod.
func FromPod(pod *corev1.Pod) *Pod {
	out := &Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, Generation: pod.Generation},
		Terminal:   usage.Terminal(pod),
		Requests:   amounts(resourcehelper.PodRequests(pod, quotaOptions)),
		Limits:     amounts(resourcehelper.PodLimits(pod, quotaOptions)),
	}
	out.Start, out.End = Lifetime(pod)
	for _, f := range pod.ManagedFields {
		if f.Time != nil {
			out.Written = max(out.Written, f.Time.Unix())
		}
	}
	out.SetGroupVersionKind(podKind)
	return out
}

// Lifetime is when a pod started and ended using what it holds, in Unix seconds, from the pod's
// own timestamps so that whoever reads the pod later reaches the same answer:
//   - start: when it was bound to a node (the PodScheduled condition turning True), else
//     status.startTime; zero while it is neither, and then it uses nothing;
//   - end, for a Succeeded or Failed pod: the last finishedAt of its containers, else the last
//     transition of its conditions, else its start; for a pod being deleted, its
//     deletionTimestamp (the end of its grace period); zero while it runs.
func Lifetime(pod *corev1.Pod) (start, end int64) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			start = c.LastTransitionTime.Unix()
		}
	}
	if start == 0 && pod.Status.StartTime != nil {
		start = pod.Status.StartTime.Unix()
	}
	if start == 0 {
		return 0, 0
	}
	if usage.Terminal(pod) {
		for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
			for _, c := range list {
				if t := c.State.Terminated; t != nil && t.FinishedAt.Unix() > end {
					end = t.FinishedAt.Unix()
				}
			}
		}
		if end == 0 {
			for _, c := range pod.Status.Conditions {
				if !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Unix() > end {
					end = c.LastTransitionTime.Unix()
				}
			}
		}
	}
	if end == 0 && pod.DeletionTimestamp != nil {
		end = pod.DeletionTimestamp.Unix()
	}
	if end != 0 && end < start {
		end = start
	}
	if end == 0 && usage.Terminal(pod) {
		end = start
	}
	return start, end
}

func amounts(l corev1.ResourceList) Amounts {
	return Amounts{
		CPU:              l.Cpu().MilliValue(),
		Memory:           l.Memory().Value(),
		EphemeralStorage: l.StorageEphemeral().Value(),
	}
}

// Sum counts the pods that have not finished and sums their cpu and memory requests and limits.
// The result always has cpu and memory entries.
func Sum(pods []*Pod) (int32, usage.Compute) {
	var n int32
	var req, lim Amounts
	for _, p := range pods {
		if p.Terminal {
			continue
		}
		n++
		req.add(p.Requests)
		lim.add(p.Limits)
	}
	return n, usage.Compute{Requests: req.computeList(), Limits: lim.computeList()}
}

func (a *Amounts) add(b Amounts) {
	a.CPU += b.CPU
	a.Memory += b.Memory
	a.EphemeralStorage += b.EphemeralStorage
}

func (a Amounts) computeList() corev1.ResourceList {
	return resourcelist.Canonical(corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(a.CPU, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(a.Memory, resource.BinarySI),
	})
}

// Lister lists the compact pods of a namespace.
type Lister interface {
	InNamespace(namespace string) ([]*Pod, error)
}

// InNamespaces returns the pods of several namespaces, as the organization-wide ledger counts them.
func InNamespaces(l Lister, namespaces []string) ([]*Pod, error) {
	var out []*Pod
	for _, ns := range namespaces {
		pods, err := l.InNamespace(ns)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

// Stored lists the pods the API server (or any reader) stores, compacted, for rules that must not
// trust a cache that may lag behind.
func Stored(ctx context.Context, r client.Reader) Lister {
	return storedPods{ctx: ctx, reader: r}
}

// storedPods keeps the context of the one decision it lists pods for.
type storedPods struct {
	ctx    context.Context
	reader client.Reader
}

func (s storedPods) InNamespace(namespace string) ([]*Pod, error) {
	pods := &corev1.PodList{}
	if err := s.reader.List(s.ctx, pods, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	out := make([]*Pod, 0, len(pods.Items))
	for i := range pods.Items {
		out = append(out, FromPod(&pods.Items[i]))
	}
	return out, nil
}

// Cache is an informer over every pod that stores compact Pods, indexed by namespace. It runs in
// every replica (the webhooks read it too).
type Cache struct {
	informer toolscache.SharedIndexInformer
}

var _ Lister = &Cache{}

// New returns a Cache that lists and watches pods with cfg. Add it to the manager to start it.
func New(cfg *rest.Config) (*Cache, error) {
	// Protobuf costs the API server and the decoder less than JSON, and pods are many.
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lw := toolscache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "pods", metav1.NamespaceAll, fields.Everything())
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0,
		toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc})
	if err := inf.SetTransform(compact); err != nil {
		return nil, err
	}
	return &Cache{informer: inf}, nil
}

// compact turns the pods the informer receives into Pods; anything else (a tombstone) passes.
func compact(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		return FromPod(pod), nil
	}
	return obj, nil
}

// Start runs the informer until ctx is done.
func (c *Cache) Start(ctx context.Context) error {
	c.informer.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection is false: webhooks in every replica read the cache.
func (c *Cache) NeedLeaderElection() bool { return false }

// Informer is the underlying informer, for watches.
func (c *Cache) Informer() toolscache.SharedIndexInformer { return c.informer }

// ErrNotSynced is returned until the first list of pods has arrived.
var ErrNotSynced = errors.New("the pod cache has not synced yet")

// InNamespace returns the namespace's pods. The Pods are the cache's own: do not modify them.
func (c *Cache) InNamespace(namespace string) ([]*Pod, error) {
	if !c.informer.HasSynced() {
		return nil, ErrNotSynced
	}
	objs, err := c.informer.GetIndexer().ByIndex(toolscache.NamespaceIndex, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]*Pod, 0, len(objs))
	for _, o := range objs {
		p, ok := o.(*Pod)
		if !ok {
			return nil, fmt.Errorf("pod cache holds a %T", o)
		}
		out = append(out, p)
	}
	return out, nil
}
