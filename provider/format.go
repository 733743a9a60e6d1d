package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
)

// MaxValueSize is Swarm's limit on a secret value (swarmkit's MaxSecretSize):
// a larger value makes the dispatcher drop the assignment, so it is refused
// here with an error the operator can read.
const MaxValueSize = 500 * 1024

// render turns a secret's data into the bytes of the secret file. It never
// puts a value into an error: errors name fields and labels only.
func render(data map[string]any, p Plan) ([]byte, error) {
	var v any = data
	if p.Field != "" {
		fv, ok := data[p.Field]
		if !ok {
			return nil, missingField(data, p)
		}
		v = fv
	}

	var out []byte
	var err error
	switch p.Format {
	case FormatRaw:
		if s, ok := v.(string); ok {
			out = []byte(s)
		} else {
			out, err = marshal(v)
		}
	case FormatJSON:
		out, err = marshal(v)
	case FormatEnv:
		out, err = envLines(data, p)
	case FormatTemplate:
		// A bounded writer: a template's loops could otherwise render far
		// more than Swarm's limit into memory before the size check below.
		b := cappedBuffer{max: MaxValueSize}
		if err = p.Template.Execute(&b, v); errors.Is(err, errTooLarge) {
			return nil, tooLarge(p)
		} else if err != nil {
			return nil, fmt.Errorf("label %s failed on %s: %s", LabelTemplate, p.where(), templateError(p.Template, v))
		}
		out = b.Bytes()
	default:
		return nil, fmt.Errorf("format %q has no renderer", p.Format)
	}
	if err != nil {
		return nil, err
	}

	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("%s gives an empty value and Swarm refuses empty secrets: check %s and the data in Vault", p.where(), LabelField)
	case len(out) >= MaxValueSize:
		return nil, tooLarge(p)
	}
	return out, nil
}

// templateError is a failed vault.template's error for the log and
// Response.Err. text/template quotes the data in some errors ("range can't
// iterate over <value>"), so the error shown is that of the same template
// run again over the data with every value hidden: it has the same position
// and cause, and can quote nothing but the data's keys, which errors name
// anyway.
func templateError(t *template.Template, data any) string {
	err := t.Execute(&cappedBuffer{max: MaxValueSize}, hideValues(data))
	if err == nil || errors.Is(err, errTooLarge) {
		return "it fails on the data (the cause is not shown, as it would quote the secret)"
	}
	return err.Error()
}

// hideValues copies data with every value replaced by one of its type.
func hideValues(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = hideValues(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = hideValues(e)
		}
		return out
	case string:
		return "<hidden>"
	case json.Number:
		return json.Number("0")
	case int: // a vault.type=token secret's ttl
		return 0
	case bool:
		return false
	default:
		return nil
	}
}

func tooLarge(p Plan) error {
	return fmt.Errorf("%s gives %d bytes or more, over Swarm's limit of %d: select less with %s", p.where(), MaxValueSize, MaxValueSize-1, LabelField)
}

// errTooLarge stops a template once its output reaches Swarm's limit.
var errTooLarge = errors.New("value too large")

// cappedBuffer is a bytes.Buffer that refuses to grow to max bytes.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.Len()+len(p) >= c.max {
		return 0, errTooLarge
	}
	return c.Buffer.Write(p)
}

func missingField(data map[string]any, p Plan) error {
	return fmt.Errorf("label %s=%s names no field of %s (its fields: %s)", LabelField, quote(p.Field), p.where(), fieldList(data))
}

// marshal writes JSON as a user expects to read it in a file: no HTML
// escaping of <, > and &, no trailing newline. Numbers arrive as json.Number
// from the Vault client and keep their exact text.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Deliberately not wrapping err: its text could quote secret content.
		return nil, fmt.Errorf("the data cannot be written as JSON")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// envLines writes KEY=value lines, one per field (or only the selected field),
// sorted by key. A value with a newline cannot be written on one line and is
// refused rather than silently mangled.
func envLines(data map[string]any, p Plan) ([]byte, error) {
	keys := slices.Sorted(maps.Keys(data))
	if p.Field != "" {
		keys = []string{p.Field}
	}
	var b bytes.Buffer
	for _, k := range keys {
		if strings.ContainsAny(k, "=\n") {
			return nil, fmt.Errorf("field %q of %s cannot be an env name: use %s=json", k, p.where(), LabelFormat)
		}
		v := data[k]
		s, ok := v.(string)
		if !ok {
			raw, err := marshal(v)
			if err != nil {
				return nil, err
			}
			s = string(raw)
		}
		if strings.Contains(s, "\n") {
			return nil, fmt.Errorf("field %s of %s holds a newline, which %s=env cannot write: use %s=json or select another field", k, p.where(), LabelFormat, LabelFormat)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, s)
	}
	return b.Bytes(), nil
}

func fieldList(data map[string]any) string {
	if len(data) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(data)), ", ")
}
