// Package manifests builds the repository's Kustomize trees the way Flux's
// kustomize-controller does and validates every resulting object against the
// real schema of its kind: built-in kinds and Flux kinds by strict decoding
// into their Go API types (unknown fields and wrong types are errors), kinds
// defined by a CustomResourceDefinition (Kubeflow's PyTorchJob) by the CRD's
// structural schema, as the API server would with fieldValidation=Strict.
package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

// Validator validates objects by kind. The zero value is not usable; call
// NewValidator.
type Validator struct {
	decoder runtime.Decoder
	scheme  *runtime.Scheme
	crds    map[schema.GroupVersionKind]crdSchema
}

type crdSchema struct {
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
}

// NewValidator returns a validator that knows the built-in Kubernetes kinds,
// CustomResourceDefinitions, and Flux's GitRepository and Kustomization.
func NewValidator() (*Validator, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiextensionsv1.AddToScheme,
		sourcev1.AddToScheme,
		kustomizev1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return &Validator{
		decoder: serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer(),
		scheme:  s,
		crds:    map[schema.GroupVersionKind]crdSchema{},
	}, nil
}

// AddCRD makes the validator check custom resources of every served version
// of crd (a CustomResourceDefinition in YAML or JSON) against its schema.
func (v *Validator) AddCRD(data []byte) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := v.decodeStrict(data, &crd); err != nil {
		return fmt.Errorf("decode CustomResourceDefinition: %w", err)
	}
	for _, ver := range crd.Spec.Versions {
		if !ver.Served || ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return fmt.Errorf("crd %s %s: convert schema: %w", crd.Name, ver.Name, err)
		}
		st, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return fmt.Errorf("crd %s %s: not a structural schema: %w", crd.Name, ver.Name, err)
		}
		val, _, err := validation.NewSchemaValidator(&internal)
		if err != nil {
			return fmt.Errorf("crd %s %s: %w", crd.Name, ver.Name, err)
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}
		v.crds[gvk] = crdSchema{structural: st, validator: val}
	}
	return nil
}

// Validate checks one object (YAML or JSON). The error names the object and
// every offending field.
func (v *Validator) Validate(data []byte) error {
	js, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	var tm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	gvk := tm.GroupVersionKind()
	id := gvk.Kind + " " + tm.Metadata.Name
	if tm.Metadata.Namespace != "" {
		id = gvk.Kind + " " + tm.Metadata.Namespace + "/" + tm.Metadata.Name
	}
	if gvk.Kind == "" || gvk.Version == "" {
		return fmt.Errorf("%s: apiVersion and kind are required", id)
	}
	if tm.Metadata.Name == "" {
		return fmt.Errorf("%s: metadata.name is required", id)
	}
	if s, ok := v.crds[gvk]; ok {
		if err := v.validateCustom(js, s); err != nil {
			return fmt.Errorf("%s (%s): %w", id, gvk.GroupVersion(), err)
		}
		return nil
	}
	if !v.scheme.Recognizes(gvk) {
		return fmt.Errorf("%s: no schema for %s: neither a built-in or Flux kind nor defined by a known CRD", id, gvk)
	}
	obj, err := v.scheme.New(gvk)
	if err != nil {
		return err
	}
	if err := v.decodeStrict(js, obj); err != nil {
		return fmt.Errorf("%s (%s): %w", id, gvk.GroupVersion(), err)
	}
	return nil
}

// decodeStrict decodes data into into, failing on unknown and duplicate
// fields as well as on wrongly typed values.
func (v *Validator) decodeStrict(data []byte, into runtime.Object) error {
	_, _, err := v.decoder.Decode(data, nil, into)
	return err
}

func (v *Validator) validateCustom(js []byte, s crdSchema) error {
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil {
		return err
	}
	// metadata is the API server's, not the CRD's: check it as ObjectMeta.
	if md, ok := obj["metadata"]; ok {
		mdJSON, _ := json.Marshal(md)
		var om metav1.ObjectMeta
		dec := json.NewDecoder(strings.NewReader(string(mdJSON)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&om); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
	}
	var errs []string
	for _, e := range validation.ValidateCustomResource(field.NewPath(""), obj, s.validator) {
		errs = append(errs, strings.TrimPrefix(e.Error(), "<nil>."))
	}
	// Pruning is how the API server finds fields the schema does not
	// declare; with fieldValidation=Strict each one is an error.
	unknown := pruning.PruneWithOptions(obj, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	sort.Strings(unknown)
	for _, p := range unknown {
		errs = append(errs, fmt.Sprintf("unknown field %q", p))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}
