package testenv

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Versions records the resourceVersion of every object of the lists, keyed "<kind> <namespace>/<name>",
// leaving out those skip names (nil skips none): comparing two records tells whether anything changed.
func Versions(ctx context.Context, c client.Reader, lists map[string]client.ObjectList, skip func(namespace, name string) bool) (map[string]string, error) {
	out := map[string]string{}
	for kind, list := range lists {
		if err := c.List(ctx, list); err != nil {
			return nil, err
		}
		if err := meta.EachListItem(list, func(o runtime.Object) error {
			m, err := meta.Accessor(o)
			if err != nil {
				return err
			}
			if skip == nil || !skip(m.GetNamespace(), m.GetName()) {
				out[fmt.Sprintf("%s %s/%s", kind, m.GetNamespace(), m.GetName())] = m.GetResourceVersion()
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Changed lists the objects whose resourceVersion differs between two records of Versions, or
// that are in only one.
func Changed(before, after map[string]string) []string {
	var out []string
	for k, v := range before {
		if after[k] != v {
			out = append(out, fmt.Sprintf("%s: %s -> %q", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			out = append(out, fmt.Sprintf("%s: created (%s)", k, v))
		}
	}
	return out
}
