// Package browsertest opens pages in real headless Chromium for tests of
// what a person looks at (the model card, aerie's web view): it checks
// what the page renders and keeps a full-page screenshot of it in the
// test's artifact directory (go test -artifacts keeps them).
package browsertest

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
)

// Width is the browser window's width in CSS pixels.
const Width = 1200

// Browser is one headless Chromium, shared by a test's pages.
type Browser struct {
	ctx context.Context
}

// New starts Debian's chromium (hack/deps.sh installs it) for the test and
// stops it when the test ends. It skips the test in -short mode, and when
// chromium is missing outside CI.
func New(t *testing.T) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the headless browser test in -short mode")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed: %v (hack/deps.sh installs it)", err)
		}
		t.Skip("skipping: chromium is not installed (apt-get install chromium; hack/deps.sh does)")
	}
	// Every step is bounded, so a wedged browser fails the test instead of
	// hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	// Not t.TempDir: Chromium's helper processes can still be writing the
	// profile for a moment after the browser exits, which fails its cleanup.
	profile, err := os.MkdirTemp("", "aerie-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(profile),
		chromedp.WindowSize(Width, 900), chromedp.Flag("disable-dev-shm-usage", true))...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancel()
		removeProfile(t, profile)
	})
	return &Browser{ctx: browser}
}

// removeProfile removes Chromium's profile directory, retrying while its
// last helper processes finish writing into it.
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("leaving Chromium's profile %s: %v", dir, err)
}

// Page is a page to open and what it must show.
type Page struct {
	// Path is the HTML file to open.
	Path string
	// Texts must all appear in the page's rendered text.
	Texts []string
	// Selectors must each match at least one element.
	Selectors []string
	// Checks are JavaScript expressions that must evaluate to "" on the
	// loaded page; anything else is reported as the failure.
	Checks []string
}

// Check opens p in a new tab, writes a full-page screenshot to
// t.ArtifactDir()/shot and reports on t whatever p says the page must
// show and does not.
func (b *Browser) Check(t *testing.T, p Page, shot string) {
	t.Helper()
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	var text string
	var screenshot []byte
	actions := []chromedp.Action{
		chromedp.Navigate("file://" + p.Path),
		chromedp.WaitReady("body"),
		chromedp.Text("body", &text, chromedp.ByQuery),
	}
	counts := make([]int, len(p.Selectors))
	for i, sel := range p.Selectors {
		actions = append(actions, chromedp.Evaluate(`document.querySelectorAll(`+jsString(sel)+`).length`, &counts[i]))
	}
	failures := make([]string, len(p.Checks))
	for i, js := range p.Checks {
		actions = append(actions, chromedp.Evaluate(js, &failures[i]))
	}
	actions = append(actions, chromedp.FullScreenshot(&screenshot, 100)) // 100: PNG, not JPEG
	if err := chromedp.Run(tab, actions...); err != nil {
		t.Fatalf("chromium on %s: %v", p.Path, err)
	}

	path := filepath.Join(t.ArtifactDir(), shot)
	if err := os.WriteFile(path, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	img, err := png.Decode(bytes.NewReader(screenshot))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", p.Path, err)
	}
	if r := img.Bounds(); r.Dx() < Width || r.Dy() < 300 {
		t.Errorf("screenshot of %s is %v, want a rendered page", p.Path, r)
	}
	for _, want := range p.Texts {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", p.Path, want)
		}
	}
	for i, sel := range p.Selectors {
		if counts[i] == 0 {
			t.Errorf("%s has no %s", p.Path, sel)
		}
	}
	for _, f := range failures {
		if f != "" {
			t.Errorf("%s: %s", p.Path, f)
		}
	}
	if t.Failed() {
		t.Logf("text of %s:\n%s", p.Path, text)
	}
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
