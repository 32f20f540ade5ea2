// Package validation holds the checks that admission applies beyond the CRD schema. They are pure
// functions of their input, so that they can be table-tested and fuzzed without an API server.
package validation

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"

	k8svalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	tenancyv1alpha1 "github.com/orgoperator/org-operator/api/v1alpha1"
)

var organizationName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// OrganizationName checks an organization's name: a DNS label that starts with a letter and is not
// reserved. The home namespace takes this name.
func OrganizationName(name string) field.ErrorList {
	p := field.NewPath("metadata", "name")
	switch {
	case len(name) == 0:
		return field.ErrorList{field.Required(p, "an organization needs a name")}
	case len(name) > 63:
		return field.ErrorList{field.TooLong(p, name, 63)}
	case !organizationName.MatchString(name):
		return field.ErrorList{field.Invalid(p, name, "must consist of lowercase letters, digits and '-', start with a letter and end with a letter or digit")}
	case tenancyv1alpha1.IsReservedName(name):
		return field.ErrorList{field.Forbidden(p, fmt.Sprintf("%q is reserved for the system", name))}
	}
	return nil
}

// Email checks an address as RFC 5322 does, without a display name, and with a dot in its domain.
func Email(p *field.Path, email string) field.ErrorList {
	if len(email) > 254 {
		return field.ErrorList{field.TooLong(p, email, 254)}
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return field.ErrorList{field.Invalid(p, email, "must be a plain email address such as alice@example.com")}
	}
	at := strings.LastIndexByte(email, '@')
	domain := email[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return field.ErrorList{field.Invalid(p, email, "the domain must be a fully qualified name such as example.com")}
	}
	return nil
}

// NormalizeEmail is the form in which emails are compared: unique per organization, whatever the case.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Subscription checks the dates of a subscription.
func Subscription(s *tenancyv1alpha1.Subscription) field.ErrorList {
	if s == nil {
		return nil
	}
	p := field.NewPath("spec", "subscription")
	if s.StartDate != nil && s.EndDate != nil && !s.EndDate.After(s.StartDate.Time) {
		return field.ErrorList{field.Invalid(p.Child("endDate"), s.EndDate.UTC().Format("2006-01-02T15:04:05Z"), "must be after spec.subscription.startDate")}
	}
	return nil
}

// Member checks a member's fields beyond the schema: it is exactly one identity, and none of the
// system's.
func Member(m *tenancyv1alpha1.OrganizationMember) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	kinds := 0
	if m.Spec.Email != "" {
		kinds++
		errs = append(errs, Email(spec.Child("email"), m.Spec.Email)...)
	}
	if m.Spec.Group != "" {
		kinds++
		errs = append(errs, identityName(spec.Child("group"), m.Spec.Group, "groups")...)
	}
	if sa := m.Spec.ServiceAccount; sa != nil {
		kinds++
		p := spec.Child("serviceAccount")
		for _, msg := range k8svalidation.IsDNS1123Label(sa.Namespace) {
			errs = append(errs, field.Invalid(p.Child("namespace"), sa.Namespace, msg))
		}
		for _, msg := range k8svalidation.IsDNS1123Subdomain(sa.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), sa.Name, msg))
		}
	}
	if kinds != 1 {
		errs = append(errs, field.Invalid(spec, "", "a member is exactly one of: a user (email), a group (group) or a service account (serviceAccount)"))
	}
	if u := m.Spec.Username; u != "" {
		if m.Spec.Email == "" {
			errs = append(errs, field.Forbidden(spec.Child("username"), "username names a user member and needs email"))
		}
		errs = append(errs, identityName(spec.Child("username"), u, "identities")...)
	}
	switch m.Spec.KubernetesRole {
	case tenancyv1alpha1.KubernetesRoleAdmin, tenancyv1alpha1.KubernetesRoleEdit, tenancyv1alpha1.KubernetesRoleView, tenancyv1alpha1.KubernetesRoleNone, "":
	default:
		errs = append(errs, field.NotSupported(spec.Child("kubernetesRole"), m.Spec.KubernetesRole,
			[]tenancyv1alpha1.KubernetesRole{"Admin", "Edit", "View", "None"}))
	}
	return errs
}

// identityName checks a user or group name: none of the system's, and no white space around it or
// control characters in it, which would make it look like another.
func identityName(p *field.Path, name, what string) field.ErrorList {
	var errs field.ErrorList
	if strings.HasPrefix(name, "system:") {
		errs = append(errs, field.Forbidden(p, fmt.Sprintf("system: %s cannot be organization members", what)))
	}
	if strings.TrimSpace(name) != name || strings.ContainsAny(name, "\n\r\t") {
		errs = append(errs, field.Invalid(p, name, "must not contain surrounding white space or control characters"))
	}
	return errs
}

// ProjectNamespace is the namespace a project gets when it names none: <home>-<project>, home
// being the home namespace the project lives in, named after its organization. It is "" when that
// is no valid namespace name (longer than 63 characters, or a project name with a dot).
func ProjectNamespace(home, project string) string {
	name := home + "-" + project
	if len(k8svalidation.IsDNS1123Label(name)) > 0 {
		return ""
	}
	return name
}

// Project checks a new project's fields beyond the schema: it has a namespace (the default one
// could not be made) and that namespace is not kept for the system.
func Project(p *tenancyv1alpha1.OrganizationProject) field.ErrorList {
	path := field.NewPath("spec", "namespace")
	switch ns := p.Spec.Namespace; {
	case ns == "":
		return field.ErrorList{field.Required(path, fmt.Sprintf(
			"the default, %s-%s, is not a valid namespace name (at most 63 lowercase letters, digits and '-'): set a shorter spec.namespace", p.Namespace, p.Name))}
	case tenancyv1alpha1.IsReservedName(ns):
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf("%q is reserved for the system", ns))}
	}
	return nil
}
