package arbiter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// counted is a fake API server holding one organization, which counts the status writes and
// the member lists it serves and lets a test hold the first status write.
type counted struct {
	client.WithWatch
	writes, lists atomic.Int32
	patches       atomic.Int32 // status writes tried, refused ones included
	conflicts     atomic.Int32 // status writes still to refuse with a conflict
	hold          chan struct{}
	holding       sync.Once
}

func newCounted(t *testing.T) *counted {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := tenancyv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := &counted{}
	org := &tenancyv1alpha1.Organization{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	c.WithWatch = fake.NewClientBuilder().WithScheme(scheme).WithObjects(org).WithStatusSubresource(org).
		WithInterceptorFuncs(interceptor.Funcs{
			List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				c.lists.Add(1)
				return cl.List(ctx, list, opts...)
			},
			SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				c.patches.Add(1)
				if c.hold != nil {
					c.holding.Do(func() { <-c.hold })
				}
				if c.conflicts.Add(-1) >= 0 {
					return apierrors.NewConflict(schema.GroupResource{Resource: "organizations"}, obj.GetName(), errors.New("changed"))
				}
				c.writes.Add(1)
				return cl.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	return c
}

// admitUpTo admits a member as long as fewer than limit are recorded, reading the stored members
// as the webhooks do: the rule a round must keep exact when its requests are decided together.
func admitUpTo(limit int, name string, decided *atomic.Int32) Decision {
	return func(ctx context.Context, live client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
		decided.Add(1)
		if err := live.List(ctx, &tenancyv1alpha1.OrganizationMemberList{}, client.InNamespace(org.Name)); err != nil {
			return false, err
		}
		if org.Status.Admitted != nil && len(org.Status.Admitted.Members) >= limit {
			return false, fmt.Errorf("%s: the organization has %d members", name, limit)
		}
		RecordMember(org, MemberState{Name: name, Email: name + "@x.io"}, now)
		return true, nil
	}
}

func stored(t *testing.T, c client.Client) *tenancyv1alpha1.Organization {
	t.Helper()
	org := &tenancyv1alpha1.Organization{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "acme"}, org); err != nil {
		t.Fatal(err)
	}
	return org
}

func TestRequestsThatArriveTogetherShareOneRound(t *testing.T) {
	c := newCounted(t)
	c.hold = make(chan struct{})
	a := &Arbiter{}
	const n, limit = 8, 5
	var decided atomic.Int32
	errs := make([]error, n)
	var wg sync.WaitGroup
	decide := func(i int) {
		defer wg.Done()
		errs[i] = a.Decide(context.Background(), c, c, "acme", admitUpTo(limit, fmt.Sprintf("m%d", i), &decided))
	}
	wg.Add(1)
	go decide(0) // its round's write is held until the others wait for the next round
	for decided.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go decide(i)
	}
	for a.waiting("acme") < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(c.hold)
	wg.Wait()

	if got := c.writes.Load(); got != 2 {
		t.Errorf("status writes = %d, want 2: one round for the first request and one for the seven that waited", got)
	}
	if got := c.lists.Load(); got != 2 {
		t.Errorf("member lists = %d, want 2: the decisions of a round share its reads", got)
	}
	admitted := 0
	for _, err := range errs {
		if err == nil {
			admitted++
		}
	}
	if admitted != limit {
		t.Errorf("admitted %d of %d, want exactly %d: each decision sees what those before it in its round recorded (%v)", admitted, n, limit, errs)
	}
	if got := len(stored(t, c).Status.Admitted.Members); got != limit {
		t.Errorf("stored records = %d, want %d", got, limit)
	}
}

func TestARefusedDecisionLeavesNothingInItsRound(t *testing.T) {
	c := newCounted(t)
	refused := errors.New("refused")
	rounds := []Decision{
		func(_ context.Context, _ client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
			RecordMember(org, MemberState{Name: "changed-then-refused"}, now)
			return false, refused
		},
		func(_ context.Context, _ client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
			RecordMember(org, MemberState{Name: "changed-but-not-reported"}, now)
			return false, nil
		},
		func(_ context.Context, _ client.Reader, org *tenancyv1alpha1.Organization) (bool, error) {
			RecordMember(org, MemberState{Name: "admitted"}, now)
			return true, nil
		},
	}
	batch := make([]*request, len(rounds))
	for i, d := range rounds {
		batch[i] = &request{ctx: context.Background(), decide: d}
	}
	errs, _ := round(context.Background(), c, c, "acme", batch, nil)
	if !errors.Is(errs[0], refused) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("answers = %v, want refused, nil, nil", errs)
	}
	got := stored(t, c).Status.Admitted.Members
	if len(got) != 1 || got[0].Name != "admitted" {
		t.Errorf("stored records = %+v, want only the admitted one", got)
	}
}

func TestAPanickingDecisionRefusesItsRound(t *testing.T) {
	c := newCounted(t)
	var decided atomic.Int32
	batch := []*request{
		{ctx: context.Background(), decide: admitUpTo(5, "m0", &decided)},
		{ctx: context.Background(), decide: func(context.Context, client.Reader, *tenancyv1alpha1.Organization) (bool, error) { panic("bug") }},
	}
	errs, _ := round(context.Background(), c, c, "acme", batch, nil)
	for i, err := range errs {
		if !apierrors.IsInternalError(err) {
			t.Errorf("answer %d = %v, want an internal error", i, err)
		}
	}
	if got := c.writes.Load(); got != 0 {
		t.Errorf("status writes = %d, want none", got)
	}
}

func TestARoundThatLosesARaceIsDecidedAgain(t *testing.T) {
	c := newCounted(t)
	c.conflicts.Store(2)
	var decided atomic.Int32
	if err := (&Arbiter{}).Decide(context.Background(), c, c, "acme", admitUpTo(1, "m0", &decided)); err != nil {
		t.Fatal(err)
	}
	if got := decided.Load(); got != 3 {
		t.Errorf("decided %d times, want 3: twice refused by the compare-and-swap, then written", got)
	}
	if got := c.writes.Load(); got != 1 {
		t.Errorf("status writes = %d, want 1", got)
	}
}

// waiting is how many requests wait for the organization's next round.
func (a *Arbiter) waiting(org string) int {
	return a.queues.Waiting(org)
}

// staleCache serves, as the manager's cache would, an organization older than the one stored,
// and passes every write to the fake API server.
type staleCache struct {
	*counted
	org *tenancyv1alpha1.Organization
}

func (s staleCache) Get(_ context.Context, _ client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s.org.DeepCopyInto(obj.(*tenancyv1alpha1.Organization))
	return nil
}

// storeRecord stores an admission record of name on the organization, as another round would.
func storeRecord(t *testing.T, c client.Client, name string, at time.Time) {
	t.Helper()
	org := stored(t, c)
	before := org.DeepCopy()
	RecordMember(org, MemberState{Name: name, Email: name + "@x.io"}, at)
	if err := c.Status().Patch(context.Background(), org, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

func TestAStaleCachedOrganizationLosesTheCompareAndSwap(t *testing.T) {
	c := newCounted(t)
	stale := staleCache{counted: c, org: stored(t, c)}
	storeRecord(t, c, "m0", now) // another round fills the organization's only place
	var decided atomic.Int32
	err := (&Arbiter{}).Decide(context.Background(), c, stale, "acme", admitUpTo(1, "m1", &decided))
	if err == nil {
		t.Fatal("admitted m1 on the stale organization's free place: the limit is 1 and m0 holds it")
	}
	if got := decided.Load(); got != 2 {
		t.Errorf("decided %d times, want 2: on the cached organization, then on the live one", got)
	}
	if got := len(stored(t, c).Status.Admitted.Members); got != 1 {
		t.Errorf("stored records = %d, want 1", got)
	}
}

func TestARoundThatWritesNothingConfirmsTheCachedVersion(t *testing.T) {
	c := newCounted(t)
	storeRecord(t, c, "m0", now)
	stale := staleCache{counted: c, org: stored(t, c)} // the cache still shows m0's record
	org := stored(t, c)
	before := org.DeepCopy()
	org.Status.Admitted = nil // which has since gone, as records do once their member is stored or refused
	if err := c.Status().Patch(context.Background(), org, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	var decided atomic.Int32
	if err := (&Arbiter{}).Decide(context.Background(), c, stale, "acme", admitUpTo(1, "m1", &decided)); err != nil {
		t.Fatalf("refused on the cached organization's stale record: %v", err)
	}
	if got := decided.Load(); got != 2 {
		t.Errorf("decided %d times, want 2: the refusal on the cached organization, then the admission on the live one", got)
	}
}

func TestTheNextRoundStartsFromThePreviousRoundsWriteWhileTheCacheLags(t *testing.T) {
	c := newCounted(t)
	stale := staleCache{counted: c, org: stored(t, c)} // never sees a write
	c.hold = make(chan struct{})
	a := &Arbiter{}
	var decided atomic.Int32
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = a.Decide(context.Background(), c, stale, "acme", admitUpTo(5, "m0", &decided))
	}()
	for decided.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		defer wg.Done()
		errs[1] = a.Decide(context.Background(), c, stale, "acme", admitUpTo(5, "m1", &decided))
	}()
	for a.waiting("acme") < 1 {
		time.Sleep(time.Millisecond)
	}
	close(c.hold)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("refused: %v", errs)
	}
	if got := c.patches.Load(); got != 2 {
		t.Errorf("status writes tried = %d, want 2: the second round starts from what the first wrote, not from the stale cache", got)
	}
	if got := len(stored(t, c).Status.Admitted.Members); got != 2 {
		t.Errorf("stored records = %d, want 2", got)
	}
}
