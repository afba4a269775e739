// Package buildinfo reports what a binary was built from, for the
// --version flags of aerie, the trainer and the edge agent.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime/debug"
)

// Info is a binary's version: the module version go build stamps from a
// git tag ("(devel)" otherwise), and the VCS revision it was built from.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)"}
	}
	info := Info{Version: cmp.Or(bi.Main.Version, "(devel)"), GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one-line form --version prints: "v1.2.0 (0123abc, 2026-12-01T10:00:00Z, go1.26.5)".
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	rev = cmp.Or(rev, "unknown revision")
	if i.Modified {
		rev += "+dirty"
	}
	if i.Time != "" {
		rev += ", " + i.Time
	}
	return fmt.Sprintf("%s (%s, %s)", i.Version, rev, i.GoVersion)
}
