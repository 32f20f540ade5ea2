package controlplane

import (
	"context"
	"fmt"
	"os"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreateClusterRoles creates every ClusterRole of a YAML file, such as config/rbac/role.yaml,
// and skips its other objects (the namespaced Roles there are the webhook certificate's).
func CreateClusterRoles(ctx context.Context, c client.Client, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		role := &rbacv1.ClusterRole{}
		if err := dec.Decode(role); err != nil {
			break
		}
		if role.Kind != "ClusterRole" || role.Name == "" {
			continue
		}
		if err := c.Create(ctx, role); err != nil {
			return fmt.Errorf("creating ClusterRole %s from %s: %w", role.Name, path, err)
		}
	}
	return nil
}
