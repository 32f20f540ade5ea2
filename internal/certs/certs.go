// Package certs provides the webhook server's certificate when the operator manages it itself: it
// keeps a CA and a serving certificate in a Secret of its namespace, rotates them before they
// expire, and writes the CA into its webhook configurations. With cert-manager, or on a local
// control plane, the certificate files come from outside and this package is not used.
package certs

import (
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options say where the certificate lives and what it serves.
type Options struct {
	// Namespace is the operator's own namespace, where the Secret lives.
	Namespace string
	// SecretName holds the CA and the serving certificate.
	SecretName string
	// ServiceName is the webhook Service; the certificate is issued for its DNS name.
	ServiceName string
	// CertDir is where the webhook server reads tls.crt and tls.key.
	CertDir string
	// MutatingWebhook and ValidatingWebhook name the configurations to inject the CA into.
	MutatingWebhook, ValidatingWebhook string
}

// +kubebuilder:rbac:groups="",namespace=org-operator-system,resources=secrets,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;list;watch
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=update,resourceNames=org-operator-mutating-webhook-configuration;org-operator-validating-webhook-configuration

// Add registers the certificate rotator; ready is closed once the certificate files exist.
func Add(mgr ctrl.Manager, opts Options, ready chan struct{}) error {
	dns := fmt.Sprintf("%s.%s.svc", opts.ServiceName, opts.Namespace)
	err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: opts.Namespace, Name: opts.SecretName},
		CertDir:        opts.CertDir,
		CAName:         "org-operator-ca",
		CAOrganization: "org-operator",
		DNSName:        dns,
		ExtraDNSNames:  []string{dns + ".cluster.local"},
		IsReady:        ready,
		Webhooks: []rotator.WebhookInfo{
			{Name: opts.MutatingWebhook, Type: rotator.Mutating},
			{Name: opts.ValidatingWebhook, Type: rotator.Validating},
		},
		// Every replica serves webhooks, so every replica keeps its files current; the Secret
		// itself is written by whichever replica finds it stale.
		RequireLeaderElection: false,
		FieldOwner:            "org-operator",
	})
	if err != nil {
		return fmt.Errorf("adding the certificate rotator: %w", err)
	}
	return nil
}
