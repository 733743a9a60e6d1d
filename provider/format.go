package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
		var b bytes.Buffer
		if err = p.Template.Execute(&b, v); err != nil {
			// text/template's message names the template and the key, not data.
			return nil, fmt.Errorf("label %s failed on %s: %v", LabelTemplate, p.where(), err)
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
		return nil, fmt.Errorf("%s gives %d bytes, over Swarm's limit of %d: select less with %s", p.where(), len(out), MaxValueSize-1, LabelField)
	}
	return out, nil
}

// selectData is what a wrapped value holds: the selected field under its own
// name, or all the data.
func selectData(data map[string]any, p Plan) (map[string]any, error) {
	if p.Field == "" {
		return data, nil
	}
	v, ok := data[p.Field]
	if !ok {
		return nil, missingField(data, p)
	}
	return map[string]any{p.Field: v}, nil
}

func missingField(data map[string]any, p Plan) error {
	return fmt.Errorf("label %s=%s names no field of %s (its fields: %s)", LabelField, p.Field, p.where(), fieldList(data))
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
	keys := sortedKeys(data)
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
	return strings.Join(sortedKeys(data), ", ")
}

func sortedKeys(data map[string]any) []string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
