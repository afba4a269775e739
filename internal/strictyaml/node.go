package strictyaml

import (
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// fieldNameRE is a key that can stand in a field path as it is.
var fieldNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// IsFieldName reports whether key can be named in a field path as it is;
// other keys are quoted in the message instead.
func IsFieldName(key string) bool { return len(key) <= MaxQuote && fieldNameRE.MatchString(key) }

// Join returns the field path of name inside path.
func Join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Describe says what n is, for an error message: "a mapping", "null", 3,
// "a quoted string".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (*" + Shorten(n.Value) + ")"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!int", "!!float", "!!bool":
			return Shorten(n.Value)
		}
		return Quote(n.Value)
	}
	return "nothing"
}

// IsScalar reports whether n is a scalar with one of tags.
func IsScalar(n *yaml.Node, tags ...string) bool {
	return n.Kind == yaml.ScalarNode && slices.Contains(tags, n.Tag)
}
