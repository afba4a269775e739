package dataset

import "fmt"

// CheckClasses checks a list of class names as Parse does: 1 to MaxClasses
// names, each non-empty, at most MaxClassName bytes of UTF-8 without
// control characters or surrounding white space, none repeated. A model
// version's classes are a dataset's, so internal/manifest checks them here.
func CheckClasses(classes []string) error {
	if n := len(classes); n < 1 || n > MaxClasses {
		return fmt.Errorf("%d classes, want 1 to %d", n, MaxClasses)
	}
	seen := make(map[string]int, len(classes))
	for i, c := range classes {
		if err := checkClassName(c); err != nil {
			return fmt.Errorf("classes[%d] %q: %v", i, short(c), err)
		}
		if j, dup := seen[c]; dup {
			return fmt.Errorf("classes[%d] %q repeats classes[%d]", i, c, j)
		}
		seen[c] = i
	}
	return nil
}

// CheckClass checks one class name as CheckClasses does.
func CheckClass(name string) error { return checkClassName(name) }
