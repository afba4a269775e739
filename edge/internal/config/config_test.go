package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseDeployExample(t *testing.T) {
	data, err := os.ReadFile("../../deploy/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("edge.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	line := 27
	want := &Config{
		APIVersion: APIVersion, Kind: Kind,
		Device:           Device{ID: "pi-0001", Fleet: "quadcopters"},
		Repo:             Repo{URL: "https://github.com/aerie-ml/aerie.git", Branch: "main", Path: "fleets/quadcopters.yaml", KeysDir: "fleets/keys", PollInterval: time.Minute, Timeout: time.Minute},
		Store:            Store{StatusURI: "gs://aerie-models", Timeout: 5 * time.Minute},
		DataDir:          "/var/lib/aerie",
		KeepVersions:     3,
		RequireSignature: true,
		Status:           Status{Listen: "127.0.0.1:9100"},
		Mission:          Mission{LockFile: "/run/aerie/mission.lock", HTTP: true, GPIOLine: &line},
		Frames:           Frames{Source: SourceMJPEG, Path: "/run/aerie/camera.mjpeg", Invert: true},
		GPIO: GPIO{Chip: "gpiochip0", Outputs: []Output{
			{Name: "footwear", Line: 17, Classes: []string{"Sandal", "Sneaker", "Ankle boot"}, MinConfidence: 0.8, DebounceFrames: 3},
			{Name: "bag", Line: 22, Classes: []string{"Bag"}, MinConfidence: 0.9, DebounceFrames: 3},
		}},
		Inference: Inference{MemoryLimitMiB: 48},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse diff (-want +got):\n%s", diff)
	}
}

const minimal = `apiVersion: aerie.dev/v1alpha1
kind: EdgeConfig
device: {id: pi-7, fleet: rovers}
repo: {url: "file:///srv/git/aerie.git"}
`

func TestDefaults(t *testing.T) {
	c, err := Parse("m.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Repo.Path != "fleets/rovers.yaml" || c.Repo.Branch != "main" || c.Repo.PollInterval != time.Minute ||
		c.KeepVersions != 3 || c.Frames.Source != SourceNone || c.Status.Listen != "127.0.0.1:9100" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	gpio := minimal + "gpio:\n  chip: gpiochip0\n  outputs:\n    - {name: a, line: 3, classes: [Bag]}\n"
	tests := []struct{ name, in, want string }{
		{"unknown", minimal + "colour: red\n", "c.yaml:5: colour: unknown field; check its spelling and indentation"},
		{"bad id", strings.Replace(minimal, "pi-7", "Pi 7", 1), "c.yaml:3: device.id: \"Pi 7\" is not a DNS label (lowercase letters, digits, '-')"},
		{"repo url", strings.Replace(minimal, "file:///srv/git/aerie.git", "ftp://x", 1), "c.yaml:4: repo.url: \"ftp://x\": want an https://, http://, ssh:// or file:// git URL"},
		{"duration", minimal + "dataDir: /d\nrepo2: 1\n", "c.yaml:6: repo2: unknown field; check its spelling and indentation"},
		{"poll", strings.Replace(minimal, `"}`, `", pollInterval: 10ms}`, 1), "c.yaml:4: repo.pollInterval: 10ms is below 1s"},
		{"listen", minimal + "status: {listen: \"0.0.0.0:9100\"}\n", "c.yaml:5: status.listen: \"0.0.0.0:9100\" is not a loopback address; the status server has no authentication"},
		{"class", strings.Replace(gpio, "[Bag]", `[" Bag"]`, 1), "c.yaml:8: gpio.outputs[0].classes[0]: \" Bag\" is not a class name: starts or ends with white space"},
		{"class twice", strings.Replace(gpio, "[Bag]", "[Bag, Bag]", 1), "c.yaml:8: gpio.outputs[0].classes[1]: \"Bag\" is listed twice"},
		{"chip", strings.Replace(gpio, "gpiochip0", "/dev/gpiochip0", 1), "c.yaml:6: gpio.chip: \"/dev/gpiochip0\": want gpiochipN or sim"},
		{"line twice", gpio + "    - {name: b, line: 3, classes: [Coat]}\n", "c.yaml:9: gpio.outputs[1].line: 3 is negative or used twice"},
		{"source", minimal + "frames: {source: webcam}\n", "c.yaml:5: frames.source: \"webcam\": want one of dir, dataset, mjpeg, v4l2, none"},
		{"path", minimal + "frames: {source: dir}\n", "c.yaml:5: frames.path: is required for source \"dir\""},
		{"mission line", gpio + "mission: {gpioLine: 3}\n", "c.yaml:8: gpio.outputs[0].line: 3 is also mission.gpioLine"},
		{"type", minimal + "keepVersions: many\n", "c.yaml:5: keepVersions: want an integer, got a string \"many\""},
		{"status uri", minimal + "store: {statusURI: \"gs://b//x\"}\n", "c.yaml:5: store.statusURI: \"gs://b//x\": bucket \"b\": must be 3 to 222 characters (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"status uri bucket", minimal + "store: {statusURI: \"gs://AB\"}\n", "c.yaml:5: store.statusURI: \"gs://AB\": bucket \"AB\": must be 3 to 222 characters (want gs://bucket[/prefix] or file:///absolute/path): bad store URI"},
		{"repo path", strings.Replace(minimal, `"}`, `", path: ../x.yaml}`, 1), "c.yaml:4: repo.path: \"../x.yaml\": want a clean path relative to the repository root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse() error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseSimChip(t *testing.T) {
	c, err := Parse("c.yaml", []byte(minimal+"gpio:\n  chip: sim\n  outputs:\n    - {name: a, line: 3, classes: [Bag]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.GPIO.Chip != SimChip {
		t.Errorf("gpio.chip = %q, want %q", c.GPIO.Chip, SimChip)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("../../deploy/edge.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if c.KeepVersions < 1 || c.Repo.PollInterval < time.Second || c.Repo.Path == "" {
			t.Fatalf("valid config with bad values: %+v", c)
		}
	})
}
