package progress

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/aerie-ml/aerie/internal/manifest"
)

// fakeTerm is a terminal that understands what the bar writes: printable
// text, carriage return, newline and "erase to end of line".
type fakeTerm struct {
	t     *testing.T
	width int
	lines []string
	cur   []rune
	col   int
}

func (ft *fakeTerm) Write(p []byte) (int, error) {
	s := string(p)
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, "\x1b[K"):
			ft.cur = ft.cur[:ft.col]
			s = s[3:]
		case s[0] == '\x1b':
			ft.t.Fatalf("unexpected escape sequence in %q", s)
		case s[0] == '\r':
			ft.col = 0
			s = s[1:]
		case s[0] == '\n':
			ft.lines = append(ft.lines, string(ft.cur))
			ft.cur, ft.col = nil, 0
			s = s[1:]
		default:
			r, n := utf8.DecodeRuneInString(s)
			if ft.col < len(ft.cur) {
				ft.cur[ft.col] = r
			} else {
				ft.cur = append(ft.cur, r)
			}
			ft.col++
			if ft.width > 0 && ft.col >= ft.width {
				ft.t.Fatalf("line wrapped past %d columns: %q", ft.width, string(ft.cur))
			}
			s = s[n:]
		}
	}
	return len(p), nil
}

// screen is what a person sees: every line, the cursor's last.
func (ft *fakeTerm) screen() []string {
	return append(append([]string(nil), ft.lines...), string(ft.cur))
}

// clock advances by step on every call.
func clock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name  string
		s     State
		width int
		want  string
	}{
		{
			name:  "full",
			s:     State{Epoch: 2, Epochs: 10, Step: 1234, Total: 9375, Loss: 0.43125, Accuracy: 0.8423, ImagesPerSecond: 553.4, ETA: 151 * time.Second},
			width: 100,
			want:  "epoch 2/10 ▕███▉                         ▏ 1234/9375  13% loss 0.4313 acc 84.2% 553 img/s ETA 2m31s",
		},
		{
			name:  "wide terminal caps the bar",
			s:     State{Step: 5, Total: 10, Loss: 1, Accuracy: 0.5, ETA: -1},
			width: 200,
			want:  "▕████████████████████                    ▏ 5/10  50% loss 1.0000 acc 50.0% ETA --",
		},
		{
			name:  "narrow terminal drops the bar and cuts",
			s:     State{Label: "2 ranks", Step: 5, Total: 10, Loss: 1, Accuracy: 0.5, ETA: time.Hour},
			width: 30,
			want:  "2 ranks 5/10  50% loss 1.0000",
		},
		{
			name:  "no total",
			s:     State{Epoch: 3, Step: 7, Loss: 2, ETA: -1},
			width: 80,
			want:  "epoch 3 step 7 loss 2.0000 acc 0.0% ETA --",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Render(tt.s, tt.width)
			if got != tt.want {
				t.Errorf("Render() =\n%q, want\n%q", got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n >= tt.width {
				t.Errorf("Render() is %d columns, want < %d", n, tt.width)
			}
		})
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-1:                            "--",
		0:                             "0s",
		45 * time.Second:              "45s",
		151 * time.Second:             "2m31s",
		time.Hour + 2*time.Minute:     "1h02m",
		30*time.Hour + 59*time.Minute: "30h59m",
	} {
		if got := FormatETA(d); got != want {
			t.Errorf("FormatETA(%v) = %q, want %q", d, got, want)
		}
	}
}

func epochs() []manifest.Epoch {
	return []manifest.Epoch{
		{Epoch: 1, Step: 5, LearningRate: 0.001, TrainLoss: 0.6, TrainAccuracy: 0.78, ValLoss: 0.45, ValAccuracy: 0.84, ImagesPerSecond: 64, Seconds: 5},
		{Epoch: 2, Step: 10, LearningRate: 0.0005, TrainLoss: 0.4, TrainAccuracy: 0.86, ValLoss: 0.38, ValAccuracy: 0.87, ImagesPerSecond: 64, Seconds: 5},
	}
}

// train drives r like a training loop: 2 epochs of 5 steps, one second
// each on r's clock.
func train(r *Reporter, other io.Writer) {
	for step := int64(1); step <= 10; step++ {
		r.Step(step, 1/float64(step), 0.5+float64(step)/40)
		if step == 3 {
			fmt.Fprintln(other, "level=INFO msg=\"checkpoint written\"")
		}
		if step%5 == 0 {
			r.Epoch(epochs()[step/5-1])
		}
	}
	r.Close()
}

func TestReporterTerminal(t *testing.T) {
	ft := &fakeTerm{t: t, width: 100}
	term := NewTerminal(ft, 100)
	r := New(term, nil, Config{Total: 10, Epochs: 2, StepsPerEpoch: 5, BatchSize: 64, Now: clock(time.Second)})
	train(r, term.Writer())
	want := []string{
		`level=INFO msg="checkpoint written"`,
		"epoch 1/2  train loss 0.6000 acc 78.00%  val loss 0.4500 acc 84.00%  64 img/s  5s  lr 0.001",
		"epoch 2/2  train loss 0.4000 acc 86.00%  val loss 0.3800 acc 87.00%  64 img/s  5s  lr 0.0005",
		"epoch 2/2 ▕██████████████████████████████████████▏ 10/10 100% loss 0.1000 acc 75.0% 64 img/s ETA 0s",
		"",
	}
	if diff := cmp.Diff(want, ft.screen()); diff != "" {
		t.Errorf("terminal screen diff (-want +got):\n%s\ngot:\n%s", diff, strings.Join(ft.screen(), "\n"))
	}
}

func TestReporterTerminalThrottles(t *testing.T) {
	var buf bytes.Buffer
	r := New(NewTerminal(&buf, 80), nil, Config{Total: 1000, Now: clock(time.Millisecond)})
	for step := int64(1); step <= 1000; step++ {
		r.Step(step, 0, 0)
	}
	// The first step, every 100th after it (100 ms of this clock), the last.
	if got := strings.Count(buf.String(), "\r"); got > 12 {
		t.Errorf("1000 steps 1 ms apart drew the bar %d times, want at most 12", got)
	}
}

// jsonLogger logs JSON without the time, so lines are reproducible.
func jsonLogger(w *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func TestReporterLog(t *testing.T) {
	var buf bytes.Buffer
	r := New(nil, jsonLogger(&buf), Config{Total: 10, Epochs: 2, StepsPerEpoch: 5, BatchSize: 64, LogEvery: 4, Now: clock(time.Second)})
	train(r, &buf)
	want := []string{
		`{"level":"INFO","msg":"step","step":4,"total":10,"epoch":1,"epochs":2,"loss":0.25,"accuracy":0.6,"imagesPerSecond":64,"etaSeconds":6}`,
		`{"level":"INFO","msg":"epoch","epoch":1,"epochs":2,"step":5,"learningRate":0.001,"trainLoss":0.6,"trainAccuracy":0.78,"valLoss":0.45,"valAccuracy":0.84,"imagesPerSecond":64,"seconds":5}`,
		`level=INFO msg="checkpoint written"`,
		`{"level":"INFO","msg":"step","step":8,"total":10,"epoch":2,"epochs":2,"loss":0.125,"accuracy":0.7,"imagesPerSecond":64,"etaSeconds":2}`,
		`{"level":"INFO","msg":"step","step":10,"total":10,"epoch":2,"epochs":2,"loss":0.1,"accuracy":0.75,"imagesPerSecond":64,"etaSeconds":0}`,
		`{"level":"INFO","msg":"epoch","epoch":2,"epochs":2,"step":10,"learningRate":0.0005,"trainLoss":0.4,"trainAccuracy":0.86,"valLoss":0.38,"valAccuracy":0.87,"imagesPerSecond":64,"seconds":5}`,
		``,
	}
	// The checkpoint line went to Writer() at step 3, before step 4's line.
	want[0], want[1], want[2] = want[2], want[0], want[1]
	if diff := cmp.Diff(want, strings.Split(buf.String(), "\n")); diff != "" {
		t.Errorf("log lines diff (-want +got):\n%s", diff)
	}
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   Event
		wantOK bool
	}{
		{
			name:   "step with rank prefix",
			line:   `[rank 1] {"time":"2026-01-01T00:00:00Z","level":"INFO","msg":"step","rank":1,"step":8,"total":10,"epoch":2,"epochs":2,"loss":0.125,"accuracy":0.7,"imagesPerSecond":64,"etaSeconds":2}`,
			want:   Event{Kind: "step", Rank: 1, State: State{Epoch: 2, Epochs: 2, Step: 8, Total: 10, Loss: 0.125, Accuracy: 0.7, ImagesPerSecond: 64, ETA: 2 * time.Second}},
			wantOK: true,
		},
		{
			name:   "diverged step without rank or eta",
			line:   `{"msg":"step","step":3,"epoch":1,"loss":"NaN","accuracy":0.1}`,
			want:   Event{Kind: "step", Rank: -1, State: State{Epoch: 1, Step: 3, Loss: nan, Accuracy: 0.1, ETA: -1}},
			wantOK: true,
		},
		{
			name:   "epoch",
			line:   `{"msg":"epoch","epoch":1,"epochs":2,"step":5,"learningRate":0.001,"trainLoss":0.6,"trainAccuracy":0.78,"valLoss":0.45,"valAccuracy":0.84,"imagesPerSecond":64,"seconds":5}`,
			want:   Event{Kind: "epoch", Rank: -1, State: State{Epoch: 1, Epochs: 2, Step: 5, ETA: -1}, Epoch: epochs()[0]},
			wantOK: true,
		},
		{name: "other message", line: `{"msg":"checkpoint written","step":5,"epoch":1}`},
		{name: "step message without step", line: `{"msg":"step","epoch":1}`},
		{name: "text", line: `level=INFO msg=step step=3`},
		{name: "broken json", line: `{"msg":"step","step":`},
		{name: "wrong type", line: `{"msg":"step","step":"x","epoch":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseLine([]byte(tt.line))
			if ok != tt.wantOK {
				t.Fatalf("ParseLine() ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got, cmpNaN); diff != "" {
				t.Errorf("ParseLine() diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	ft := &fakeTerm{t: t, width: 100}
	agg := NewAggregate(ft, 100)
	// Two ranks in log mode, as the launcher's child processes; rank 1 is
	// a step behind and a bit slower.
	var outs [2]bytes.Buffer
	for rank := range 2 {
		logger := jsonLogger(&outs[rank]).With("rank", rank)
		train(New(nil, logger, Config{Total: 10, Epochs: 2, StepsPerEpoch: 5, BatchSize: 32, LogEvery: 4, Now: clock(time.Second)}), &outs[rank])
	}
	w0, w1 := agg.Writer(0), agg.Writer(1)
	lines0, lines1 := strings.SplitAfter(outs[0].String(), "\n"), strings.SplitAfter(outs[1].String(), "\n")
	// Interleave, and split rank 1's lines across writes.
	for i := range max(len(lines0), len(lines1)) {
		if i < len(lines0) {
			fmt.Fprint(w0, lines0[i])
		}
		if i < len(lines1) && i < 4 {
			l := lines1[i]
			fmt.Fprint(w1, l[:len(l)/2])
			fmt.Fprint(w1, l[len(l)/2:])
		}
	}
	fmt.Fprint(w1, "panic: no newline at the end")
	w0.Close()
	w1.Close()

	wantState := State{Label: "2 ranks", Epoch: 2, Epochs: 2, Step: 8, Total: 10, Loss: (0.1 + 0.125) / 2, Accuracy: (0.75 + 0.7) / 2, ImagesPerSecond: 32, ETA: 2 * time.Second}
	if diff := cmp.Diff(wantState, agg.State()); diff != "" {
		t.Errorf("State() diff (-want +got):\n%s", diff)
	}
	agg.Close()
	want := []string{
		`[rank 0] level=INFO msg="checkpoint written"`,
		`[rank 1] level=INFO msg="checkpoint written"`,
		"epoch 1/2  train loss 0.6000 acc 78.00%  val loss 0.4500 acc 84.00%  64 img/s  5s  lr 0.001",
		"epoch 2/2  train loss 0.4000 acc 86.00%  val loss 0.3800 acc 87.00%  64 img/s  5s  lr 0.0005",
		"[rank 1] panic: no newline at the end",
		"2 ranks epoch 2/2 ▕████████████████████████▊      ▏ 8/10  80% loss 0.1125 acc 72.5% 32 img/s ETA 2s",
		"",
	}
	if diff := cmp.Diff(want, ft.screen()); diff != "" {
		t.Errorf("terminal screen diff (-want +got):\n%s\ngot:\n%s", diff, strings.Join(ft.screen(), "\n"))
	}
}

func TestLineWriterLongLine(t *testing.T) {
	var got []int
	lw := &lineWriter{emit: func(line []byte) { got = append(got, len(line)) }}
	lw.Write(bytes.Repeat([]byte("x"), maxLine+10))
	lw.Write([]byte("\r\n"))
	lw.Close()
	// The first maxLine bytes, then the rest without the line ending.
	if diff := cmp.Diff([]int{maxLine, 10}, got); diff != "" {
		t.Errorf("emitted line lengths diff (-want +got):\n%s", diff)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`[rank 1] {"msg":"step","rank":1,"step":8,"total":10,"epoch":2,"loss":0.1,"etaSeconds":2}`))
	f.Add([]byte(`{"msg":"epoch","epoch":1,"step":5,"trainLoss":"-Inf"}`))
	f.Add([]byte(`{"msg":"step","step":1,"epoch":1,"etaSeconds":1e300}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, ok := ParseLine(line)
		if !ok {
			return
		}
		if ev.Kind != "step" && ev.Kind != "epoch" {
			t.Errorf("ParseLine() kind %q", ev.Kind)
		}
		// Whatever parses must render without wrapping.
		if s := Render(ev.State, 80); utf8.RuneCountInString(s) >= 80 {
			t.Errorf("Render() = %q, %d columns", s, utf8.RuneCountInString(s))
		}
	})
}

var nan = func() float64 { var z float64; return z / z }()

var cmpNaN = cmp.Comparer(func(a, b float64) bool { return a == b || a != a && b != b })

func TestAggregateConcurrentWriters(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	agg := NewAggregate(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), 80)
	var wg sync.WaitGroup
	for rank := range 4 {
		wg.Go(func() {
			w := agg.Writer(rank)
			defer w.Close()
			for step := 1; step <= 100; step++ {
				fmt.Fprintf(w, `{"msg":"step","rank":%d,"step":%d,"total":100,"epoch":1,"loss":0.5}`+"\n", rank, step)
				fmt.Fprintf(w, "rank %d says hi\n", rank)
			}
		})
	}
	wg.Wait()
	agg.Close()
	if got := agg.State(); got.Step != 100 || got.Label != "4 ranks" {
		t.Errorf("State() = %+v, want step 100 of 4 ranks", got)
	}
	if got := strings.Count(buf.String(), "says hi\n"); got != 400 {
		t.Errorf("%d pass-through lines, want 400", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestReporterLogInterval(t *testing.T) {
	var buf bytes.Buffer
	// Steps 100 ms apart, a line due every 250 ms and every 100 steps.
	r := New(nil, jsonLogger(&buf), Config{Total: 10, BatchSize: 1, LogInterval: 250 * time.Millisecond, Now: clock(100 * time.Millisecond)})
	for step := int64(1); step <= 10; step++ {
		r.Step(step, 0, 0)
	}
	var got []int64
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		ev, ok := ParseLine([]byte(line))
		if !ok {
			t.Fatalf("not a step line: %s", line)
		}
		got = append(got, ev.State.Step)
	}
	if diff := cmp.Diff([]int64{1, 4, 7, 10}, got); diff != "" {
		t.Errorf("logged steps diff (-want +got):\n%s", diff)
	}
}

func TestFormatRecord(t *testing.T) {
	for _, tc := range []struct {
		line, want string
		ok         bool
		omit       []string
	}{
		{
			line: `{"time":"2026-12-01T00:00:00Z","level":"INFO","msg":"dataset","rank":1,"source":"file:///d","train":54000,"digest":"sha256:ab"}`,
			want: "INFO dataset source=file:///d train=54000 digest=sha256:ab", ok: true, omit: []string{"rank"},
		},
		{
			line: `{"time":"2026-12-01T00:00:00Z","level":"INFO","msg":"a rank failed; stopping the others","rank":1,"code":130}`,
			want: "INFO a rank failed; stopping the others rank=1 code=130", ok: true,
		},
		{
			line: `{"level":"WARN","msg":"slow peer","peer":"rank 2","after":{"s":3},"ok":false}`,
			want: `WARN slow peer peer="rank 2" after={"s":3} ok=false`, ok: true,
		},
		{line: `{"msg":"no level"}`},
		{line: `level=INFO msg=text`},
		{line: `{"level":"INFO","msg":"x"} trailing`},
		{line: `{"level":"INFO","msg":`},
	} {
		got, ok := FormatRecord([]byte(tc.line), tc.omit...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FormatRecord(%s) = %q, %v, want %q, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAggregateShowsRecordsAsText(t *testing.T) {
	ft := &fakeTerm{t: t, width: 100}
	agg := NewAggregate(ft, 100)
	w := agg.Writer(1)
	fmt.Fprintln(w, `{"time":"2026-12-01T00:00:00Z","level":"INFO","msg":"checkpoint saved","rank":1,"step":200}`)
	w.Close()
	agg.Close()
	if diff := cmp.Diff([]string{"[rank 1] INFO checkpoint saved step=200", ""}, ft.screen()); diff != "" {
		t.Errorf("terminal screen diff (-want +got):\n%s", diff)
	}
}

// TestAggregateExpect: told the job's size, the bar names every rank
// from the first rank's first step.
func TestAggregateExpect(t *testing.T) {
	var out bytes.Buffer
	agg := NewAggregate(&out, 100)
	agg.Expect(2)
	agg.Line(0, []byte(`{"level":"INFO","msg":"step","step":1,"total":10,"epoch":1,"epochs":1,"loss":1.5,"accuracy":0.5,"imagesPerSecond":100}`))
	if got := agg.State().Label; got != "2 ranks" {
		t.Errorf("label after one rank's step = %q, want 2 ranks", got)
	}
}
