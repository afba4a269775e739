package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// tinyPNG is a 2×1 PNG of one colour: a stand-in image that keeps the
// golden card small and independent of the plotting library.
func tinyPNG(t *testing.T, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, c)
	img.Set(1, 0, c)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHTMLGolden(t *testing.T) {
	failing := sample()
	failing.Gates = manifest.Evaluate(failing.Metrics, failing.Model.Classes, manifest.Gates{MinTestAccuracy: 0.925, MinClassAccuracy: 0.85})
	failing.Lineage = manifest.Lineage{WorldSize: 3, ResumedFrom: "checkpoints/fmnist-cnn/4220/"}
	tests := []struct {
		name string
		m    *manifest.Manifest
	}{
		{"pass", sample()},
		{"fail", failing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HTML(tt.m, tinyPNG(t, color.RGBA{R: 0xff, A: 0xff}), tinyPNG(t, color.RGBA{B: 0xff, A: 0xff}))
			if err != nil {
				t.Fatalf("HTML() error = %v", err)
			}
			golden := filepath.Join("testdata", "card-"+tt.name+".golden.html")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("HTML() differs from %s (go test -update rewrites it) (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	got, err := HTML(sample(), tinyPNG(t, color.Black), tinyPNG(t, color.Black))
	if err != nil {
		t.Fatal(err)
	}
	// No outside requests: every src and href is a data: URI.
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"]*)"`).FindAllSubmatch(got, -1) {
		if !bytes.HasPrefix(m[2], []byte("data:")) {
			t.Errorf("card refers to %s=%q, want only data: URIs", m[1], m[2])
		}
	}
	if bytes.Contains(got, []byte("url(")) || bytes.Contains(got, []byte("@import")) {
		t.Error("card's CSS loads something from outside")
	}
}

// chromium returns Debian's chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the headless browser test in -short mode")
	}
	const bin = "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipping: %s is not installed (apt-get install chromium; it is in .ci/apt-packages.txt)", bin)
	}
	return bin
}

// runChromium runs headless chromium on page with extra flags and returns
// its standard output.
func runChromium(t *testing.T, bin, page string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", cmd, err, stderr.String())
	}
	return stdout.Bytes()
}

// probe reports, into the DOM, what the browser made of the images:
// their natural sizes once decoded.
const probe = `<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = Array.from(document.images, (img) =>
    img.className + "=" + (img.complete ? img.naturalWidth + "x" + img.naturalHeight : "pending")).join(" ");
  document.body.appendChild(out);
});
</script>`

func TestHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	m := sample()
	curves, err := Curves(m.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	confusion, err := Confusion(m.Metrics, m.Model.Classes)
	if err != nil {
		t.Fatal(err)
	}
	card, err := HTML(m, curves, confusion)
	if err != nil {
		t.Fatal(err)
	}
	keep(t, "report.html", card)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, card, 0o644); err != nil {
		t.Fatal(err)
	}
	probed := filepath.Join(dir, "probed.html")
	if err := os.WriteFile(probed, bytes.Replace(card, []byte("</body>"), []byte(probe+"</body>"), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("dom", func(t *testing.T) {
		dom := string(runChromium(t, bin, probed, "--virtual-time-budget=5000", "--dump-dom"))
		want := []string{
			`<div class="value" id="test-accuracy">92.15%</div>`,
			`PASS: all 12 gates`,
			`<td>Shirt</td><td class="n">76.50%</td>`,
			`<td>Ankle boot</td><td class="n">96.50%</td>`,
			fmt.Sprintf(`<pre id="probe">curves=%dx%d confusion=%dx%d</pre>`, 9*dpi, imageHeight(t, curves), imageWidth(t, confusion), imageHeight(t, confusion)),
		}
		for _, w := range want {
			if !strings.Contains(dom, w) {
				t.Errorf("the DOM chromium rendered lacks %q", w)
			}
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", regexp.MustCompile(`data:image/png;base64,[^"]*`).ReplaceAllString(dom, "data:…"))
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(dir, "report.png")
		runChromium(t, bin, page, "--window-size=1100,3300", "--screenshot="+shot)
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		keep(t, "report-screenshot.png", b)
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		// A rendered card has the page background, white panels, text and
		// the plots' colours; a blank or failed page has one or two.
		if n := colours(img); n < 50 {
			t.Errorf("screenshot has %d distinct colours, want a rendered page (at least 50)", n)
		}
		if !hasColour(img, color.RGBA{R: 0x1a, G: 0x7f, B: 0x37, A: 0xff}) {
			t.Error("screenshot lacks the green of the PASS badge")
		}
	})
}

func imageWidth(t *testing.T, b []byte) int  { return config(t, b).Width }
func imageHeight(t *testing.T, b []byte) int { return config(t, b).Height }

func config(t *testing.T, b []byte) image.Config {
	t.Helper()
	c, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func colours(img image.Image) int {
	seen := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			seen[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)] = true
		}
	}
	return len(seen)
}

func hasColour(img image.Image, want color.RGBA) bool {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)).(color.RGBA) == want {
				return true
			}
		}
	}
	return false
}
