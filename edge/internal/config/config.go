// Package config reads the edge agent's device configuration,
// /etc/aerie/edge.yaml: who the device is, where its pins live, where
// frames come from and what the GPIO lines mean.
package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/aerie-ml/aerie/internal/dataset"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/store"
	"github.com/aerie-ml/aerie/internal/strictyaml"
)

// APIVersion and Kind identify a device configuration.
const (
	APIVersion = "aerie.dev/v1alpha1"
	Kind       = "EdgeConfig"
)

// DefaultPath is where the systemd unit points the agent.
const DefaultPath = "/etc/aerie/edge.yaml"

// Config is the device configuration. Zero fields take the defaults
// documented in edge/README.md.
type Config struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Device     Device `yaml:"device"`
	Repo       Repo   `yaml:"repo"`
	Store      Store  `yaml:"store"`
	// DataDir holds the installed versions, staging and state.
	DataDir string `yaml:"dataDir"`
	// KeepVersions is how many installed versions, the active one included,
	// stay on disk for rollback.
	KeepVersions int `yaml:"keepVersions"`
	// RequireSignature makes the device demand a signed manifest even when
	// the fleet's pins do not.
	RequireSignature bool      `yaml:"requireSignature"`
	Status           Status    `yaml:"status"`
	Mission          Mission   `yaml:"mission"`
	Frames           Frames    `yaml:"frames"`
	GPIO             GPIO      `yaml:"gpio"`
	Inference        Inference `yaml:"inference"`
}

// Device identifies the device.
type Device struct {
	ID    string `yaml:"id"`
	Fleet string `yaml:"fleet"`
}

// Repo is where the fleet's pins are.
type Repo struct {
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	// Path of the pin file in the repo; default fleets/<fleet>.yaml.
	Path string `yaml:"path"`
	// KeysDir holds the trusted *.pub keys; default fleets/keys.
	KeysDir      string        `yaml:"keysDir"`
	PollInterval time.Duration `yaml:"pollInterval"`
	// Timeout bounds each ls-remote and each fetch; default 1m.
	Timeout time.Duration `yaml:"timeout"`
}

// Store is where status is uploaded (models come from the pin's URI).
type Store struct {
	// StatusURI is a store root (gs://bucket[/prefix] or file:///path); the
	// agent writes status/devices/<id>.json under it. Empty: no upload.
	StatusURI string `yaml:"statusURI"`
	// Timeout bounds the download of one version and each status upload;
	// default 5m.
	Timeout time.Duration `yaml:"timeout"`
}

// Status configures the local status server.
type Status struct {
	// Listen is the address of /status, /metrics and /mission; keep it on
	// loopback. "off" disables the server.
	Listen string `yaml:"listen"`
}

// Mission says how the device learns it is on a mission.
type Mission struct {
	LockFile string `yaml:"lockFile"`
	// HTTP enables POST/DELETE /mission on the status server.
	HTTP bool `yaml:"http"`
	// GPIOLine, when set, is an input line that is high during a mission.
	GPIOLine *int `yaml:"gpioLine"`
}

// Frame source kinds.
const (
	SourceDir     = "dir"     // a directory of PNG/JPEG images
	SourceDataset = "dataset" // the test split of an ingested dataset, by its root URI
	SourceMJPEG   = "mjpeg"   // concatenated JPEGs on a pipe or file (rpicam-vid --codec mjpeg -o -)
	SourceV4L2    = "v4l2"    // a V4L2 camera capturing MJPEG
	SourceNone    = "none"    // no inference, only model management
)

// Frames says where frames come from.
type Frames struct {
	Source string `yaml:"source"`
	// Path is the directory, dataset URI, pipe or file ("-" is stdin) or
	// /dev/videoN.
	Path string `yaml:"path"`
	// Interval paces file sources; 0 means as fast as the model goes.
	Interval time.Duration `yaml:"interval"`
	// Loop replays file sources forever.
	Loop bool `yaml:"loop"`
	// Invert maps dark-on-light camera images to Fashion-MNIST's
	// light-on-dark.
	Invert bool `yaml:"invert"`
	Width  int  `yaml:"width"`
	Height int  `yaml:"height"`
}

// SimChip names the in-memory GPIO chip: lines change only in the agent's
// metrics and logs.
const SimChip = "sim"

// GPIO maps classes to output lines.
type GPIO struct {
	// Chip is the GPIO character device, e.g. gpiochip0, or "sim" for an
	// in-memory chip (demos, bench tests); empty: no GPIO
	// (decisions are only logged).
	Chip    string   `yaml:"chip"`
	Outputs []Output `yaml:"outputs"`
}

// Output drives one line high while the model sees one of Classes.
type Output struct {
	Name          string   `yaml:"name"`
	Line          int      `yaml:"line"`
	Classes       []string `yaml:"classes"`
	MinConfidence float64  `yaml:"minConfidence"`
	// DebounceFrames is how many consecutive frames must agree before the
	// line changes; default 3.
	DebounceFrames int `yaml:"debounceFrames"`
	// ActiveLow inverts the line.
	ActiveLow bool `yaml:"activeLow"`
}

// Inference tunes the runtime for a small device.
type Inference struct {
	// MemoryLimitMiB sets the Go soft memory limit; default 48.
	MemoryLimitMiB int `yaml:"memoryLimitMiB"`
}

// Error is a problem in the configuration, located by file, line and field.
type Error = strictyaml.Error

var chipRE = regexp.MustCompile(`^gpiochip[0-9]+$`)

// isLabel: device IDs, fleets and output names are DNS labels.
func isLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }

// Parse decodes, defaults and validates a configuration strictly.
func Parse(filename string, data []byte) (*Config, error) {
	var c Config
	root, err := strictyaml.Decode(filename, data, &c)
	if err != nil {
		return nil, err
	}
	c.Default()
	v := validator{strictyaml.Validator{File: filename, Root: root}}
	v.check(&c)
	if v.Err != nil {
		return nil, v.Err
	}
	return &c, nil
}

// Default fills zero fields.
func (c *Config) Default() {
	if c.Repo.Branch == "" {
		c.Repo.Branch = "main"
	}
	if c.Repo.Path == "" && c.Device.Fleet != "" {
		c.Repo.Path = pins.File(c.Device.Fleet)
	}
	if c.Repo.KeysDir == "" {
		c.Repo.KeysDir = pins.KeysDir
	}
	if c.Repo.PollInterval == 0 {
		c.Repo.PollInterval = time.Minute
	}
	if c.Repo.Timeout == 0 {
		c.Repo.Timeout = time.Minute
	}
	if c.Store.Timeout == 0 {
		c.Store.Timeout = 5 * time.Minute
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/aerie"
	}
	if c.KeepVersions == 0 {
		c.KeepVersions = 3
	}
	if c.Status.Listen == "" {
		c.Status.Listen = "127.0.0.1:9100"
	}
	if c.Frames.Source == "" {
		c.Frames.Source = SourceNone
	}
	if c.Frames.Source == SourceV4L2 {
		if c.Frames.Width == 0 {
			c.Frames.Width = 640
		}
		if c.Frames.Height == 0 {
			c.Frames.Height = 480
		}
	}
	for i := range c.GPIO.Outputs {
		if c.GPIO.Outputs[i].DebounceFrames == 0 {
			c.GPIO.Outputs[i].DebounceFrames = 3
		}
	}
	if c.Inference.MemoryLimitMiB == 0 {
		c.Inference.MemoryLimitMiB = 48
	}
}

// validator checks values after decoding.
type validator struct{ strictyaml.Validator }

func (v *validator) check(c *Config) {
	if c.APIVersion != APIVersion {
		v.Fail("apiVersion", "%q, want %q", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		v.Fail("kind", "%q, want %q", c.Kind, Kind)
	}
	if !isLabel(c.Device.ID) {
		v.Fail("device.id", "%q is not a DNS label (lowercase letters, digits, '-')", c.Device.ID)
	}
	if !isLabel(c.Device.Fleet) {
		v.Fail("device.fleet", "%q is not a DNS label (lowercase letters, digits, '-')", c.Device.Fleet)
	}
	if u, err := url.Parse(c.Repo.URL); c.Repo.URL == "" || err != nil || !slices.Contains([]string{"https", "http", "file", "ssh"}, u.Scheme) {
		v.Fail("repo.url", "%q: want an https://, http://, ssh:// or file:// git URL", c.Repo.URL)
	}
	if strings.ContainsAny(c.Repo.Branch, " ~^:?*[\\") || strings.HasPrefix(c.Repo.Branch, "-") {
		v.Fail("repo.branch", "%q is not a branch name", c.Repo.Branch)
	}
	for _, f := range []struct{ name, p string }{{"repo.path", c.Repo.Path}, {"repo.keysDir", c.Repo.KeysDir}} {
		if path.IsAbs(f.p) || path.Clean(f.p) != f.p || strings.HasPrefix(f.p, "..") {
			v.Fail(f.name, "%q: want a clean path relative to the repository root", f.p)
		}
	}
	if c.Repo.PollInterval < time.Second {
		v.Fail("repo.pollInterval", "%v is below 1s", c.Repo.PollInterval)
	}
	if c.Repo.Timeout < 0 {
		v.Fail("repo.timeout", "%v is negative", c.Repo.Timeout)
	}
	if c.Store.Timeout < 0 {
		v.Fail("store.timeout", "%v is negative", c.Store.Timeout)
	}
	if c.Store.StatusURI != "" {
		if _, err := store.ParseURI(c.Store.StatusURI); err != nil {
			v.Fail("store.statusURI", "%q: %v", c.Store.StatusURI, err)
		}
	}
	if !path.IsAbs(c.DataDir) {
		v.Fail("dataDir", "%q is not absolute", c.DataDir)
	}
	if c.KeepVersions < 1 || c.KeepVersions > 100 {
		v.Fail("keepVersions", "%d is outside 1–100", c.KeepVersions)
	}
	if c.Status.Listen != "off" {
		if ap, err := netip.ParseAddrPort(c.Status.Listen); err != nil {
			v.Fail("status.listen", "%q: want ip:port (or off): %v", c.Status.Listen, err)
		} else if !ap.Addr().IsLoopback() {
			v.Fail("status.listen", "%q is not a loopback address; the status server has no authentication", c.Status.Listen)
		}
	}
	if c.Mission.HTTP && c.Status.Listen == "off" {
		v.Fail("mission.http", "needs the status server (status.listen is off)")
	}
	if c.Mission.LockFile != "" && !path.IsAbs(c.Mission.LockFile) {
		v.Fail("mission.lockFile", "%q is not absolute", c.Mission.LockFile)
	}
	if c.Mission.GPIOLine != nil && (*c.Mission.GPIOLine < 0 || c.GPIO.Chip == "") {
		v.Fail("mission.gpioLine", "%d needs gpio.chip and a line >= 0", *c.Mission.GPIOLine)
	}
	v.frames(&c.Frames)
	v.gpio(&c.GPIO)
	if c.Mission.GPIOLine != nil {
		for i, o := range c.GPIO.Outputs {
			if o.Line == *c.Mission.GPIOLine {
				v.Fail(fmt.Sprintf("gpio.outputs[%d].line", i), "%d is also mission.gpioLine", o.Line)
			}
		}
	}
	if c.Inference.MemoryLimitMiB < 16 {
		v.Fail("inference.memoryLimitMiB", "%d is below 16", c.Inference.MemoryLimitMiB)
	}
}

func (v *validator) frames(f *Frames) {
	switch f.Source {
	case SourceNone:
	case SourceDir, SourceDataset, SourceMJPEG, SourceV4L2:
		if f.Path == "" {
			v.Fail("frames.path", "is required for source %q", f.Source)
		}
	default:
		v.Fail("frames.source", "%q: want one of dir, dataset, mjpeg, v4l2, none", f.Source)
	}
	if f.Interval < 0 {
		v.Fail("frames.interval", "%v is negative", f.Interval)
	}
	if f.Width < 0 || f.Height < 0 || f.Width > 4096 || f.Height > 4096 {
		v.Fail("frames.width", "%dx%d is outside 0–4096", f.Width, f.Height)
	}
}

func (v *validator) gpio(g *GPIO) {
	if g.Chip != "" && g.Chip != SimChip && !chipRE.MatchString(g.Chip) {
		v.Fail("gpio.chip", "%q: want gpiochipN or %s", g.Chip, SimChip)
	}
	names, lines := map[string]bool{}, map[int]bool{}
	for i, o := range g.Outputs {
		f := fmt.Sprintf("gpio.outputs[%d]", i)
		if !isLabel(o.Name) || names[o.Name] {
			v.Fail(f+".name", "%q is empty, not a DNS label or repeated", o.Name)
		}
		names[o.Name] = true
		if o.Line < 0 || lines[o.Line] {
			v.Fail(f+".line", "%d is negative or used twice", o.Line)
		}
		lines[o.Line] = true
		if len(o.Classes) == 0 {
			v.Fail(f+".classes", "is empty")
		}
		// Which classes exist is the model's to say: the reconciler refuses
		// a version that lacks one of these.
		for j, class := range o.Classes {
			if err := dataset.CheckClass(class); err != nil {
				v.Fail(fmt.Sprintf("%s.classes[%d]", f, j), "%q is not a class name: %v", class, err)
			} else if slices.Contains(o.Classes[:j], class) {
				v.Fail(fmt.Sprintf("%s.classes[%d]", f, j), "%q is listed twice", class)
			}
		}
		if o.MinConfidence < 0 || o.MinConfidence > 1 {
			v.Fail(f+".minConfidence", "%v is outside [0, 1]", o.MinConfidence)
		}
		if o.DebounceFrames < 1 || o.DebounceFrames > 1000 {
			v.Fail(f+".debounceFrames", "%d is outside 1–1000", o.DebounceFrames)
		}
	}
}
