package controllers

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

// NewScheme returns a scheme with the built-in kinds and the operator's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(tenancyv1alpha1.AddToScheme(s))
	return s
}

var ownScheme = NewScheme()

// scheme knows the built-in kinds and this operator's; owner references are computed from it.
func scheme() *runtime.Scheme { return ownScheme }
