package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// DType names an element type as safetensors spells it.
type DType string

// The element types aerie writes: weights are F32; checkpoints also hold
// I64 counters.
const (
	F32 DType = "F32"
	I64 DType = "I64"
)

func (d DType) size() int {
	switch d {
	case F32:
		return 4
	case I64:
		return 8
	}
	return 0
}

// Limits of what Decode accepts: the cnn's weights are 1.7 MB, its
// checkpoint (weights and Adam moments) about 5 MB.
const (
	MaxHeaderBytes = 1 << 20
	MaxDataBytes   = 256 << 20
	maxRank        = 8
)

// Tensor is one named tensor of a safetensors file. Data holds the raw
// little-endian elements.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Float32s returns t's elements; t must be F32.
func (t *Tensor) Float32s() []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out
}

// Int64s returns t's elements; t must be I64.
func (t *Tensor) Int64s() []int64 {
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out
}

// FromFloat32s returns an F32 tensor holding data.
func FromFloat32s(name string, shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: slices.Clone(shape), Data: b}
}

// FromInt64s returns an I64 tensor holding data.
func FromInt64s(name string, shape []int, data []int64) Tensor {
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return Tensor{Name: name, DType: I64, Shape: slices.Clone(shape), Data: b}
}

func numElements(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > MaxDataBytes/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// Encode writes tensors and metadata in the safetensors format (see the
// package documentation). Tensors are laid out in name order, so equal
// content encodes to equal bytes.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := slices.Clone(tensors)
	slices.SortFunc(sorted, func(a, b Tensor) int { return cmpString(a.Name, b.Name) })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		b, err := json.Marshal(metadata) // map keys are sorted
		if err != nil {
			return err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(b)
	}
	var off int64
	for i, t := range sorted {
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("tensor %d: invalid name %q", i, t.Name)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return fmt.Errorf("tensor %q: duplicate name", t.Name)
		}
		n, ok := numElements(t.Shape)
		if !ok || t.DType.size() == 0 || n*t.DType.size() != len(t.Data) {
			return fmt.Errorf("tensor %q: %d bytes do not fit dtype %s shape %v", t.Name, len(t.Data), t.DType, t.Shape)
		}
		e := headerEntry{DType: t.DType, Shape: t.Shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		if e.Shape == nil {
			e.Shape = []int{}
		}
		name, _ := json.Marshal(t.Name)
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(b)
		off += int64(len(t.Data))
	}
	hdr.WriteByte('}')
	// Pad so the data section starts 8-byte aligned, as the reference
	// implementation does.
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for _, t := range sorted {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// ErrFormat reports a malformed safetensors file.
var ErrFormat = errors.New("malformed safetensors")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Decode reads a safetensors file. It rejects a header or data larger than
// the limits above, unknown dtypes, shapes that do not match their byte
// ranges, ranges that overlap, leave gaps or fall outside the data, trailing
// bytes and duplicate names. Tensors come back in file order.
func Decode(r io.Reader) ([]Tensor, map[string]string, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, nil, formatErr("header length: %v", noEOF(err))
	}
	hlen := binary.LittleEndian.Uint64(n[:])
	if hlen < 2 || hlen > MaxHeaderBytes {
		return nil, nil, formatErr("header length %d out of range [2, %d]", hlen, MaxHeaderBytes)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, nil, formatErr("header: %v", noEOF(err))
	}
	type entry struct {
		name string
		headerEntry
	}
	var entries []entry
	var metadata map[string]string
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, formatErr("header is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, formatErr("header: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, nil, formatErr("header: %q appears twice", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			if err := dec.Decode(&metadata); err != nil {
				return nil, nil, formatErr("header __metadata__: %v", err)
			}
			continue
		}
		var e headerEntry
		if err := decodeStrict(dec, &e); err != nil {
			return nil, nil, formatErr("header entry %q: %v", name, err)
		}
		if name == "" {
			return nil, nil, formatErr("header: empty tensor name")
		}
		entries = append(entries, entry{name, e})
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, formatErr("header: %v", err)
	}
	if rest := bytes.TrimLeft(hdr[dec.InputOffset():], " "); len(rest) != 0 {
		return nil, nil, formatErr("header: trailing bytes after the JSON object")
	}

	// Every byte of the data section belongs to exactly one tensor.
	byOffset := slices.Clone(entries)
	slices.SortFunc(byOffset, func(a, b entry) int { return int(a.DataOffsets[0] - b.DataOffsets[0]) })
	var end int64
	for _, e := range byOffset {
		size := e.DType.size()
		if size == 0 {
			return nil, nil, formatErr("tensor %q: unsupported dtype %q", e.name, e.DType)
		}
		if len(e.Shape) > maxRank {
			return nil, nil, formatErr("tensor %q: rank %d above %d", e.name, len(e.Shape), maxRank)
		}
		elems, ok := numElements(e.Shape)
		if !ok {
			return nil, nil, formatErr("tensor %q: invalid shape %v", e.name, e.Shape)
		}
		b, f := e.DataOffsets[0], e.DataOffsets[1]
		if b != end {
			return nil, nil, formatErr("tensor %q: data starts at %d, want %d (gap or overlap)", e.name, b, end)
		}
		if f < b || f-b != int64(elems)*int64(size) {
			return nil, nil, formatErr("tensor %q: data_offsets [%d, %d] do not hold %s%v", e.name, b, f, e.DType, e.Shape)
		}
		if f > MaxDataBytes {
			return nil, nil, formatErr("tensor %q: data beyond %d bytes", e.name, MaxDataBytes)
		}
		end = f
	}
	// Read exactly the data section, then insist on EOF.
	data := make([]byte, 0, min(end, 16<<20))
	buf := bytes.NewBuffer(data)
	if got, err := io.CopyN(buf, r, end); err != nil {
		return nil, nil, formatErr("data: %d of %d bytes: %v", got, end, noEOF(err))
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k != 0 {
		return nil, nil, formatErr("trailing bytes after %d bytes of data", end)
	}
	data = buf.Bytes()
	out := make([]Tensor, len(entries))
	for i, e := range entries {
		out[i] = Tensor{Name: e.name, DType: e.DType, Shape: e.Shape, Data: data[e.DataOffsets[0]:e.DataOffsets[1]:e.DataOffsets[1]]}
		if out[i].Shape == nil {
			out[i].Shape = []int{}
		}
	}
	return out, metadata, nil
}

func decodeStrict(dec *json.Decoder, e *headerEntry) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(e); err != nil {
		return err
	}
	var probe struct {
		DType       *string          `json:"dtype"`
		Shape       *[]int           `json:"shape"`
		DataOffsets *json.RawMessage `json:"data_offsets"`
	}
	_ = json.Unmarshal(raw, &probe)
	if probe.DType == nil || probe.Shape == nil || probe.DataOffsets == nil {
		return errors.New("dtype, shape and data_offsets are required")
	}
	if o := string(*probe.DataOffsets); o == "null" {
		return errors.New("data_offsets is null")
	}
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
