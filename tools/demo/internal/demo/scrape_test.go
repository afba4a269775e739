package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `# TYPE aerie_edge_frames_total counter
aerie_edge_frames_total 981
# TYPE aerie_edge_classify_seconds histogram
aerie_edge_classify_seconds_bucket{le="0.001"} 3
aerie_edge_classify_seconds_bucket{le="+Inf"} 4
aerie_edge_classify_seconds_sum 0.008
aerie_edge_classify_seconds_count 4
# TYPE aerie_edge_gpio_changes_total counter
aerie_edge_gpio_changes_total{output="footwear",state="on"} 7
`)
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.counter("aerie_edge_frames_total"); got != 981 {
		t.Errorf("frames = %v, want 981", got)
	}
	if n, sum := m.histogram("aerie_edge_classify_seconds"); n != 4 || sum != 0.008 {
		t.Errorf("classify histogram = %d, %v, want 4, 0.008", n, sum)
	}
	if got := m.counter("absent"); got != 0 {
		t.Errorf("absent counter = %v, want 0", got)
	}
	if got := m["aerie_edge_gpio_changes_total"].GetMetric()[0].GetCounter().GetValue(); got != 7 {
		t.Errorf("gpio changes = %v, want 7", got)
	}
}
