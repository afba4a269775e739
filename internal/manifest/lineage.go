package manifest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// commitRE is a git commit hash: SHA-1, or SHA-256 in a SHA-256 repository.
var commitRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// isSHA256 reports whether s is "sha256:" and 64 lowercase hex digits
// (go-digest's grammar, sha256 only).
func isSHA256(s string) bool {
	h, ok := strings.CutPrefix(s, string(digest.SHA256)+":")
	return ok && digest.SHA256.Validate(h) == nil
}

// LineageError lists what a manifest lacks to tie its version to the code,
// the image and the data that made it.
type LineageError struct {
	// Problems name a field each, e.g. `lineage.gitCommit "unknown" is not a commit hash`.
	Problems []string
}

func (e *LineageError) Error() string {
	return "incomplete lineage: " + strings.Join(e.Problems, "; ")
}

// CheckLineage reports, as a *LineageError, a manifest without a git commit
// hash, an image digest (sha256:<hex>) or a dataset digest: a version
// trained from flags on a workstation rather than by a rendered job.
func (m *Manifest) CheckLineage() error {
	var problems []string
	if !commitRE.MatchString(m.Lineage.GitCommit) {
		problems = append(problems, fmt.Sprintf("lineage.gitCommit %q is not a commit hash", m.Lineage.GitCommit))
	}
	if !isSHA256(m.Lineage.ImageDigest) {
		problems = append(problems, fmt.Sprintf("lineage.imageDigest %q is not sha256:<64 hex>", m.Lineage.ImageDigest))
	}
	if digest.SHA256.Validate(m.Dataset.Digest) != nil {
		problems = append(problems, fmt.Sprintf("dataset.digest %q is not 64 hex digits", m.Dataset.Digest))
	}
	if problems != nil {
		return &LineageError{Problems: problems}
	}
	return nil
}
