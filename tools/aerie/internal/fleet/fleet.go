// Package fleet reports a fleet's state: its pins from the repository
// (fleets/<fleet>.yaml) and its devices' status documents from the
// store (status/devices/<id>.json), joined into what each device runs
// against what it should, and how far a rollout has come.
package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aerie-ml/aerie/internal/devicestatus"
	"github.com/aerie-ml/aerie/internal/pins"
	"github.com/aerie-ml/aerie/internal/repofile"
	"github.com/aerie-ml/aerie/internal/store"
)

// MaxStatusBytes bounds one status document; real ones are a few KiB.
const MaxStatusBytes = 1 << 20

// Report is one fleet's state.
type Report struct {
	Fleet   string   `json:"fleet"`
	Stable  Pin      `json:"stable"`
	Canary  *Pin     `json:"canary,omitempty"`
	Devices []Device `json:"devices"`
	// Rollout counts the devices on each pin and off both.
	Rollout Rollout `json:"rollout"`
}

// Pin is a pinned version as a person reads it.
type Pin struct {
	URI            string `json:"uri"`
	Run            string `json:"run,omitempty"`
	Version        string `json:"version,omitempty"`
	ManifestDigest string `json:"manifestDigest"`
	Placeholder    bool   `json:"placeholder,omitempty"`
	Percent        int    `json:"percent,omitempty"`
}

// Device is one device's reported state.
type Device struct {
	ID string `json:"id"`
	// Version is run/version of the active model, "" if none.
	Version        string `json:"version"`
	ManifestDigest string `json:"manifestDigest,omitempty"`
	// Track is what the device runs: "stable", "canary", or "other" (an
	// older version, or none yet).
	Track string `json:"track"`
	// Wants is the track the pins assign the device.
	Wants      string             `json:"wants"`
	Ready      string             `json:"ready"`
	Reason     string             `json:"reason,omitempty"`
	Message    string             `json:"message,omitempty"`
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	LastSeen   *time.Time         `json:"lastSeen,omitempty"`
}

// Rollout counts devices by where they are.
type Rollout struct {
	Total int `json:"total"`
	// OnStable and OnCanary run the pinned versions. Converged counts
	// the devices that run the version the pins assign them and are Ready.
	OnStable  int `json:"onStable"`
	OnCanary  int `json:"onCanary"`
	Other     int `json:"other"`
	Converged int `json:"converged"`
	// WantCanary is how many devices the canary percent selects.
	WantCanary int `json:"wantCanary"`
}

// ReadPins reads fleets/<fleet>.yaml from the repository at root.
func ReadPins(root, fleet string) (*pins.Pins, error) {
	t, err := repofile.Open(root)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	name := pins.File(fleet)
	b, err := t.ReadFile(name, pins.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("fleet %q: %w", fleet, err)
	}
	return pins.Parse(t.Path(name), b)
}

// Fleets lists the fleets of the repository at root, by name.
func Fleets(root string) ([]string, error) {
	t, err := repofile.Open(root)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	entries, err := t.ReadDir(pins.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Status reads the status documents in s and reports the devices of p's fleet.
func Status(ctx context.Context, p *pins.Pins, s store.Store) (*Report, error) {
	docs, err := Documents(ctx, s)
	if err != nil {
		return nil, err
	}
	return Join(p, docs), nil
}

// Documents reads every status/devices/<id>.json in s.
func Documents(ctx context.Context, s store.Store) ([]devicestatus.Status, error) {
	const prefix = "status/devices/"
	objects, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var docs []devicestatus.Status
	for _, o := range objects {
		name := strings.TrimPrefix(o.Key, prefix)
		if strings.Contains(name, "/") || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := get(ctx, s, o.Key)
		if err != nil {
			return nil, err
		}
		var d devicestatus.Status
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", s.URI(o.Key), err)
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func get(ctx context.Context, s store.Store, key string) ([]byte, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, MaxStatusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.URI(key), err)
	}
	if len(b) > MaxStatusBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", s.URI(key), MaxStatusBytes)
	}
	return b, nil
}

// Join reports the devices among docs that belong to p's fleet.
func Join(p *pins.Pins, docs []devicestatus.Status) *Report {
	r := &Report{Fleet: p.Fleet, Stable: pinOf(p.Stable, 0), Devices: []Device{}}
	if p.Canary != nil {
		c := pinOf(p.Canary.Version, p.Canary.Percent)
		r.Canary = &c
	}
	for _, d := range docs {
		if d.Fleet != p.Fleet {
			continue
		}
		dev := Device{ID: d.DeviceID, Track: "other", Wants: "stable", Conditions: d.Conditions, LastSeen: d.LastReconcileTime, Ready: "Unknown"}
		if p.InCanary(d.DeviceID) {
			dev.Wants = "canary"
			r.Rollout.WantCanary++
		}
		if d.Active != nil {
			dev.Version = d.Active.Run + "/" + d.Active.Version
			dev.ManifestDigest = d.Active.ManifestDigest
			switch {
			case r.Canary != nil && d.Active.ManifestDigest == r.Canary.ManifestDigest:
				dev.Track = "canary"
			case d.Active.ManifestDigest == r.Stable.ManifestDigest:
				dev.Track = "stable"
			}
		}
		for _, c := range d.Conditions {
			if c.Type == meta.ReadyCondition {
				dev.Ready, dev.Reason, dev.Message = string(c.Status), c.Reason, c.Message
			}
		}
		switch dev.Track {
		case "stable":
			r.Rollout.OnStable++
		case "canary":
			r.Rollout.OnCanary++
		default:
			r.Rollout.Other++
		}
		if dev.Track == dev.Wants && dev.Ready == "True" {
			r.Rollout.Converged++
		}
		r.Devices = append(r.Devices, dev)
	}
	r.Rollout.Total = len(r.Devices)
	slices.SortFunc(r.Devices, func(a, b Device) int { return cmp.Compare(a.ID, b.ID) })
	return r
}

// pinOf names a pin's run and version from its URI (…/models/<run>/<version>/).
func pinOf(v pins.Version, percent int) Pin {
	p := Pin{URI: v.URI, ManifestDigest: v.ManifestDigest, Placeholder: v.Placeholder(), Percent: percent}
	parts := strings.Split(strings.TrimSuffix(v.URI, "/"), "/")
	if n := len(parts); n >= 3 && parts[n-3] == "models" {
		p.Run, p.Version = parts[n-2], parts[n-1]
	}
	return p
}
