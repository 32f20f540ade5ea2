package arbiter

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// snapshot reads each object and list from the API server once per round: the decisions of a
// round judge the same stored state, and what the earlier ones admitted is on the organization
// they share, not in the stored objects.
type snapshot struct {
	live  client.Reader
	reads map[string]read
}

type read struct {
	obj runtime.Object
	err error
}

var _ client.Reader = &snapshot{}

func newSnapshot(live client.Reader) *snapshot {
	return &snapshot{live: live, reads: map[string]read{}}
}

func (s *snapshot) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return s.once(fmt.Sprintf("get %T %s %s %v", obj, obj.GetObjectKind().GroupVersionKind(), key, opts), obj, func() error { return s.live.Get(ctx, key, obj, opts...) })
}

func (s *snapshot) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	// The kind tells apart the metadata-only and unstructured lists, which share one Go type.
	return s.once(fmt.Sprintf("list %T %s %s %+v", list, list.GetObjectKind().GroupVersionKind(), o.Namespace, *o.AsListOptions()), list, func() error { return s.live.List(ctx, list, opts...) })
}

// once fills into from the first read under key, issuing it only the first time; the snapshot
// keeps a copy of its own, as callers may change what they are given.
func (s *snapshot) once(key string, into runtime.Object, do func() error) error {
	r, ok := s.reads[key]
	if !ok {
		err := do()
		r = read{obj: into.DeepCopyObject(), err: err}
		s.reads[key] = r
		return err
	}
	if r.err == nil {
		reflect.ValueOf(into).Elem().Set(reflect.ValueOf(r.obj.DeepCopyObject()).Elem())
	}
	return r.err
}
