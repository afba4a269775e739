package site

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

// chromium finds Debian's chromium (hack/deps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the headless browser test in -short mode")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed: %v (hack/deps.sh installs it)", err)
		}
		t.Skipf("skipping: chromium is not installed (apt-get install chromium; hack/deps.sh does)")
	}
	return bin
}

// TestSiteInChromium opens every page in headless Chromium, checks what it
// renders, and writes a full-page screenshot of each to the test's
// artifact directory (go test -artifacts keeps them).
func TestSiteInChromium(t *testing.T) {
	bin := chromium(t)
	w, out, _ := build(t)
	shots := t.ArtifactDir()

	// One browser for every page; every step below is bounded by ctx.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900), chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()

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
			tab, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			var text string
			var shot []byte
			actions := []chromedp.Action{
				chromedp.Navigate("file://" + filepath.Join(out, tt.page)),
				chromedp.WaitReady("body"),
				chromedp.Text("body", &text, chromedp.ByQuery),
			}
			counts := make([]int, len(tt.selectors))
			for i, sel := range tt.selectors {
				actions = append(actions, chromedp.Evaluate(`document.querySelectorAll(`+jsString(sel)+`).length`, &counts[i]))
			}
			actions = append(actions, chromedp.FullScreenshot(&shot, 100)) // 100: PNG, not JPEG
			if err := chromedp.Run(tab, actions...); err != nil {
				t.Fatalf("chromium on %s: %v", tt.page, err)
			}
			path := filepath.Join(shots, strings.TrimSuffix(tt.page, ".html")+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", path)
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				t.Fatalf("screenshot of %s: %v", tt.page, err)
			}
			if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 300 {
				t.Errorf("screenshot of %s is %v, want a rendered page", tt.page, b)
			}
			for _, want := range tt.texts {
				if !strings.Contains(text, want) {
					t.Errorf("%s lacks %q", tt.page, want)
				}
			}
			for i, sel := range tt.selectors {
				if counts[i] == 0 {
					t.Errorf("%s has no %s", tt.page, sel)
				}
			}
			if t.Failed() {
				t.Logf("text of %s:\n%s", tt.page, text)
			}
		})
	}
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
