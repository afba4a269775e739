// Package repo finds the root of the aerie repository a command runs in,
// so that aerie works from any of its directories.
package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotFound is returned when no directory above the start holds a
// repository.
var ErrNotFound = errors.New("not inside an aerie repository")

// Find walks up from start to the first directory holding .git (a
// directory, or a file in a worktree) and apps/jobs: the repository root.
func Find(start string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		if exists(filepath.Join(dir, ".git")) && isDir(filepath.Join(dir, "apps", "jobs")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no directory from %s up holds .git and apps/jobs/ (pass --repo)", ErrNotFound, start)
		}
		dir = parent
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}
