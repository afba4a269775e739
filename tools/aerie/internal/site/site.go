// Package site builds aerie's web view: a static site of the runs and
// their model versions, comparisons of two versions, and each fleet's pins,
// devices and rollout. It is plain files with relative links, so it opens
// from a directory and publishes as a bucket website as it is; building it
// reads only the repository and the stores, so it can run in CI after every
// merge and on a schedule.
package site

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/aerie-ml/aerie/internal/chart"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/tools/aerie/internal/fleet"
	"github.com/aerie-ml/aerie/tools/aerie/internal/registry"
)

//go:embed site.html.tmpl
var pageTemplate string

// MaxComparedVersions: runs with more versions get a comparison page for
// each version against the one before it only, not for every pair.
const MaxComparedVersions = 8

// Options say what to build from and where. Repo and Out are required.
type Options struct {
	Repo string
	// Store overrides every run's spec.output.uri ("": each run's own).
	Store string
	// StatusStore is where devices upload status ("": fleets show their
	// pins only).
	StatusStore string
	Out         string
	Now         func() time.Time
}

// Page is one written page, relative to Out.
type Page struct {
	Path, Title string
}

// Build writes the site into o.Out and returns its pages.
func Build(ctx context.Context, o Options) ([]Page, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	b := &builder{o: o, now: now()}
	runs, err := b.runs(ctx)
	if err != nil {
		return nil, err
	}
	fleets, err := b.fleets(ctx, runs)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	b.write("index.html", "Runs and fleets", "index", map[string]any{"Runs": runs, "Fleets": fleets})
	for _, r := range runs {
		b.write(runPage(r.Name), "Run "+r.Name, "run", r)
		for _, v := range r.Versions {
			b.write(versionPage(r.Name, v.Manifest.Version), r.Name+"/"+v.Manifest.Version, "version", versionView(r, v))
		}
		for _, c := range r.Compares {
			b.write(c.Page, fmt.Sprintf("%s: %s vs %s", r.Name, c.A.Manifest.Version, c.B.Manifest.Version), "compare", c)
		}
	}
	for _, f := range fleets {
		b.write(fleetPage(f.Name), "Fleet "+f.Name, "fleet", f)
	}
	return b.pages, b.err
}

type builder struct {
	o     Options
	now   time.Time
	pages []Page
	err   error
}

// Run is a run and its versions, newest first.
type Run struct {
	Name     string
	Store    string
	Classes  []string
	Versions []registry.Version
	Compares []Compare
	Err      string
}

// Compare is a page comparing versions A (older) and B.
type Compare struct {
	Run     string
	Page    string
	A, B    registry.Version
	Classes []registry.ClassDelta
	Curves  template.HTML
	ConfA   template.HTML
	ConfB   template.HTML
}

func (b *builder) runs(ctx context.Context) ([]Run, error) {
	t, err := repofile.Open(b.o.Repo)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	entries, err := t.ReadDir("apps/jobs/runs")
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		file := path.Join("apps/jobs/runs", e.Name())
		data, err := t.ReadFile(file, runspec.MaxBytes)
		if err != nil {
			return nil, err
		}
		spec, err := runspec.Parse(t.Path(file), data)
		if err != nil {
			return nil, err
		}
		r := Run{Name: name, Store: spec.TeamStore(b.o.Store)}
		// A store the builder cannot read is shown on the page, not fatal:
		// one run's bucket must not hide the others.
		if err := b.versions(ctx, &r); err != nil {
			r.Err = err.Error()
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func (b *builder) versions(ctx context.Context, r *Run) error {
	s, err := store.Open(ctx, r.Store)
	if err != nil {
		return err
	}
	defer s.Close()
	if r.Versions, err = registry.List(ctx, s, r.Name); err != nil {
		return err
	}
	for _, v := range r.Versions {
		if len(v.Manifest.Model.Classes) > len(r.Classes) {
			r.Classes = v.Manifest.Model.Classes
		}
	}
	vs := r.Versions
	for i := 0; i+1 < len(vs); i++ {
		last := len(vs)
		if len(vs) > MaxComparedVersions {
			last = i + 2
		}
		for j := i + 1; j < last; j++ {
			r.Compares = append(r.Compares, compare(r.Name, vs[j], vs[i]))
		}
	}
	return nil
}

func compare(run string, a, b registry.Version) Compare {
	la, lb := "A "+a.Manifest.Version[:7], "B "+b.Manifest.Version[:7]
	return Compare{
		Run: run, Page: comparePage(run, a.Manifest.Version, b.Manifest.Version), A: a, B: b,
		Classes: registry.Compare(a.Manifest, b.Manifest),
		Curves:  chart.Curves([]manifest.Metrics{a.Manifest.Metrics, b.Manifest.Metrics}, []string{la, lb}),
		ConfA:   chart.Confusion(a.Manifest.Metrics.Confusion, a.Manifest.Model.Classes),
		ConfB:   chart.Confusion(b.Manifest.Metrics.Confusion, b.Manifest.Model.Classes),
	}
}

// Version is the data of a version page.
type Version struct {
	Run       string
	V         registry.Version
	Classes   []ClassRow
	Curves    template.HTML
	Confusion template.HTML
	Compares  []Compare
}

// ClassRow is one class of a version.
type ClassRow struct {
	Name     string
	Accuracy float64
}

func versionView(r Run, v registry.Version) Version {
	m := v.Manifest
	out := Version{Run: r.Name, V: v,
		Curves:    chart.Curves([]manifest.Metrics{m.Metrics}, nil),
		Confusion: chart.Confusion(m.Metrics.Confusion, m.Model.Classes)}
	for i, acc := range m.Metrics.ClassAccuracy {
		name := fmt.Sprint(i)
		if i < len(m.Model.Classes) {
			name = m.Model.Classes[i]
		}
		out.Classes = append(out.Classes, ClassRow{name, acc})
	}
	for _, c := range r.Compares {
		if c.A.Manifest.Version == m.Version || c.B.Manifest.Version == m.Version {
			out.Compares = append(out.Compares, c)
		}
	}
	return out
}

// Fleet is the data of a fleet page.
type Fleet struct {
	Name   string
	Report *fleet.Report
	// ByVersion groups the devices by the version they run.
	ByVersion []VersionGroup
	Err       string
	// Links maps a run/version to its page, for the versions the site has.
	Links map[string]string
}

// VersionGroup is the devices running one version.
type VersionGroup struct {
	Version string
	Devices []fleet.Device
}

func (b *builder) fleets(ctx context.Context, runs []Run) ([]Fleet, error) {
	names, err := fleet.Fleets(b.o.Repo)
	if err != nil {
		return nil, err
	}
	links := map[string]string{}
	for _, r := range runs {
		for _, v := range r.Versions {
			links[r.Name+"/"+v.Manifest.Version] = versionPage(r.Name, v.Manifest.Version)
		}
	}
	var status store.Store
	if b.o.StatusStore != "" {
		if status, err = store.Open(ctx, b.o.StatusStore); err != nil {
			return nil, err
		}
		defer status.Close()
	}
	var out []Fleet
	for _, name := range names {
		p, err := fleet.ReadPins(b.o.Repo, name)
		if err != nil {
			return nil, err
		}
		f := Fleet{Name: name, Links: links, Report: fleet.Join(p, nil)}
		if status == nil {
			f.Err = "no status store given (aerie site build --status-store): devices not shown"
		} else if rep, err := fleet.Status(ctx, p, status); err != nil {
			f.Err = err.Error()
		} else {
			f.Report = rep
		}
		groups := map[string]*VersionGroup{}
		for _, d := range f.Report.Devices {
			key := cmp.Or(d.Version, "none")
			if groups[key] == nil {
				groups[key] = &VersionGroup{Version: key}
			}
			groups[key].Devices = append(groups[key].Devices, d)
		}
		for _, g := range groups {
			f.ByVersion = append(f.ByVersion, *g)
		}
		slices.SortFunc(f.ByVersion, func(a, b VersionGroup) int { return cmp.Compare(a.Version, b.Version) })
		out = append(out, f)
	}
	return out, nil
}

func runPage(run string) string              { return "run-" + run + ".html" }
func versionPage(run, version string) string { return "version-" + run + "-" + version + ".html" }
func comparePage(run, a, b string) string    { return "compare-" + run + "-" + a + "-" + b + ".html" }
func fleetPage(name string) string           { return "fleet-" + name + ".html" }

var funcs = template.FuncMap{
	"pct":         func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"delta":       func(f float64) string { return fmt.Sprintf("%+.2f", 100*f) },
	"date":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"runPage":     runPage,
	"versionPage": versionPage,
	"fleetPage":   fleetPage,
	"short":       func(s string) string { return s[:min(len(s), 19)] },
	"failed":      func(g []manifest.GateResult) int { return len(manifest.Failed(g)) },
	"classAcc": func(m *manifest.Manifest, class string) string {
		if i := slices.Index(m.Model.Classes, class); i >= 0 && i < len(m.Metrics.ClassAccuracy) {
			return fmt.Sprintf("%.1f", 100*m.Metrics.ClassAccuracy[i])
		}
		return "–"
	},
	"percentOf": func(n, total int) string {
		if total == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(total))
	},
	"ago": func(now time.Time, t *time.Time) string {
		if t == nil {
			return "never"
		}
		return now.Sub(*t).Round(time.Second).String() + " ago"
	},
}

var pages = template.Must(template.New("site").Funcs(funcs).Parse(pageTemplate))

func (b *builder) write(name, title, body string, data any) {
	if b.err != nil {
		return
	}
	var sb strings.Builder
	err := pages.ExecuteTemplate(&sb, "page", map[string]any{"Title": title, "Body": body, "Data": data, "Now": b.now})
	if err == nil {
		err = renameio.WriteFile(filepath.Join(b.o.Out, name), []byte(sb.String()), 0o644)
	}
	if err != nil {
		b.err = fmt.Errorf("write %s: %w", name, err)
		return
	}
	b.pages = append(b.pages, Page{Path: name, Title: title})
}
