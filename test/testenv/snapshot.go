package testenv

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
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

// Settled returns nil once every organization that is not being deleted and every member is
// Ready for its generation, organizations count their members, and no pod charge awaits
// settling; otherwise what is not there yet. From then on the operator writes nothing until
// something changes, except reconciles already queued.
func Settled(ctx context.Context, c client.Reader) error {
	orgs := &tenancyv1alpha1.OrganizationList{}
	if err := c.List(ctx, orgs); err != nil {
		return err
	}
	for _, o := range orgs.Items {
		if !o.DeletionTimestamp.IsZero() {
			continue
		}
		if !meta.IsStatusConditionTrue(o.Status.Conditions, tenancyv1alpha1.ReadyCondition) || o.Status.ObservedGeneration != o.Generation {
			return fmt.Errorf("organization %s is not Ready for generation %d", o.Name, o.Generation)
		}
		members := &tenancyv1alpha1.OrganizationMemberList{}
		if err := c.List(ctx, members, client.InNamespace(o.Name)); err != nil {
			return err
		}
		if int(o.Status.MemberCount) != len(members.Items) {
			return fmt.Errorf("organization %s counts %d members of %d", o.Name, o.Status.MemberCount, len(members.Items))
		}
		if l := o.Status.Quotas.LedgerOrNil(); l != nil && len(l.Reservations) > 0 {
			return fmt.Errorf("organization %s has %d unsettled charges", o.Name, len(l.Reservations))
		}
	}
	members := &tenancyv1alpha1.OrganizationMemberList{}
	if err := c.List(ctx, members); err != nil {
		return err
	}
	for _, m := range members.Items {
		if !meta.IsStatusConditionTrue(m.Status.Conditions, tenancyv1alpha1.ReadyCondition) || m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("member %s/%s is not Ready for generation %d", m.Namespace, m.Name, m.Generation)
		}
	}
	return nil
}
