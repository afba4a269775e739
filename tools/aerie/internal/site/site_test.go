package site

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aerie-ml/aerie/internal/browsertest"
	"github.com/aerie-ml/aerie/tools/aerie/internal/fixture"
)

func build(t *testing.T) (*fixture.World, string, []Page) {
	t.Helper()
	w := fixture.New(t)
	out := t.TempDir()
	pages, err := Build(t.Context(), Options{Repo: w.Repo, StatusStore: w.Store, Out: out, Now: func() time.Time { return fixture.Now }})
	if err != nil {
		t.Fatal(err)
	}
	return w, out, pages
}

// TestBuildPages: the site has an index, the run, each version, their
// comparison and the fleet, with relative links only.
func TestBuildPages(t *testing.T) {
	w, out, pages := build(t)
	want := map[string]bool{
		"index.html": true, runPage(fixture.Run): true, fleetPage(fixture.Fleet): true,
		versionPage(fixture.Run, w.Old.Version): true, versionPage(fixture.Run, w.New.Version): true,
		comparePage(fixture.Run, w.Old.Version, w.New.Version): true,
	}
	for _, p := range pages {
		if !want[p.Path] {
			t.Errorf("unexpected page %s", p.Path)
		}
		delete(want, p.Path)
		b, err := os.ReadFile(filepath.Join(out, p.Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{`href="/`, `src="http`, `href="http`} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s links outside the site (%s): a bucket website must work from any prefix", p.Path, bad)
			}
		}
	}
	for p := range want {
		t.Errorf("page %s missing", p)
	}
}

// TestSiteInChromium opens every page in headless Chromium, checks what it
// renders, and writes a full-page screenshot of each to the test's
// artifact directory (go test -artifacts keeps them).
func TestSiteInChromium(t *testing.T) {
	browser := browsertest.New(t)
	w, out, _ := build(t)

	old, nw := w.Old.Version, w.New.Version
	tests := []struct {
		page string
		// texts must all appear in the rendered page's text.
		texts []string
		// selectors must each match at least one element.
		selectors []string
	}{
		{"index.html", []string{fixture.Run, nw, "71.00%", fixture.Fleet, "PASS 11"}, []string{"#runs table", "#fleets table"}},
		{runPage(fixture.Run), []string{old, nw, "Shirt", "41.0", "32.0", "Ankle boot"}, []string{"#versions table", "#compares a"}},
		{versionPage(fixture.Run, nw), []string{"71.00%", "Training curves", "Shirt", "41.00%", "Confusion matrix", "epoch", "test 71.00%"},
			[]string{"svg.curves polyline", "svg.confusion rect", "#test-accuracy"}},
		{versionPage(fixture.Run, old), []string{"62.00%", "1\nepochs"}, []string{"svg.curves circle"}},
		{comparePage(fixture.Run, old, nw), []string{"B − A", "+9.00", "Shirt", "Curves overlaid", "Confusion A", "Confusion B"},
			[]string{"#deltas td.pos", "svg.curves polyline.dashed", "svg.confusion"}},
		{fleetPage(fixture.Fleet), []string{"stable", "canary", "for 50% of devices", "1 of 4", "pi-0001", "pi-0004", "SelfTestFailed", "ArtifactFailed", "30s ago", "none"},
			[]string{"#rollout .bar .stable", "#devices table"}},
	}
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			browser.Check(t, browsertest.Page{Path: filepath.Join(out, tt.page), Texts: tt.texts, Selectors: tt.selectors},
				strings.TrimSuffix(tt.page, ".html")+".png")
		})
	}
}
