package agent

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	promodel "github.com/prometheus/common/model"

	"github.com/aerie-ml/aerie/edge/internal/modeltest"
)

// TestFootprint measures the real aerie-edge binary running a built-in
// architecture (AERIE_EDGE_ARCH: cnn by default, or resnet-small): peak
// RSS (VmHWM) while it installs, self-tests and classifies frames at
// batch 1, and the per-frame classify latency from its /metrics. It runs
// only when AERIE_EDGE_BIN names the binary (bench/edge-footprint.sh,
// `make bench-edge`); AERIE_EDGE_EXEC may name a wrapper such as
// qemu-aarch64-static. It reports numbers and asserts nothing about them.
func TestFootprint(t *testing.T) {
	bin := os.Getenv("AERIE_EDGE_BIN")
	if bin == "" {
		t.Skip("set AERIE_EDGE_BIN to an aerie-edge binary (make bench-edge)")
	}
	frames := 500
	if n, err := strconv.Atoi(os.Getenv("AERIE_EDGE_FRAMES")); err == nil {
		frames = n
	}
	images, labels := modeltest.Images(300, 6)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := newFixture(t, fmt.Sprintf("frames: {source: dataset, path: %s, loop: true}\n", modeltest.Dataset(t, images, labels)))
	os.WriteFile(f.cfgPath, bytes.Replace(must(os.ReadFile(f.cfgPath)), []byte("127.0.0.1:0"), []byte(addr), 1), 0o644)

	// The architecture (AERIE_EDGE_ARCH, cnn by default) with seeded
	// random weights: the same compute and memory as a trained one. Its
	// self-test threshold is set below chance.
	archName := cmp.Or(os.Getenv("AERIE_EDGE_ARCH"), "cnn")
	w := modeltest.InitWeights(t, modeltest.Model(t, archName, modeltest.Input, modeltest.Classes), 1)
	v := modeltest.Write(t, putter{f.st}, "footprint", archName, w, nil)
	f.repo.Commit(t, map[string]string{"fleets/quadcopters.yaml": fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: FleetPins
fleet: quadcopters
stable: {uri: %q, manifestDigest: %q, minSelfTestAccuracy: 0.01}
`, f.st.URI(v.Key), v.Digest)})

	args := []string{"-config", f.cfgPath}
	cmd := exec.Command(bin, args...)
	if wrap := os.Getenv("AERIE_EDGE_EXEC"); wrap != "" {
		cmd = exec.Command(wrap, append([]string{bin}, args...)...)
	}
	cmd.Env = os.Environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("agent stderr:\n%s", stderr.String())
		}
	}()
	var m map[string]*dto.MetricFamily
	waitFor(t, fmt.Sprintf("%d frames classified", frames), func() bool {
		m = scrape("http://" + addr + "/metrics")
		return value(m, "aerie_edge_frames_total") >= float64(frames)
	})
	hwm, rss := procStatus(t, cmd.Process.Pid, "VmHWM"), procStatus(t, cmd.Process.Pid, "VmRSS")
	t.Logf("architecture %s; binary %s (%d bytes)", archName, bin, fileSize(bin))
	latency := m["aerie_edge_classify_seconds"].GetMetric()[0].GetHistogram()
	t.Logf("frames %v, classify latency mean %.3f ms, frame errors %v",
		value(m, "aerie_edge_frames_total"), 1000*latency.GetSampleSum()/float64(latency.GetSampleCount()), value(m, "aerie_edge_frame_errors_total"))
	anon, file := procStatus(t, cmd.Process.Pid, "RssAnon"), procStatus(t, cmd.Process.Pid, "RssFile")
	t.Logf("peak RSS (VmHWM) %d KiB = %.1f MiB; RSS now %d KiB (anonymous %d KiB, binary and files %d KiB); Go-mapped %.1f MiB, live heap %.1f MiB",
		hwm, float64(hwm)/1024, rss, anon, file, value(m, "aerie_edge_go_memory_bytes")/(1<<20), value(m, "aerie_edge_go_heap_live_bytes")/(1<<20))
	for _, b := range latency.GetBucket() {
		if b.GetUpperBound() <= 0.1 {
			t.Logf("  frames <= %g s: %d", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// scrape reads the agent's metrics (none while it does not answer).
func scrape(url string) map[string]*dto.MetricFamily {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(promodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return fams
}

// value is the counter or gauge name (0 when absent).
func value(fams map[string]*dto.MetricFamily, name string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return v
}

func procStatus(t *testing.T, pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return 0
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
