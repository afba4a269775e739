package manifests

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/kustomize"
	"github.com/fluxcd/pkg/sourceignore"
	"github.com/fluxcd/pkg/sourceignore/gitignore"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Object is one object a Flux Kustomization would apply.
type Object struct {
	// AppliedBy is the namespace/name of the Flux Kustomization that
	// applies it.
	AppliedBy                         string
	APIVersion, Kind, Namespace, Name string
	// YAML is the object after build and post-build substitution.
	YAML []byte
}

// ID is "Kind namespace/name" (or "Kind name" when cluster-scoped).
func (o Object) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Decode unmarshals the object into a typed value.
func (o Object) Decode(into any) error {
	return yaml.UnmarshalStrict(o.YAML, into)
}

// Flux renders Kustomizations the way kustomize-controller does: the source
// content filtered by the GitRepository's ignore rules, a kustomization.yaml
// generated or amended from the Kustomization's spec (patches, images,
// namespace), built with plugins off, then post-build variable substitution.
// Substitution here is strict: a variable without a value or default is an
// error rather than an empty string.
type Flux struct {
	// Sources maps a GitRepository's namespace/name to a directory holding
	// the content its artifact would have.
	Sources map[string]string
	// Vars maps "Secret/<namespace>/<name>" or "ConfigMap/<namespace>/<name>"
	// to the data a Kustomization's postBuild.substituteFrom would read.
	Vars map[string]map[string]string
}

// Tree renders root and, recursively, every Flux Kustomization it applies
// (each once), returning all objects in the order they were rendered. The
// GitRepositories the tree declares must be in f.Sources.
func (f *Flux) Tree(ctx context.Context, root *kustomizev1.Kustomization) ([]Object, error) {
	var all []Object
	repos := map[string]*sourcev1.GitRepository{}
	seen := map[string]bool{}
	queue := []*kustomizev1.Kustomization{root}
	for len(queue) > 0 {
		ks := queue[0]
		queue = queue[1:]
		key := ks.Namespace + "/" + ks.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		objs, err := f.Build(ctx, ks, repos)
		if err != nil {
			return nil, err
		}
		all = append(all, objs...)
		for _, o := range objs {
			switch {
			case o.APIVersion == sourcev1.GroupVersion.String() && o.Kind == sourcev1.GitRepositoryKind:
				var r sourcev1.GitRepository
				if err := o.Decode(&r); err != nil {
					return nil, fmt.Errorf("%s: %w", o.ID(), err)
				}
				repos[r.Namespace+"/"+r.Name] = &r
			case o.APIVersion == kustomizev1.GroupVersion.String() && o.Kind == kustomizev1.KustomizationKind:
				var k kustomizev1.Kustomization
				if err := o.Decode(&k); err != nil {
					return nil, fmt.Errorf("%s: %w", o.ID(), err)
				}
				queue = append(queue, &k)
			}
		}
	}
	return all, nil
}

// Build renders one Kustomization. repos holds the GitRepositories seen so
// far, for their ignore rules; a source missing from it is used unfiltered.
func (f *Flux) Build(ctx context.Context, ks *kustomizev1.Kustomization, repos map[string]*sourcev1.GitRepository) ([]Object, error) {
	id := "Kustomization " + ks.Namespace + "/" + ks.Name
	ref := ks.Spec.SourceRef
	ns := ref.Namespace
	if ns == "" {
		ns = ks.Namespace
	}
	srcKey := ns + "/" + ref.Name
	if ref.Kind != sourcev1.GitRepositoryKind {
		return nil, fmt.Errorf("%s: sourceRef kind %q: only GitRepository is rendered here", id, ref.Kind)
	}
	srcDir, ok := f.Sources[srcKey]
	if !ok {
		return nil, fmt.Errorf("%s: no content for GitRepository %s", id, srcKey)
	}
	var ignore []gitignore.Pattern
	ignore = append(ignore, sourceignore.VCSPatterns(nil)...)
	if r := repos[srcKey]; r != nil && r.Spec.Ignore != nil {
		ignore = append(ignore, sourceignore.ReadPatterns(strings.NewReader(*r.Spec.Ignore), nil)...)
	}
	// kustomize-controller works on a fresh extract of the artifact and
	// writes kustomization.yaml into it; so does this, in a temporary copy.
	work, err := os.MkdirTemp("", "flux-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := copyTree(srcDir, work, sourceignore.NewMatcher(ignore)); err != nil {
		return nil, fmt.Errorf("%s: copy source %s: %w", id, srcKey, err)
	}
	dir := filepath.Join(work, filepath.FromSlash(strings.TrimPrefix(ks.Spec.Path, "./")))
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%s: spec.path %q: %w", id, ks.Spec.Path, err)
	}

	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ks)
	if err != nil {
		return nil, err
	}
	ksU := unstructured.Unstructured{Object: u}
	if _, err := kustomize.NewGenerator(work, ksU).WriteFile(dir); err != nil {
		return nil, fmt.Errorf("%s: generate kustomization.yaml: %w", id, err)
	}
	resMap, err := kustomize.SecureBuild(work, dir, false)
	if err != nil {
		return nil, fmt.Errorf("%s: build %s: %w", id, ks.Spec.Path, err)
	}

	var subst *unstructured.Unstructured
	if ks.Spec.PostBuild != nil {
		vars, err := f.vars(ks)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		c := ks.DeepCopy()
		c.Spec.PostBuild.Substitute = vars
		c.Spec.PostBuild.SubstituteFrom = nil
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		if err != nil {
			return nil, err
		}
		subst = &unstructured.Unstructured{Object: u}
	}

	var out []Object
	for _, res := range resMap.Resources() {
		if subst != nil {
			r, err := kustomize.SubstituteVariables(ctx, nil, *subst, res,
				kustomize.SubstituteWithDryRun(true), kustomize.SubstituteWithAlways(true), kustomize.SubstituteWithStrict(true))
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", id, res.GetKind(), res.GetName(), err)
			}
			if r != nil {
				res = r
			}
		}
		data, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		out = append(out, Object{
			AppliedBy:  ks.Namespace + "/" + ks.Name,
			APIVersion: res.GetApiVersion(),
			Kind:       res.GetKind(),
			Namespace:  res.GetNamespace(),
			Name:       res.GetName(),
			YAML:       data,
		})
	}
	return out, nil
}

// vars resolves postBuild.substituteFrom from f.Vars, then the inline
// substitute values, which win (as in kustomize-controller).
func (f *Flux) vars(ks *kustomizev1.Kustomization) (map[string]string, error) {
	vars := map[string]string{}
	for _, ref := range ks.Spec.PostBuild.SubstituteFrom {
		key := ref.Kind + "/" + ks.Namespace + "/" + ref.Name
		data, ok := f.Vars[key]
		if !ok {
			if ref.Optional {
				continue
			}
			return nil, fmt.Errorf("postBuild.substituteFrom: %s not found (and not optional)", key)
		}
		for k, v := range data {
			vars[k] = v
		}
	}
	for k, v := range ks.Spec.PostBuild.Substitute {
		vars[k] = v
	}
	return vars, nil
}

// copyTree copies the regular files of src into dst, skipping what m
// ignores, like a source-controller artifact.
func copyTree(src, dst string, m gitignore.Matcher) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		if m.Match(strings.Split(filepath.ToSlash(rel), "/"), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
