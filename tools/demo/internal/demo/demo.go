// Package demo runs aerie's whole mission on one machine with no cloud
// account: declare a run, render it, train it data-parallel with the
// operator's environment contract, store the model, promote it into a pin
// in a scratch clone of the repository, and fly it on an edge agent.
package demo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png" // the generated shapes' PNGs
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/manifest"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/runspec"
	"github.com/aerie-ml/aerie/internal/store"
)

// Config is what the demo trains and how long it flies. The zero value of
// each field takes the default in parentheses.
type Config struct {
	// RepoDir is the aerie checkout to build and clone (".").
	RepoDir string
	// OutDir holds everything the demo writes; it is emptied first ("out/demo").
	OutDir string
	// Dataset is DatasetFMNIST (the default) or DatasetShapes.
	Dataset string
	// DataDir holds Fashion-MNIST's IDX files (DebianDataDir); the shapes
	// are generated into OutDir.
	DataDir string
	Arch    string // ("cnn")
	Epochs  int    // (1)
	Workers int    // (2)
	// LearningRate is the run's learning rate (the run's default).
	LearningRate float64
	// Schedule is the run's learning-rate schedule (the run's default).
	Schedule string
	// MinTestAccuracy is the run's accuracy gate (0.8).
	MinTestAccuracy float64
	// MinClassAccuracy is the run's per-class gate (0.4).
	MinClassAccuracy float64
	// Fly is how long the edge agent classifies frames (10s).
	Fly time.Duration
	// Stdout receives the progress and the summary; Stderr the processes' logs.
	Stdout, Stderr io.Writer
}

// DebianDataDir is where Debian's dataset-fashion-mnist installs
// Fashion-MNIST (also aerie dataset ingest's default --from).
const DebianDataDir = "/usr/share/datasets/fashion-mnist"

// The datasets the demo trains on.
const (
	DatasetFMNIST = "fashion-mnist"
	// DatasetShapes is aerie dataset generate shapes, ingested at 64×64
	// colour and flown as an MJPEG stream of its test images.
	DatasetShapes = "shapes"
)

func (c *Config) defaults() {
	c.Dataset = cmp.Or(c.Dataset, DatasetFMNIST)
	c.RepoDir = cmp.Or(c.RepoDir, ".")
	c.OutDir = cmp.Or(c.OutDir, filepath.Join("out", "demo"))
	c.DataDir = cmp.Or(c.DataDir, DebianDataDir)
	c.Arch = cmp.Or(c.Arch, "cnn")
	c.Epochs = cmp.Or(c.Epochs, 1)
	c.Workers = cmp.Or(c.Workers, 2)
	c.MinTestAccuracy = cmp.Or(c.MinTestAccuracy, 0.8)
	c.MinClassAccuracy = cmp.Or(c.MinClassAccuracy, 0.4)
	c.Fly = cmp.Or(c.Fly, 10*time.Second)
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
}

// Summary is what the demo measured.
type Summary struct {
	RunName        string
	ModelURI       string
	ManifestDigest string
	TestAccuracy   float64
	ClassAccuracy  []float64
	// Classes names ClassAccuracy's entries: the model's classes.
	Classes      []string
	PinCommit    string
	Conditions   []metav1.Condition
	Active       string
	SelfTest     float64
	Frames       int64
	FramesPerSec float64
	MeanLatency  time.Duration
	GPIOChanges  map[string]int64
	AgentPeakRSS int64
	TrainWall    time.Duration
}

const (
	runName  = "demo"
	fleet    = "demo"
	deviceID = "demo-pi-0001"
	steps    = 7
)

// Run runs the demo and returns its summary. Every process it starts is
// stopped before it returns.
func Run(ctx context.Context, c Config) (*Summary, error) {
	c.defaults()
	d := &demo{Config: c}
	var err error
	if d.repo, err = filepath.Abs(c.RepoDir); err != nil {
		return nil, err
	}
	if d.out, err = filepath.Abs(c.OutDir); err != nil {
		return nil, err
	}
	return d.run(ctx)
}

type demo struct {
	Config
	repo, out string
	step      int
	sum       Summary
	// datasetURI is the ingested dataset's root; the edge agent's frames
	// are its test split.
	datasetURI string
}

func (d *demo) progress(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.Stdout, "==> [%d/%d] %s\n", d.step, steps, fmt.Sprintf(format, args...))
}

func (d *demo) path(elem ...string) string { return filepath.Join(append([]string{d.out}, elem...)...) }

func (d *demo) run(ctx context.Context) (*Summary, error) {
	switch d.Dataset {
	case DatasetFMNIST:
		if _, err := os.Stat(d.DataDir); err != nil {
			return nil, fmt.Errorf("Fashion-MNIST not found in %s: install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist; `make deps` does it): %w", d.DataDir, err)
		}
	case DatasetShapes:
		d.DataDir = d.path("shapes")
	default:
		return nil, fmt.Errorf("dataset %q: want %s or %s", d.Dataset, DatasetFMNIST, DatasetShapes)
	}
	if err := os.RemoveAll(d.out); err != nil {
		return nil, err
	}
	for _, dir := range []string{"bin", "store", "edge"} {
		if err := os.MkdirAll(d.path(dir), 0o755); err != nil {
			return nil, err
		}
	}
	if err := d.build(ctx); err != nil {
		return nil, err
	}

	if d.Dataset == DatasetShapes {
		d.progress("dataset: generate shapes into %s and ingest them at 64x64 colour into the local store", d.DataDir)
		if err := d.command(ctx, d.out, "aerie", "dataset", "generate", "shapes", d.DataDir); err != nil {
			return nil, err
		}
	} else {
		d.progress("dataset: ingest Fashion-MNIST from %s into the local store", d.DataDir)
	}
	uri, digest, err := d.ingest(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(d.Stdout, "    %s\n    digest %s\n", uri, digest)
	d.datasetURI = uri

	d.progress("declare and render run %q with aerie run render in a scratch clone", runName)
	clone, err := d.declare(ctx, uri, digest)
	if err != nil {
		return nil, err
	}

	d.progress("train: %d local workers with MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK (%s, %d epoch)", d.Workers, d.Arch, d.Epochs)
	start := time.Now()
	if err := d.command(ctx, d.path("repo"), "trainer", "launch", filepath.Join("apps", "jobs", runName)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	d.sum.TrainWall = time.Since(start)

	d.progress("promote the newest model of %q into %s", runName, pins.File(fleet))
	if err := d.promote(ctx, clone); err != nil {
		return nil, err
	}

	d.progress("fly: edge agent %s installs the pinned model, self-tests it and classifies test images", deviceID)
	if err := d.fly(ctx); err != nil {
		return nil, err
	}

	d.progress("summary")
	d.print()
	return &d.sum, nil
}

var binaries = map[string]string{
	"trainer":    "./trainer/cmd/trainer",
	"aerie":      "./tools/aerie/cmd/aerie",
	"aerie-edge": "./edge/cmd/aerie-edge",
}

func (d *demo) build(ctx context.Context) error {
	d.progress("build trainer, aerie and aerie-edge")
	args := []string{"build", "-o", d.path("bin") + string(filepath.Separator)}
	for _, pkg := range binaries {
		args = append(args, pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = d.repo, d.Stderr, d.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// command runs one of the demo's binaries in dir, its output on Stderr
// except for the trainer's progress, which goes to Stdout.
func (d *demo) command(ctx context.Context, dir, name string, args ...string) error {
	cmd := d.cmd(ctx, dir, name, args...)
	if name == "trainer" {
		cmd.Stderr = d.Stdout
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) cmd(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.path("bin", name), args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, d.Stderr, d.Stderr
	// Its own process group, so that stopping it stops the ranks it spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	return cmd
}

// ingest writes Fashion-MNIST into the demo's store as the trainer reads
// it, and returns the dataset's URI and digest from ingest's run snippet.
func (d *demo) ingest(ctx context.Context) (uri, digest string, err error) {
	var out bytes.Buffer
	args := []string{"dataset", "ingest", "--from", d.DataDir, "--name", d.Dataset, "--to", fileURI(d.path("store"))}
	if d.Dataset == DatasetShapes {
		args = append(args, "--size", "64x64", "--channels", "3")
	}
	cmd := d.cmd(ctx, d.out, "aerie", args...)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("aerie dataset ingest: %w", err)
	}
	var snippet struct {
		Spec struct {
			Dataset struct {
				URI    string `yaml:"uri"`
				SHA256 string `yaml:"sha256"`
			} `yaml:"dataset"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &snippet); err != nil || snippet.Spec.Dataset.SHA256 == "" {
		return "", "", fmt.Errorf("ingest printed no run snippet (%v):\n%s", err, out.String())
	}
	return snippet.Spec.Dataset.URI, snippet.Spec.Dataset.SHA256, nil
}

func (d *demo) declare(ctx context.Context, dataURI, digest string) (*git.Repository, error) {
	clone, err := git.PlainCloneContext(ctx, d.path("repo"), false, &git.CloneOptions{URL: d.repo})
	if err != nil {
		return nil, fmt.Errorf("clone %s: %w", d.repo, err)
	}
	image, err := fileDigest(d.path("bin", "trainer"))
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf(`# The demo's run: written by make demo into a scratch clone.
apiVersion: aerie.dev/v1alpha1
kind: TrainingRun
metadata:
  name: %s
spec:
  model:
    architecture: %s
    epochs: %d
    batchSize: 64%s%s
  dataset:
    uri: %s
    sha256: %s
  workers:
    count: %d
  resources:
    cpu: 1
  output:
    uri: %s
  gates:
    minTestAccuracy: %g
    minClassAccuracy: %g
  # The locally built trainer binary, by digest.
  image: ko.local/aerie/trainer@sha256:%s
  deadline: 1h
`, runName, d.Arch, d.Epochs, learningRate(d.LearningRate), schedule(d.Schedule), dataURI, digest, d.Workers, fileURI(d.path("store")), d.MinTestAccuracy, d.MinClassAccuracy, image)
	pinFile := fmt.Sprintf(`# The demo fleet's pins: written by make demo, then set by promote.
apiVersion: %s
kind: %s
fleet: %s
requireSignature: false
stable:
  uri: %s
  manifestDigest: %s
  minSelfTestAccuracy: 0.5
`, pins.APIVersion, pins.Kind, fleet, fileURI(d.path("store", "teams", runspec.DefaultTeam, "models", runName, "none")), pins.PlaceholderDigest)
	files := map[string]string{
		filepath.Join("apps", "jobs", "runs", runName+".yaml"): run,
		filepath.FromSlash(pins.File(fleet)):                   pinFile,
	}
	for name, content := range files {
		if err := writeFile(d.path("repo", name), content); err != nil {
			return nil, err
		}
	}
	head, err := clone.Head()
	if err != nil {
		return nil, err
	}
	if err := d.command(ctx, d.path("repo"), "aerie", "run", "render", "--revision", head.Hash().String()); err != nil {
		return nil, err
	}
	if _, err := commit(clone, "jobs: declare the demo run"); err != nil {
		return nil, err
	}
	return clone, nil
}

func schedule(s string) string {
	if s == "" {
		return ""
	}
	return "\n    schedule: " + s
}

func learningRate(lr float64) string {
	if lr == 0 {
		return ""
	}
	return fmt.Sprintf("\n    learningRate: %g", lr)
}

func (d *demo) promote(ctx context.Context, clone *git.Repository) error {
	desc := d.path("promotion.md")
	if err := d.command(ctx, d.path("repo"), "aerie", "promote", "--run", runName, "--fleet", fleet, "--version", "newest", "--local-fleet", "--description", desc); err != nil {
		return err
	}
	b, err := os.ReadFile(d.path("repo", filepath.FromSlash(pins.File(fleet))))
	if err != nil {
		return err
	}
	p, err := pins.Parse(fleet+".yaml", b)
	if err != nil {
		return err
	}
	d.sum.RunName, d.sum.ModelURI, d.sum.ManifestDigest = runName, p.Stable.URI, p.Stable.ManifestDigest
	if err := d.readManifest(ctx); err != nil {
		return err
	}
	hash, err := commit(clone, pins.Dir+": promote "+runName+" to stable")
	if err != nil {
		return err
	}
	d.sum.PinCommit = hash
	fmt.Fprintf(d.Stdout, "    pinned %s in commit %s; PR description in %s\n", p.Stable.URI, hash[:12], desc)
	return nil
}

func (d *demo) readManifest(ctx context.Context) error {
	s, err := store.Open(ctx, d.sum.ModelURI)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Get(ctx, manifest.FileName)
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return err
	}
	d.sum.TestAccuracy, d.sum.ClassAccuracy, d.sum.Classes = m.Metrics.TestAccuracy, m.Metrics.ClassAccuracy, m.Model.Classes
	return nil
}

func commit(repo *git.Repository, msg string) (string, error) {
	wt, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", fmt.Errorf("git add: %w", err)
	}
	sig := &object.Signature{Name: "aerie demo", Email: "demo@aerie.dev", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
	if err != nil {
		return "", fmt.Errorf("git commit: %w", err)
	}
	return h.String(), nil
}

func (d *demo) fly(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	frames, stream, err := d.framesAndGPIO()
	if err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: aerie.dev/v1alpha1
kind: EdgeConfig
device:
  id: %s
  fleet: %s
repo:
  url: %s
  branch: %s
  pollInterval: 2s
store:
  statusURI: %s
dataDir: %s
status:
  listen: %s
%s`, deviceID, fleet, fileURI(d.path("repo")), d.branch(), fileURI(d.path("store")), d.path("edge"), addr, frames)
	if err := writeFile(d.path("edge.yaml"), config); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stream != nil {
		camera, err := startCamera(ctx, d.path("camera.mjpeg"), stream)
		if err != nil {
			return err
		}
		defer camera.Wait()
	}
	agent := d.cmd(ctx, d.out, "aerie-edge", "--config", d.path("edge.yaml"))
	if err := agent.Start(); err != nil {
		return fmt.Errorf("start aerie-edge: %w", err)
	}
	// exited is closed when the agent has exited, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = agent.Wait(); close(exited) }()
	stop := func() error {
		cancel()
		<-exited
		return waitErr
	}

	base := "http://" + addr
	st, err := waitReady(ctx, base, d.sum.ManifestDigest, 3*time.Minute, exited)
	if err != nil {
		if werr := stop(); werr != nil && !isSignal(werr) {
			err = fmt.Errorf("%w (aerie-edge: %v; its log is above)", err, werr)
		}
		return err
	}
	fmt.Fprintf(d.Stdout, "    Ready: %s; flying for %s\n", readyMessage(st), d.Fly)
	before, err := scrape(ctx, base)
	if err != nil {
		stop()
		return err
	}
	t0 := time.Now()
	select {
	case <-time.After(d.Fly):
	case <-exited:
		return fmt.Errorf("aerie-edge exited while flying: %v", waitErr)
	}
	after, err := scrape(ctx, base)
	elapsed := time.Since(t0)
	if err == nil {
		st, err = getStatus(ctx, base)
	}
	d.sum.AgentPeakRSS, _ = peakRSS(agent.Process.Pid)
	if werr := stop(); err == nil && werr != nil && !isSignal(werr) {
		err = fmt.Errorf("aerie-edge: %w", werr)
	}
	if err != nil {
		return err
	}
	d.sum.Frames = int64(after.counter("aerie_edge_frames_total"))
	d.sum.FramesPerSec = (after.counter("aerie_edge_frames_total") - before.counter("aerie_edge_frames_total")) / elapsed.Seconds()
	if n, sum := after.histogram("aerie_edge_classify_seconds"); n > 0 {
		d.sum.MeanLatency = time.Duration(sum / float64(n) * float64(time.Second))
	}
	d.sum.GPIOChanges = map[string]int64{}
	for _, s := range after["aerie_edge_gpio_changes_total"].GetMetric() {
		var labels []string
		for _, l := range s.GetLabel() {
			labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		d.sum.GPIOChanges["{"+strings.Join(labels, ",")+"}"] = int64(s.GetCounter().GetValue())
	}
	d.sum.Conditions = st.Conditions
	if st.Active != nil {
		d.sum.Active = st.Active.Run + "/" + st.Active.Version
		if st.Active.SelfTest != nil {
			d.sum.SelfTest = st.Active.SelfTest.Accuracy
		}
	}
	return nil
}

// fmnistFrames flies the ingested dataset's test images and drives two
// outputs.
const fmnistFrames = `frames:
  source: dataset
  path: %s
  loop: true
gpio:
  chip: sim
  outputs:
    - name: footwear
      line: 17
      classes: [Sandal, Sneaker, Ankle boot]
      minConfidence: 0.8
    - name: bag
      line: 22
      classes: [Bag]
      minConfidence: 0.9
`

// framesAndGPIO is the edge config's frames and gpio sections. The shapes
// fly as an MJPEG stream of their test images, the stream returned, with
// one output per class, named after it.
func (d *demo) framesAndGPIO() (string, []byte, error) {
	if d.Dataset == DatasetFMNIST {
		return fmt.Sprintf(fmnistFrames, d.datasetURI), nil, nil
	}
	classes, stream, err := mjpegStream(filepath.Join(d.DataDir, "test"))
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "frames:\n  source: mjpeg\n  path: %s\ngpio:\n  chip: sim\n  outputs:\n", d.path("camera.mjpeg"))
	for i, c := range classes {
		fmt.Fprintf(&b, "    - name: %s\n      line: %d\n      classes: [%s]\n      minConfidence: 0.5\n", c, 17+i, c)
	}
	return b.String(), stream, nil
}

// startCamera plays stream into a new FIFO at path, over and over, as a
// camera does into the pipe the agent reads (rpicam-vid --codec mjpeg -o
// FIFO), until ctx is done. Wait waits for it to stop.
func startCamera(ctx context.Context, path string, stream []byte) (*sync.WaitGroup, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	// Read-write, so the open does not wait for the agent.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("camera: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := f.Write(stream); err != nil {
				return
			}
		}
	})
	context.AfterFunc(ctx, func() { f.Close() }) // unblocks the write
	return &wg, nil
}

// framesPerImage is how many frames the camera sees each test image for:
// more than the outputs' debounce (3 frames by default).
const framesPerImage = 6

// mjpegStream returns the classes of dir/<class>/ and their images as one
// stream of JPEGs, as a camera sends them: each image for framesPerImage
// frames, the classes interleaved.
func mjpegStream(dir string) ([]string, []byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var classes []string
	var files [][]string
	for _, e := range ents {
		names, err := filepath.Glob(filepath.Join(dir, e.Name(), "*"))
		if err != nil {
			return nil, nil, err
		}
		classes, files = append(classes, e.Name()), append(files, names)
	}
	var out bytes.Buffer
	for i := 0; ; i++ {
		wrote := false
		for _, names := range files {
			if i >= len(names) {
				continue
			}
			f, err := os.Open(names[i])
			if err != nil {
				return nil, nil, err
			}
			img, _, err := image.Decode(f)
			f.Close()
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", names[i], err)
			}
			var b bytes.Buffer
			if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
				return nil, nil, err
			}
			out.Write(bytes.Repeat(b.Bytes(), framesPerImage))
			wrote = true
		}
		if !wrote {
			break
		}
	}
	return classes, out.Bytes(), nil
}

func (d *demo) branch() string {
	repo, err := git.PlainOpen(d.path("repo"))
	if err != nil {
		return "main"
	}
	head, err := repo.Head()
	if err != nil || !head.Name().IsBranch() {
		return "main"
	}
	return head.Name().Short()
}

// readyMessage is the reason and message of s's Ready condition.
func readyMessage(s *devicestatus.Status) string {
	if c := s.Condition(meta.ReadyCondition); c != nil {
		return c.Reason + ": " + c.Message
	}
	return "no Ready condition"
}

func waitReady(ctx context.Context, base, digest string, timeout time.Duration, exited <-chan struct{}) (*devicestatus.Status, error) {
	var last *devicestatus.Status
	var lastErr error
	errExited := errors.New("aerie-edge exited before installing the model")
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, errExited
		default:
		}
		st, err := getStatus(ctx, base)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last = st
		return apimeta.IsStatusConditionTrue(st.Conditions, meta.ReadyCondition) && st.Active != nil && st.Active.ManifestDigest == digest, nil
	})
	switch {
	case err == nil:
		return last, nil
	case errors.Is(err, errExited), ctx.Err() != nil:
		return nil, err
	case last != nil:
		return nil, fmt.Errorf("aerie-edge not Ready with %s after %s: %s", digest, timeout, readyMessage(last))
	default:
		return nil, fmt.Errorf("aerie-edge status at %s not reachable after %s: %v", base, timeout, lastErr)
	}
}

func getStatus(ctx context.Context, base string) (*devicestatus.Status, error) {
	b, err := get(ctx, base+"/status")
	if err != nil {
		return nil, err
	}
	var st devicestatus.Status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode %s/status: %w", base, err)
	}
	return &st, nil
}

// scrape reads the agent's Prometheus metrics.
func scrape(ctx context.Context, base string) (metrics, error) {
	b, err := get(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", base, err)
	}
	return fams, nil
}

// metrics are the metric families of one scrape, by name.
type metrics map[string]*dto.MetricFamily

// counter is the value of the counter name (0 when absent).
func (m metrics) counter(name string) float64 {
	var v float64
	for _, s := range m[name].GetMetric() {
		v += s.GetCounter().GetValue()
	}
	return v
}

// histogram is the sample count and sum of the histogram name.
func (m metrics) histogram(name string) (count uint64, sum float64) {
	for _, s := range m[name].GetMetric() {
		count += s.GetHistogram().GetSampleCount()
		sum += s.GetHistogram().GetSampleSum()
	}
	return count, sum
}

func get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// peakRSS reads a live process's high-water resident set (VmHWM).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// isSignal reports whether err is how a process we stopped ended: killed
// by a signal, or (exec's report of) exiting non-zero after cancellation.
func isSignal(err error) bool {
	var exit *exec.ExitError
	return errors.Is(err, context.Canceled) || errors.As(err, &exit) && !exit.Exited()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileURI(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func (d *demo) print() {
	s := &d.sum
	w := d.Stdout
	fmt.Fprintf(w, "\n  model        %s\n  manifest     %s\n", s.ModelURI, s.ManifestDigest)
	fmt.Fprintf(w, "  trained in   %s with %d workers\n", s.TrainWall.Round(time.Second), d.Workers)
	fmt.Fprintf(w, "  test acc.    %.2f%% (%s test split)\n", 100*s.TestAccuracy, d.Dataset)
	for i, acc := range s.ClassAccuracy {
		name := fmt.Sprint(i)
		if i < len(s.Classes) {
			name = s.Classes[i]
		}
		fmt.Fprintf(w, "    %-12s %.2f%%\n", name, 100*acc)
	}
	fmt.Fprintf(w, "  pin commit   %s (%s in %s)\n", s.PinCommit, pins.File(fleet), d.path("repo"))
	fmt.Fprintf(w, "  device       %s runs %s, self-test %.2f%%\n", deviceID, s.Active, 100*s.SelfTest)
	for _, c := range s.Conditions {
		fmt.Fprintf(w, "    %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	fmt.Fprintf(w, "  frames       %d classified, %.1f frames/s, %s mean latency\n", s.Frames, s.FramesPerSec, s.MeanLatency.Round(time.Microsecond))
	for k, v := range s.GPIOChanges {
		fmt.Fprintf(w, "    gpio %s changes: %d\n", k, v)
	}
	fmt.Fprintf(w, "  agent RSS    %.1f MiB peak\n", float64(s.AgentPeakRSS)/(1<<20))
}
