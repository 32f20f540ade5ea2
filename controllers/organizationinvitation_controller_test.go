package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/controllers"
	"github.com/orgoperator/org-operator/internal/invitation"
)

func newInvitation(org, name, email string, expiresAt time.Time) *tenancyv1alpha1.OrganizationInvitation {
	at := metav1.NewTime(expiresAt.Truncate(time.Second))
	return &tenancyv1alpha1.OrganizationInvitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: org, Name: name},
		Spec:       tenancyv1alpha1.OrganizationInvitationSpec{Email: email, KubernetesRole: tenancyv1alpha1.KubernetesRoleEdit, ExpiresAt: &at},
	}
}

func getInvitation(g Gomega, org, name string) *tenancyv1alpha1.OrganizationInvitation {
	inv := &tenancyv1alpha1.OrganizationInvitation{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: org, Name: name}, inv)).To(Succeed())
	return inv
}

// expectIssued waits for the invitation's token and returns the invitation and the token.
func expectIssued(ctx context.Context, org, name string) (*tenancyv1alpha1.OrganizationInvitation, string) {
	var inv *tenancyv1alpha1.OrganizationInvitation
	Eventually(func(g Gomega) {
		inv = getInvitation(g, org, name)
		g.Expect(inv.Status.ObservedGeneration).To(Equal(inv.Generation))
		g.Expect(condition(inv.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tenancyv1alpha1.InvitationIssuedReason)))
	}).WithContext(ctx).Should(Succeed())
	Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationPending))
	secret := &corev1.Secret{}
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: inv.Status.TokenSecret}, secret)).To(Succeed())
	token := string(secret.Data[tenancyv1alpha1.InvitationTokenKey])
	Expect(invitation.Hash(token)).To(Equal(inv.Status.TokenHash))
	return inv, token
}

// expectSecretGone waits until the invitation's token Secret is deleted and status no longer names it.
func expectSecretGone(ctx context.Context, org, name, secret string) {
	Eventually(func(g Gomega) {
		g.Expect(getInvitation(g, org, name).Status.TokenSecret).To(BeEmpty())
		err := k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: secret}, &corev1.Secret{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Secret %s: %v", secret, err)
	}).WithContext(ctx).Should(Succeed())
}

// claim records on the invitation's status what the redemption webhook records when it accepts
// a redemption (this suite runs without webhooks).
func claim(ctx context.Context, org, name string, red *tenancyv1alpha1.OrganizationInvitationRedemption, user string, at time.Time) {
	Eventually(func() error {
		inv := &tenancyv1alpha1.OrganizationInvitation{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: name}, inv); err != nil {
			return err
		}
		inv.Status.Claim = &tenancyv1alpha1.InvitationClaim{
			User:       tenancyv1alpha1.InvitationIdentity{Username: user, Groups: []string{"system:authenticated", "devs"}},
			Redemption: red.Name, RedemptionUID: string(red.UID), Time: metav1.NewTime(at),
		}
		return k8s.Status().Update(ctx, inv)
	}).WithContext(ctx).Should(Succeed())
}

func newRedemption(ctx context.Context, org, inv, token string) *tenancyv1alpha1.OrganizationInvitationRedemption {
	red := &tenancyv1alpha1.OrganizationInvitationRedemption{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "redeem-"},
		Spec:       tenancyv1alpha1.OrganizationInvitationRedemptionSpec{Organization: org, Invitation: inv, Token: token},
	}
	Expect(k8s.Create(ctx, red)).To(Succeed())
	return red
}

var _ = Describe("Invitations", func() {
	var org string

	BeforeEach(func(ctx SpecContext) {
		org = uniqueName("invites")
		Expect(k8s.Create(ctx, newOrganization(org, tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		expectOrgReady(ctx, org)
	})
	AfterEach(func() { clock.Reset() })

	It("issues a one-time token into a Secret the invitation owns, and then writes nothing", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newInvitation(org, "dan", "dan@example.com", time.Now().Add(48*time.Hour)))).To(Succeed())
		inv, token := expectIssued(ctx, org, "dan")
		Expect(token).To(HaveLen(43), "32 bytes, base64url without padding")
		secret := &corev1.Secret{}
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: inv.Status.TokenSecret}, secret)).To(Succeed())
		Expect(secret.Labels).To(HaveKeyWithValue(tenancyv1alpha1.InvitationLabel, "dan"))
		Expect(metav1.GetControllerOf(secret)).To(HaveField("UID", inv.UID))
		Eventually(func(g Gomega) { hasEvent(ctx, g, "dan", tenancyv1alpha1.InvitationIssuedReason) }).Should(Succeed())

		// The manager's cache has the last write; then reconciles write nothing and wait for the expiry.
		Eventually(func(g Gomega) {
			cached := &tenancyv1alpha1.OrganizationInvitation{}
			g.Expect(mgrClient.Get(ctx, client.ObjectKeyFromObject(inv), cached)).To(Succeed())
			g.Expect(cached.Status).To(Equal(getInvitation(g, org, "dan").Status))
		}).Should(Succeed())
		counter := &writeCounter{Client: mgrClient}
		recorder := events.NewFakeRecorder(10)
		r := &controllers.OrganizationInvitationReconciler{Client: counter, APIReader: k8s, Recorder: recorder, Clock: realClock{}}
		for range 3 {
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(inv)})
			Expect(err).NotTo(HaveOccurred())
			Expect(res.RequeueAfter).To(BeNumerically("~", time.Until(inv.Spec.ExpiresAt.Time), 5*time.Second))
		}
		Expect(counter.writes.Load()).To(BeZero())
		Expect(recorder.Events).To(BeEmpty())
	})

	It("expires an invitation at spec.expiresAt exactly and deletes its token", func(ctx SpecContext) {
		expires := time.Now().Add(48 * time.Hour).Truncate(time.Second)
		clock.Set(expires.Add(-3 * time.Second))
		Expect(k8s.Create(ctx, newInvitation(org, "eve", "eve@example.com", expires))).To(Succeed())
		inv, _ := expectIssued(ctx, org, "eve")
		Eventually(func(g Gomega) {
			got := getInvitation(g, org, "eve")
			g.Expect(got.Status.Phase).To(Equal(tenancyv1alpha1.InvitationExpired))
			g.Expect(clock.Now()).NotTo(BeTemporally("<", expires), "expired before spec.expiresAt")
			g.Expect(condition(got.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(And(
				HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tenancyv1alpha1.InvitationExpiredReason)))
		}, 10*time.Second).Should(Succeed())
		expectSecretGone(ctx, org, "eve", inv.Status.TokenSecret)
		Eventually(func(g Gomega) { hasEvent(ctx, g, "eve", tenancyv1alpha1.InvitationExpiredReason) }).Should(Succeed())
	})

	It("revokes an invitation and deletes its token", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newInvitation(org, "fay", "fay@example.com", time.Now().Add(time.Hour)))).To(Succeed())
		inv, _ := expectIssued(ctx, org, "fay")
		inv.Spec.Revoked = true
		Expect(k8s.Update(ctx, inv)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getInvitation(g, org, "fay").Status.Phase).To(Equal(tenancyv1alpha1.InvitationRevoked))
		}).Should(Succeed())
		expectSecretGone(ctx, org, "fay", inv.Status.TokenSecret)
	})

	It("makes the member of an accepted redemption, then deletes the redemption and the token", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newInvitation(org, "gus", "gus@example.com", time.Now().Add(time.Hour)))).To(Succeed())
		inv, token := expectIssued(ctx, org, "gus")
		red := newRedemption(ctx, org, "gus", token)
		claim(ctx, org, "gus", red, "gus-sso", clock.Now())
		Eventually(func(g Gomega) {
			got := getInvitation(g, org, "gus")
			g.Expect(got.Status.Phase).To(Equal(tenancyv1alpha1.InvitationRedeemed))
			g.Expect(got.Status.Member).To(Equal("gus"))
			g.Expect(got.Status.Claim).To(BeNil())
			g.Expect(got.Status.RedeemedBy).To(Equal(&tenancyv1alpha1.InvitationIdentity{Username: "gus-sso", Groups: []string{"system:authenticated", "devs"}}))
			g.Expect(got.Status.RedeemedAt).NotTo(BeNil())
		}).Should(Succeed())
		m := expectMemberReady(ctx, org, "gus")
		Expect(m.Spec).To(Equal(tenancyv1alpha1.OrganizationMemberSpec{Email: "gus@example.com", Username: "gus-sso", KubernetesRole: tenancyv1alpha1.KubernetesRoleEdit}))
		Expect(m.Labels).To(HaveKeyWithValue(tenancyv1alpha1.InvitationLabel, "gus"))
		Eventually(func(g Gomega) {
			g.Expect(subjectBindings(g, org, "gus-sso")).To(Equal(map[string]string{org + "/org-operator:edit": "edit"}))
		}).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(red), &tenancyv1alpha1.OrganizationInvitationRedemption{}))
		}).Should(BeTrue())
		expectSecretGone(ctx, org, "gus", inv.Status.TokenSecret)
		Eventually(func(g Gomega) { hasEvent(ctx, g, "gus", tenancyv1alpha1.InvitationRedeemedReason) }).Should(Succeed())
	})

	It("releases the claim of a redemption the API server never stored, after a minute", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newInvitation(org, "hal", "hal@example.com", time.Now().Add(time.Hour)))).To(Succeed())
		inv, _ := expectIssued(ctx, org, "hal")
		ghost := &tenancyv1alpha1.OrganizationInvitationRedemption{ObjectMeta: metav1.ObjectMeta{Name: "never-stored", UID: "0000"}}
		claim(ctx, org, "hal", ghost, "hal", clock.Now().Add(-2*time.Minute))
		Eventually(func(g Gomega) {
			got := getInvitation(g, org, "hal")
			g.Expect(got.Status.Claim).To(BeNil())
			g.Expect(got.Status.Phase).To(Equal(tenancyv1alpha1.InvitationPending))
			g.Expect(got.Status.TokenSecret).To(Equal(inv.Status.TokenSecret))
		}).Should(Succeed())
		Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: org, Name: "hal"}, &tenancyv1alpha1.OrganizationMember{}))).To(BeTrue())
	})

	It("reports a member it cannot make, and leaves the invitation Pending for another redemption", func(ctx SpecContext) {
		Expect(k8s.Create(ctx, newMember(org, "ida", "someone@example.com", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		Expect(k8s.Create(ctx, newInvitation(org, "ida", "ida@example.com", time.Now().Add(time.Hour)))).To(Succeed())
		inv, token := expectIssued(ctx, org, "ida")
		red := newRedemption(ctx, org, "ida", token)
		claim(ctx, org, "ida", red, "ida", clock.Now())
		Eventually(func(g Gomega) {
			got := getInvitation(g, org, "ida")
			g.Expect(got.Status.Claim).To(BeNil())
			g.Expect(got.Status.Phase).To(Equal(tenancyv1alpha1.InvitationPending))
			g.Expect(condition(got.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(And(
				HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tenancyv1alpha1.InvitationMemberRefusedReason),
				HaveField("Message", ContainSubstring("already has a member named ida"))))
			g.Expect(got.Status.TokenSecret).To(Equal(inv.Status.TokenSecret))
		}).Should(Succeed())
		Expect(getMember(Default, org, "ida").Spec.Email).To(Equal("someone@example.com"))
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(red), &tenancyv1alpha1.OrganizationInvitationRedemption{}))
		}).Should(BeTrue())
		Consistently(func(g Gomega) {
			g.Expect(condition(getInvitation(g, org, "ida").Status.Conditions, tenancyv1alpha1.ReadyCondition).Reason).To(Equal(tenancyv1alpha1.InvitationMemberRefusedReason))
		}).Should(Succeed())
	})
})
