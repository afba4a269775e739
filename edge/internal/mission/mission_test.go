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
