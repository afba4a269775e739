package mission

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aerie-ml/aerie/edge/internal/gpio"
)

func TestSignals(t *testing.T) {
	lockFile := filepath.Join(t.TempDir(), "mission.lock")
	l := &Lock{LockFile: lockFile}
	if l.Active() {
		t.Fatal("Active() with no signal")
	}
	changed := l.Changed()

	os.WriteFile(lockFile, nil, 0o644)
	if !l.Active() {
		t.Error("lock file does not hold the lock")
	}
	os.Remove(lockFile)
	if l.Active() {
		t.Error("removed lock file still holds the lock")
	}
	select {
	case <-changed:
	default:
		t.Error("no change signalled")
	}

	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	do := func(method, body string) {
		req, _ := http.NewRequest(method, srv.URL+"/mission", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("POST", "")
	if !l.Active() {
		t.Error("POST /mission does not hold the lock")
	}
	do("POST", `{"active": false}`)
	if l.Active() {
		t.Error(`POST {"active": false} does not release`)
	}
	do("POST", `{}`)
	do("POST", `{"active": true}`)
	do("DELETE", "")
	if l.Active() {
		t.Error("DELETE /mission does not release")
	}

	chip := gpio.NewSim()
	w, _ := chip.Watch(27, l.SetGPIO)
	defer w.Close()
	chip.SetInput(27, true)
	if !l.Active() {
		t.Error("GPIO input does not hold the lock")
	}
	chip.SetInput(27, false)
	if l.Active() {
		t.Error("GPIO input low still holds the lock")
	}
}

// TestHTTPSurvivesRestart: the HTTP signal is on disk before /mission
// answers, so a restart (a new Lock over the same state file) keeps it;
// a state file that cannot be read holds the lock.
func TestHTTPSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "mission.json")
	l := &Lock{StateFile: state}
	if err := l.Load(); err != nil || l.Active() {
		t.Fatalf("fresh Load() = %v, Active() = %v; want nil, false", err, l.Active())
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	do := func(method string) int {
		req, _ := http.NewRequest(method, srv.URL+"/mission", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	restart := func() *Lock {
		l := &Lock{StateFile: state}
		l.Load()
		return l
	}
	do("POST")
	if !restart().Active() {
		t.Error("the HTTP mission lock did not survive a restart")
	}
	do("DELETE")
	if restart().Active() {
		t.Error("a released HTTP mission lock is held after a restart")
	}

	for name, setup := range map[string]func(){
		"torn":       func() { os.WriteFile(state, []byte(`{"ht`), 0o644) },
		"unreadable": func() { os.Remove(state); os.MkdirAll(filepath.Join(state, "x"), 0o755) },
	} {
		setup()
		l := &Lock{StateFile: state}
		if err := l.Load(); err == nil || !l.Active() {
			t.Errorf("%s state file: Load() = %v, Active() = %v; want an error and the lock held", name, err, l.Active())
		}
	}
	// Cannot persist (a directory is in the way): a release is refused.
	l = &Lock{StateFile: state}
	l.Load()
	srv.Config.Handler = l.Handler()
	if code := do("DELETE"); code != http.StatusServiceUnavailable || !l.Active() {
		t.Errorf("DELETE that cannot persist = %d, Active() = %v; want 503 and held", code, l.Active())
	}
	os.RemoveAll(state)
	if code := do("DELETE"); code != http.StatusOK || l.Active() {
		t.Errorf("DELETE once the state file can be written = %d, Active() = %v; want 200 and released", code, l.Active())
	}
}
