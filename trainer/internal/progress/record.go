package progress

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// FormatRecord turns one slog JSON record into the text a terminal shows,
// `LEVEL msg key=value ...` in the record's order, without its time and
// the attributes named in omit (a rank's lines omit "rank": the launcher
// prefixes it). ok is false when line is not such a record; it is then
// shown as it is.
func FormatRecord(line []byte, omit ...string) (text string, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	var level, msg string
	var attrs []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", false
		}
		switch {
		case key == "time" || slices.Contains(omit, key):
		case key == "level":
			level = unquote(v)
		case key == "msg":
			msg = unquote(v)
		default:
			attrs = append(attrs, key+"="+textValue(v))
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') || dec.More() || level == "" {
		return "", false
	}
	return strings.Join(append([]string{level, msg}, attrs...), " "), true
}

func unquote(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return string(v)
	}
	return s
}

// textValue shows strings bare unless they need quotes, as slog's text
// handler does; numbers, booleans and objects as JSON.
func textValue(v json.RawMessage) string {
	if len(v) == 0 || v[0] != '"' {
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String()
		}
		return string(v)
	}
	s := unquote(v)
	if s == "" || strings.ContainsAny(s, " =\"\t\n") {
		return strconv.Quote(s)
	}
	return s
}
