package gpio

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCdev drives a real line. It needs a GPIO character device and a line
// that is safe to toggle: set AERIE_TEST_GPIO_CHIP (default: the first
// /dev/gpiochip*) and AERIE_TEST_GPIO_LINE (no default: toggling an
// arbitrary line of real hardware can do harm).
func TestCdev(t *testing.T) {
	chips, _ := filepath.Glob("/dev/gpiochip*")
	if len(chips) == 0 {
		t.Skip("no /dev/gpiochip*: this kernel has no GPIO character device (build machines have no GPIOLIB, so gpio-sim cannot run); runs on a Pi")
	}
	chip := os.Getenv("AERIE_TEST_GPIO_CHIP")
	if chip == "" {
		chip = chips[0]
	}
	c, err := Open(chip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lineEnv := os.Getenv("AERIE_TEST_GPIO_LINE")
	if lineEnv == "" {
		t.Skipf("%s opens; set AERIE_TEST_GPIO_LINE to a line safe to toggle to test output and input", chip)
	}
	line, err := strconv.Atoi(lineEnv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Output(line, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []bool{true, false} {
		if err := o.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	got := make(chan bool, 1)
	w, err := c.Watch(line, func(active bool) {
		select {
		case got <- active:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	<-got // the initial level
	w.Close()
}

func TestSim(t *testing.T) {
	s := NewSim()
	o, err := s.Output(17, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Output(17, false); err == nil {
		t.Error("second request of a busy line = nil error")
	}
	o.Set(true)
	o.Set(false)
	if h := s.History(17); len(h) != 3 || h[1] != true || h[2] != false {
		t.Errorf("History = %v", h)
	}
	var seen []bool
	w, _ := s.Watch(27, func(v bool) { seen = append(seen, v) })
	s.SetInput(27, true)
	w.Close()
	s.SetInput(27, false)
	if len(seen) != 2 || seen[0] || !seen[1] {
		t.Errorf("watched %v, want [false true]", seen)
	}
}
