package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const (
	retryInterval       = 2 * time.Second
	crdEstablishTimeout = 30 * time.Second
)

func newClient(cfg *rest.Config) (client.Client, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "org-operator-run"
	// The default RESTMapper discovers kinds lazily, so CRDs installed after this call are found.
	return client.New(cfg, client.Options{})
}

// installCRDs server-side applies the CRDs in dir and waits until the API server serves them.
func installCRDs(ctx context.Context, c client.Client, dir string) error {
	crds, err := readManifests(dir)
	if err != nil {
		return err
	}
	if len(crds) == 0 {
		return fmt.Errorf("no CRDs in %s (run `make manifests`)", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, crdEstablishTimeout)
	defer cancel()
	if err := applyAll(ctx, c, crds, crdFieldOwner); err != nil {
		return err
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, c, crd.GetName()); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, c client.Client, name string) error {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	for {
		if err := c.Get(ctx, types.NamespacedName{Name: name}, crd); err == nil {
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, cond := range conds {
				if m, ok := cond.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s is not established: %w", name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// applyAll server-side applies objs. Objects whose namespace or kind does not exist yet (an
// organization's home namespace is created by the operator), or that a webhook could not admit
// yet (the manager's webhook server is still starting), are retried until ctx is done. Invalid
// objects fail at once.
func applyAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, owner string) error {
	var failed []error
	pending := objs
	for len(pending) > 0 {
		var retry []*unstructured.Unstructured
		var retryErrs []error
		for _, obj := range pending {
			err := applyOne(ctx, c, obj, owner)
			switch {
			case err == nil:
				logf("Applied %s", describe(obj))
			case apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || apierrors.IsInternalError(err):
				retry = append(retry, obj)
				retryErrs = append(retryErrs, fmt.Errorf("%s: %w", describe(obj), err))
			default:
				failed = append(failed, fmt.Errorf("%s: %w", describe(obj), err))
			}
		}
		if len(retry) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			failed = append(failed, retryErrs...)
			return errors.Join(failed...)
		case <-time.After(retryInterval):
		}
		pending = retry
	}
	return errors.Join(failed...)
}

func applyOne(ctx context.Context, c client.Client, obj *unstructured.Unstructured, owner string) error {
	obj = obj.DeepCopy()
	gvk := obj.GroupVersionKind()
	mapping, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace && obj.GetNamespace() == "" {
		obj.SetNamespace("default") // as kubectl does
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(owner), client.ForceOwnership)
}

func describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return obj.GetKind() + " " + name
}

// readManifests returns the objects in the YAML files of dir: those its kustomization.yaml lists
// under resources (directories are read the same way), or else every *.yaml and *.yml file.
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := manifestFiles(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		var more []*unstructured.Unstructured
		if info.IsDir() {
			more, err = readManifests(f)
		} else {
			more, err = decodeFile(f)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	return objs, nil
}

func manifestFiles(dir string) ([]string, error) {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		var files []string
		for _, r := range k.Resources {
			if strings.Contains(r, "://") {
				logf("Skipping remote resource %s in %s", r, filepath.Join(dir, name))
				continue
			}
			files = append(files, filepath.Join(dir, r))
		}
		return files, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || strings.HasPrefix(e.Name(), "kustomization.") {
			continue
		}
		files = append(files, filepath.Join(dir, e.Name()))
	}
	sort.Strings(files)
	return files, nil
}

// decodeFile decodes every YAML (or JSON) document of a file, expanding Lists.
func decodeFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := k8syaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(m) == 0 {
			continue // an empty document, e.g. after a trailing ---
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s: a document has no kind or apiVersion", path)
		}
		if !u.IsList() {
			objs = append(objs, u)
			continue
		}
		err := u.EachListItem(func(item runtime.Object) error {
			objs = append(objs, item.(*unstructured.Unstructured))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
}
