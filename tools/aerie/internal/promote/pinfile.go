package promote

import (
	"bytes"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/aerie-ml/aerie/internal/pins"
)

// setPin rewrites the track ("stable" or "canary") of the pin file data to
// ver, editing yaml.v3 nodes so that comments and key order survive. A
// canary percent of 0 removes the canary block; promoting to stable also
// removes a canary that pins the same manifest.
func setPin(filename string, data []byte, track string, ver pins.Version, percent int) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a YAML mapping", filename)
	}
	root := doc.Content[0]
	switch track {
	case "stable":
		setFields(mapping(root, "stable"), ver, -1)
		if canary := lookup(root, "canary"); canary != nil {
			if d := lookup(canary, "manifestDigest"); d != nil && d.Value == ver.ManifestDigest {
				remove(root, "canary")
			}
		}
	case "canary":
		setFields(mapping(root, "canary"), ver, percent)
	default:
		return nil, fmt.Errorf("track %q: want stable or canary", track)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, err := pins.Parse(filename, out.Bytes()); err != nil {
		return nil, fmt.Errorf("edited pin file does not validate: %w", err)
	}
	return out.Bytes(), nil
}

func setFields(m *yaml.Node, ver pins.Version, percent int) {
	setScalar(m, "uri", ver.URI, "!!str")
	setScalar(m, "manifestDigest", ver.ManifestDigest, "!!str")
	setScalar(m, "minSelfTestAccuracy", strconv.FormatFloat(ver.MinSelfTestAccuracy, 'f', -1, 64), "!!float")
	if percent >= 0 {
		setScalar(m, "percent", strconv.Itoa(percent), "!!int")
	}
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapping returns m[key], adding an empty mapping at the end if absent.
func mapping(m *yaml.Node, key string) *yaml.Node {
	if v := lookup(m, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	remove(m, key)
	v := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
	return v
}

func setScalar(m *yaml.Node, key, value, tag string) {
	if v := lookup(m, key); v != nil && v.Kind == yaml.ScalarNode {
		v.Value, v.Tag, v.Style = value, tag, 0
		return
	}
	remove(m, key)
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value})
}

func remove(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
