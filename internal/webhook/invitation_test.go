package webhook_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
	"github.com/orgoperator/org-operator/internal/invitation"
	"github.com/orgoperator/org-operator/test/testenv"
)

// The invitations' world: organization ivy with ian (admin, Admin), eda (admin, Edit) and mo (a
// View member, given the RBAC rights on invitations that only admins have, so that the webhook,
// not RBAC, is what stops him); organization ivq, whose maxMembers its one admin fills.
const (
	ian  = "ian@ivy.example"
	eda  = "eda@ivy.example"
	mo   = "mo@ivy.example"
	quin = "quin@ivq.example"
)

func invitationFor(ns, name, email string, isAdmin bool, role tenancyv1alpha1.KubernetesRole) *tenancyv1alpha1.OrganizationInvitation {
	return &tenancyv1alpha1.OrganizationInvitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       tenancyv1alpha1.OrganizationInvitationSpec{Email: email, Admin: isAdmin, KubernetesRole: role},
	}
}

func redemptionOf(org, inv, token string) *tenancyv1alpha1.OrganizationInvitationRedemption {
	return &tenancyv1alpha1.OrganizationInvitationRedemption{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "redeem-"},
		Spec:       tenancyv1alpha1.OrganizationInvitationRedemptionSpec{Organization: org, Invitation: inv, Token: token},
	}
}

// wrongToken is token with its last character changed: one in 64 tokens ends in "A" already.
func wrongToken(token string) string {
	last := "A"
	if strings.HasSuffix(token, last) {
		last = "B"
	}
	return token[:len(token)-1] + last
}

// asUser is a client acting as user with groups (and system:authenticated).
func asUser(user string, groups ...string) client.Client {
	GinkgoHelper()
	c, err := env.ClientAs(user, groups...)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// issued waits for the invitation's token and returns it, read from its Secret as the cluster admin.
func issued(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	inv := &tenancyv1alpha1.OrganizationInvitation{}
	Eventually(func(g Gomega) {
		g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, inv)).To(Succeed())
		g.Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationPending))
		g.Expect(inv.Status.TokenSecret).NotTo(BeEmpty())
		g.Expect(meta.IsStatusConditionTrue(inv.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(BeTrue())
	}).Should(Succeed())
	secret := get(ctx, client.ObjectKey{Namespace: ns, Name: inv.Status.TokenSecret}, &corev1.Secret{})
	token := string(secret.Data[tenancyv1alpha1.InvitationTokenKey])
	Expect(invitation.Hash(token)).To(Equal(inv.Status.TokenHash))
	return token
}

// invitationSnapshot records what a redemption could change: invitations, members and Secrets of
// the invitations' organizations.
func invitationSnapshot(ctx context.Context) map[string]string {
	GinkgoHelper()
	out, err := testenv.Versions(ctx, admin, map[string]client.ObjectList{
		"OrganizationInvitation":           &tenancyv1alpha1.OrganizationInvitationList{},
		"OrganizationInvitationRedemption": &tenancyv1alpha1.OrganizationInvitationRedemptionList{},
		"OrganizationMember":               &tenancyv1alpha1.OrganizationMemberList{},
		"Secret":                           &corev1.SecretList{},
	}, func(namespace, _ string) bool { return namespace != "ivy" && namespace != "ivq" && namespace != "" })
	Expect(err).NotTo(HaveOccurred())
	return out
}

// quietInvitations waits until nothing invitationSnapshot records moves for a while: the
// operator writes a new member's status after its creation.
func quietInvitations(ctx context.Context) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		first := invitationSnapshot(ctx)
		time.Sleep(1500 * time.Millisecond)
		g.Expect(testenv.Changed(first, invitationSnapshot(ctx))).To(BeEmpty())
	}, time.Minute).Should(Succeed())
}

// expectRedemptionRefused creates a redemption as user and expects a refusal of the wanted kind
// whose message contains want, and nothing changed.
func expectRedemptionRefused(ctx context.Context, c client.Client, r *tenancyv1alpha1.OrganizationInvitationRedemption, kind func(error) bool, want string) {
	GinkgoHelper()
	before := invitationSnapshot(ctx)
	err := c.Create(ctx, r)
	Expect(err).To(HaveOccurred())
	Expect(kind(err)).To(BeTrue(), "unexpected error kind: %v", err)
	Expect(err.Error()).To(ContainSubstring(want))
	Expect(testenv.Changed(before, invitationSnapshot(ctx))).To(BeEmpty(), "the refused redemption changed the cluster")
}

var _ = Describe("Invitations", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		Expect(admin.Create(ctx, organization("ivy", tenancyv1alpha1.DeletionPolicyCascade))).To(Succeed())
		ivq := organization("ivq", tenancyv1alpha1.DeletionPolicyCascade)
		ivq.Spec.Quotas = &tenancyv1alpha1.Quotas{MaxMembers: ptr(int32(1))}
		Expect(admin.Create(ctx, ivq)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: "ivy"}, &corev1.Namespace{})).To(Succeed())
			g.Expect(admin.Get(ctx, client.ObjectKey{Name: "ivq"}, &corev1.Namespace{})).To(Succeed())
		}).Should(Succeed())
		Expect(admin.Create(ctx, member("ivy", "ian", ian, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(admin.Create(ctx, member("ivy", "eda", eda, true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		Expect(admin.Create(ctx, member("ivy", "mo", mo, false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		Expect(admin.Create(ctx, member("ivq", "quin", quin, true, tenancyv1alpha1.KubernetesRoleAdmin))).To(Succeed())
		Expect(admin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ivy", Name: "mo-invitations"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "orgoperator-editor"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: mo}},
		})).To(Succeed())
		// The admins' rights come from the RoleBinding the operator makes.
		Eventually(func(g Gomega) {
			for _, u := range []string{ian, eda} {
				review := &tenancyv1alpha1.OrganizationInvitationList{}
				g.Expect(asUser(u).List(ctx, review, client.InNamespace("ivy"))).To(Succeed())
			}
			g.Expect(asUser(quin).List(ctx, &tenancyv1alpha1.OrganizationInvitationList{}, client.InNamespace("ivq"))).To(Succeed())
		}).Should(Succeed())
	})

	It("lets an organization admin invite, and issues a one-time token into a Secret the invitation owns", func(ctx SpecContext) {
		before := time.Now()
		Expect(asUser(ian).Create(ctx, invitationFor("ivy", "iris", "iris@ivy.example", false, ""))).To(Succeed())
		token := issued(ctx, "ivy", "iris")
		raw, err := base64.RawURLEncoding.DecodeString(token)
		Expect(err).NotTo(HaveOccurred())
		Expect(raw).To(HaveLen(32))

		inv := get(ctx, client.ObjectKey{Namespace: "ivy", Name: "iris"}, &tenancyv1alpha1.OrganizationInvitation{})
		Expect(inv.Spec.KubernetesRole).To(Equal(tenancyv1alpha1.KubernetesRoleView))
		Expect(inv.Spec.ExpiresAt.Time).To(BeTemporally("~", before.Add(7*24*time.Hour), time.Minute))
		Expect(inv.Status.ObservedGeneration).To(Equal(inv.Generation))
		Expect(inv.Status.TokenHash).NotTo(ContainSubstring(token))
		secret := get(ctx, client.ObjectKey{Namespace: "ivy", Name: inv.Status.TokenSecret}, &corev1.Secret{})
		Expect(secret.Labels).To(HaveKeyWithValue(tenancyv1alpha1.InvitationLabel, "iris"))
		Expect(secret.OwnerReferences).To(ConsistOf(HaveField("UID", inv.UID)))

		// An idle invitation is written no more.
		Consistently(func() string {
			return get(ctx, client.ObjectKey{Namespace: "ivy", Name: "iris"}, &tenancyv1alpha1.OrganizationInvitation{}).ResourceVersion
		}, 2*time.Second).Should(Equal(inv.ResourceVersion))
	})

	DescribeTable("refuses invitations from who may not invite, and changes nothing",
		func(ctx SpecContext, user string, inv *tenancyv1alpha1.OrganizationInvitation, want string) {
			before := invitationSnapshot(ctx)
			err := asUser(user).Create(ctx, inv)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "unexpected error kind: %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(testenv.Changed(before, invitationSnapshot(ctx))).To(BeEmpty())
		},
		Entry("a member who is not an admin", mo, invitationFor("ivy", "x1", "x1@ivy.example", false, ""),
			`user "mo@ivy.example" is not an admin of organization ivy: only its admins and platform admins may create its invitations`),
		Entry("an admin inviting with a kubernetesRole above its own", eda, invitationFor("ivy", "x2", "x2@ivy.example", false, tenancyv1alpha1.KubernetesRoleAdmin),
			`spec.kubernetesRole: Forbidden: user "eda@ivy.example" has kubernetesRole Edit in organization ivy and cannot invite with Admin`),
		Entry("an admin of another organization", quin, invitationFor("ivy", "x3", "x3@ivy.example", false, ""),
			"forbidden"),
		Entry("the email of an existing member", ian, invitationFor("ivy", "x4", "MO@ivy.example", false, ""),
			`spec.email: Duplicate value: "MO@ivy.example (already used by member mo)"`),
		Entry("an expiry in the past", ian, func() *tenancyv1alpha1.OrganizationInvitation {
			inv := invitationFor("ivy", "x5", "x5@ivy.example", false, "")
			inv.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Hour)}
			return inv
		}(), "spec.expiresAt: Invalid value"),
	)

	It("refuses a revocation or deletion by a member who is not an admin", func(ctx SpecContext) {
		Expect(asUser(ian).Create(ctx, invitationFor("ivy", "keep", "keep@ivy.example", false, ""))).To(Succeed())
		issued(ctx, "ivy", "keep")
		inv := get(ctx, client.ObjectKey{Namespace: "ivy", Name: "keep"}, &tenancyv1alpha1.OrganizationInvitation{})
		inv.Spec.Revoked = true
		Expect(asUser(mo).Update(ctx, inv)).To(MatchError(ContainSubstring("may change its invitations")))
		Expect(asUser(mo).Delete(ctx, inv)).To(MatchError(ContainSubstring("may delete its invitations")))
		inv = get(ctx, client.ObjectKey{Namespace: "ivy", Name: "keep"}, &tenancyv1alpha1.OrganizationInvitation{})
		inv.Spec.Email = "other@ivy.example"
		Expect(asUser(ian).Update(ctx, inv)).To(MatchError(ContainSubstring("only spec.revoked may change")))
	})

	It("makes the user who redeems the token, as authenticated, the member, once", func(ctx SpecContext) {
		token := issued(ctx, "ivy", "iris")
		// The redeemer authenticates as "iris", not as the invitation's email.
		Expect(asUser("iris", "team-a").Create(ctx, redemptionOf("ivy", "iris", token))).To(Succeed())
		inv := &tenancyv1alpha1.OrganizationInvitation{}
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "ivy", Name: "iris"}, inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationRedeemed))
			g.Expect(inv.Status.TokenSecret).To(BeEmpty())
		}).Should(Succeed())
		Expect(inv.Status.Member).To(Equal("iris"))
		Expect(inv.Status.RedeemedBy.Username).To(Equal("iris"))
		Expect(inv.Status.RedeemedBy.Groups).To(ConsistOf("system:authenticated", "team-a"))
		Expect(inv.Status.RedeemedAt).NotTo(BeNil())
		Expect(meta.FindStatusCondition(inv.Status.Conditions, tenancyv1alpha1.ReadyCondition)).To(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tenancyv1alpha1.InvitationRedeemedReason)))

		m := get(ctx, client.ObjectKey{Namespace: "ivy", Name: "iris"}, &tenancyv1alpha1.OrganizationMember{})
		Expect(m.Spec).To(Equal(tenancyv1alpha1.OrganizationMemberSpec{
			Email: "iris@ivy.example", Username: "iris", KubernetesRole: tenancyv1alpha1.KubernetesRoleView}))
		Eventually(func(g Gomega) {
			rb := &rbacv1.RoleBinding{}
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "ivy", Name: "org-operator:view"}, rb)).To(Succeed())
			g.Expect(rb.Subjects).To(ContainElement(HaveField("Name", "iris")))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			list := &tenancyv1alpha1.OrganizationInvitationRedemptionList{}
			g.Expect(admin.List(ctx, list)).To(Succeed())
			g.Expect(list.Items).To(BeEmpty())
			secrets := &corev1.SecretList{}
			g.Expect(admin.List(ctx, secrets, client.InNamespace("ivy"), client.MatchingLabels{tenancyv1alpha1.InvitationLabel: "iris"})).To(Succeed())
			g.Expect(secrets.Items).To(BeEmpty())
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			g.Expect(meta.IsStatusConditionTrue(get(ctx, client.ObjectKeyFromObject(m), &tenancyv1alpha1.OrganizationMember{}).Status.Conditions,
				tenancyv1alpha1.ReadyCondition)).To(BeTrue())
		}).Should(Succeed())
		quietInvitations(ctx)

		By("refusing the same token again, whoever presents it")
		expectRedemptionRefused(ctx, asUser("ivan"), redemptionOf("ivy", "iris", token), apierrors.IsInvalid,
			"spec.token: Forbidden: invitation iris of organization ivy was already redeemed; a token works once")
	})

	It("refuses a wrong token, naming the field, and tells the invitation's events", func(ctx SpecContext) {
		token := issued(ctx, "ivy", "keep")
		expectRedemptionRefused(ctx, asUser("wanda"), redemptionOf("ivy", "keep", wrongToken(token)), apierrors.IsInvalid,
			"spec.token: Invalid value: \"(redacted)\": does not match the token of invitation keep of organization ivy")
		expectRedemptionRefused(ctx, asUser("wanda"), redemptionOf("ivy", "nobody", token), apierrors.IsInvalid,
			"spec.invitation: Not found")
		expectRedemptionRefused(ctx, asUser("wanda"), redemptionOf("nowhere", "keep", token), apierrors.IsInvalid,
			"spec.organization: Not found")
		Eventually(func(g Gomega) {
			events := &eventsv1.EventList{}
			g.Expect(admin.List(ctx, events, client.InNamespace("ivy"))).To(Succeed())
			g.Expect(events.Items).To(ContainElement(And(
				HaveField("Regarding.Name", "keep"), HaveField("Reason", tenancyv1alpha1.InvitationRedemptionFailedReason),
				HaveField("Note", ContainSubstring(`by user "wanda"`)))))
		}).Should(Succeed())
	})

	It("limits a user's failed redemptions to 5 a minute, even with the right token after them", func(ctx SpecContext) {
		token := issued(ctx, "ivy", "keep")
		c := asUser("rita")
		for range 5 {
			Expect(c.Create(ctx, redemptionOf("ivy", "keep", "wrong"))).To(MatchError(ContainSubstring("does not match")))
		}
		expectRedemptionRefused(ctx, c, redemptionOf("ivy", "keep", token), apierrors.IsTooManyRequests,
			`user "rita" failed 5 redemptions in the last 1m0s`)
	})

	It("refuses system: identities and members of the organization", func(ctx SpecContext) {
		token := issued(ctx, "ivy", "keep")
		expectRedemptionRefused(ctx, asUser("system:serviceaccount:ivy:default", "system:serviceaccounts"), redemptionOf("ivy", "keep", token),
			apierrors.IsForbidden, `user "system:serviceaccount:ivy:default" is a system: identity`)
		// A member who can read the namespace's Secrets cannot raise itself with a pending token.
		expectRedemptionRefused(ctx, asUser(mo), redemptionOf("ivy", "keep", token), apierrors.IsForbidden,
			`user "mo@ivy.example" is already member mo of organization ivy`)
		// Nor a user who is a member through a group.
		Expect(admin.Create(ctx, groupMember("ivy", "crew", "oidc:ivy-crew", false, tenancyv1alpha1.KubernetesRoleView))).To(Succeed())
		expectRedemptionRefused(ctx, asUser("cy@ivy.example", "oidc:ivy-crew"), redemptionOf("ivy", "keep", token), apierrors.IsForbidden,
			`user "cy@ivy.example" is already member crew of organization ivy`)
	})

	It("lets nobody but the operator read redemptions", func(ctx SpecContext) {
		for _, u := range []string{"iris", ian, mo} {
			err := asUser(u).List(ctx, &tenancyv1alpha1.OrganizationInvitationRedemptionList{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s lists redemptions: %v", u, err)
			err = asUser(u).Get(ctx, client.ObjectKey{Name: "any"}, &tenancyv1alpha1.OrganizationInvitationRedemption{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s gets a redemption: %v", u, err)
		}
	})

	It("expires an invitation at spec.expiresAt, deletes its token and refuses it", func(ctx SpecContext) {
		inv := invitationFor("ivy", "soon", "soon@ivy.example", false, "")
		inv.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(4 * time.Second)}
		Expect(asUser(ian).Create(ctx, inv)).To(Succeed())
		token := issued(ctx, "ivy", "soon")
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "ivy", Name: "soon"}, inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationExpired))
			g.Expect(inv.Status.TokenSecret).To(BeEmpty())
		}, 15*time.Second).Should(Succeed())
		expectRedemptionRefused(ctx, asUser("sonia"), redemptionOf("ivy", "soon", token), apierrors.IsInvalid,
			"spec.token: Forbidden: invitation soon of organization ivy expired at")
	})

	It("revokes an invitation, and refuses its token", func(ctx SpecContext) {
		token := issued(ctx, "ivy", "keep")
		inv := get(ctx, client.ObjectKey{Namespace: "ivy", Name: "keep"}, &tenancyv1alpha1.OrganizationInvitation{})
		inv.Spec.Revoked = true
		Expect(asUser(eda).Update(ctx, inv)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "ivy", Name: "keep"}, inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationRevoked))
			g.Expect(inv.Status.TokenSecret).To(BeEmpty())
		}).Should(Succeed())
		expectRedemptionRefused(ctx, asUser("ravi"), redemptionOf("ivy", "keep", token), apierrors.IsInvalid,
			"spec.token: Forbidden: invitation keep of organization ivy was revoked")
		inv.Spec.Revoked = false
		Expect(asUser(ian).Update(ctx, inv)).To(MatchError(ContainSubstring("spec.revoked cannot be undone")))
	})

	It("accepts exactly one of racing redemptions of one token", func(ctx SpecContext) {
		Expect(asUser(ian).Create(ctx, invitationFor("ivy", "race", "race@ivy.example", true, tenancyv1alpha1.KubernetesRoleEdit))).To(Succeed())
		token := issued(ctx, "ivy", "race")
		const n = 8
		errs := atOnce(n, func(i int) error {
			return clientFor(fmt.Sprintf("racer-%d", i), nil).Create(ctx, redemptionOf("ivy", "race", token))
		})
		var won []int
		for i, err := range errs {
			if err == nil {
				won = append(won, i)
				continue
			}
			Expect(err.Error()).To(ContainSubstring("already redeemed"), "racer-%d", i)
		}
		Expect(won).To(HaveLen(1))
		inv := &tenancyv1alpha1.OrganizationInvitation{}
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "ivy", Name: "race"}, inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationRedeemed))
		}).Should(Succeed())
		Expect(inv.Status.RedeemedBy.Username).To(Equal(fmt.Sprintf("racer-%d", won[0])))
		members := &tenancyv1alpha1.OrganizationMemberList{}
		Expect(admin.List(ctx, members, client.InNamespace("ivy"))).To(Succeed())
		var racers []string
		for _, m := range members.Items {
			if strings.HasPrefix(m.Spec.Username, "racer-") {
				racers = append(racers, m.Spec.Username)
			}
		}
		Expect(racers).To(ConsistOf(inv.Status.RedeemedBy.Username))
		Expect(get(ctx, client.ObjectKey{Namespace: "ivy", Name: "race"}, &tenancyv1alpha1.OrganizationMember{}).Spec.Admin).To(BeTrue())
	})

	It("refuses a redemption that member admission would refuse, and leaves the invitation Pending", func(ctx SpecContext) {
		Expect(asUser(quin).Create(ctx, invitationFor("ivq", "full", "full@ivq.example", false, ""))).To(Succeed())
		token := issued(ctx, "ivq", "full")
		expectRedemptionRefused(ctx, asUser("fred"), redemptionOf("ivq", "full", token), apierrors.IsForbidden,
			"organization ivq has 1 of its maxMembers quota of 1")
		inv := get(ctx, client.ObjectKey{Namespace: "ivq", Name: "full"}, &tenancyv1alpha1.OrganizationInvitation{})
		Expect(inv.Status.Phase).To(Equal(tenancyv1alpha1.InvitationPending))
		Expect(inv.Status.Claim).To(BeNil())
	})
})
