package provider

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The fuzz targets check what must hold for any input a secret's creator or
// a service's deployer can write. `go test` runs their seed corpus (the
// table tests' cases); `make fuzz` runs each for a while.

// encodeLabels packs labels into one fuzz input: key NUL value NUL …
func encodeLabels(labels map[string]string) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b = append(b, k...)
		b = append(b, 0)
		b = append(b, labels[k]...)
		b = append(b, 0)
	}
	return b
}

func decodeLabels(b []byte) map[string]string {
	parts := strings.Split(string(b), "\x00")
	labels := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		labels[parts[i]] = parts[i+1]
	}
	return labels
}

// checkErrLine fails when err is not one line of bounded length: it is
// what Response.Err and the dockerd log show.
func checkErrLine(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") || strings.ContainsRune(msg, '\u2028') || len(msg) > MaxErrLen {
		t.Fatalf("error is not one bounded line (%d bytes): %q", len(msg), msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("error is not valid UTF-8: %q", msg)
	}
}

func FuzzParsePlan(f *testing.F) {
	for _, c := range parsePlanCases {
		f.Add(encodeLabels(c.labels))
	}
	f.Add(encodeLabels(map[string]string{"vault.path": "secret/../x\n", "vault.format": strings.Repeat("é", 100)}))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := ParsePlan(decodeLabels(in))
		if err != nil {
			checkErrLine(t, err)
			return
		}
		if p.Type != TypeToken {
			// A path the plugin accepts is the path Vault reads.
			if p.Path == "" {
				t.Fatal("a plan without a path")
			}
			if err := checkPath(LabelPath, p.Path); err != nil {
				t.Fatalf("accepted path %q: %v", p.Path, err)
			}
		}
		if p.Reuse && (p.Type != TypeKV || p.Wrap) {
			t.Fatalf("a shared value that must be per task: %+v", p)
		}
		if p.WrapsAtSource() && (p.Format != FormatRaw || p.Field != "" && p.Type != TypeToken) {
			t.Fatalf("a field or format applied to a value wrapped at its source: %+v", p)
		}
		if p.WrapsAtSource() == p.WrapsSelection() && p.Wrap {
			t.Fatalf("a wrapped value wrapped both ways, or neither: %+v", p)
		}
	})
}

func FuzzPolicies(f *testing.F) {
	for _, c := range policyTemplateCases {
		f.Add(c.text, "payments")
	}
	for _, v := range []string{"a,root", "a, swarmvault-plugin", "root", "Root", "a\nb", "", " ", "{{.ServiceName}}"} {
		f.Add(`team-{{serviceLabel "team"}}`, v)
		f.Add(`{{serviceLabel "team"}}`, v)
	}
	f.Fuzz(func(t *testing.T, text, label string) {
		pt, err := ParsePolicyTemplate(text)
		if err != nil {
			checkErrLine(t, fmt.Errorf("%s", oneLine(err.Error())))
			return
		}
		req := policyRequest()
		req.ServiceLabels = map[string]string{"team": label}
		got, err := pt.Policies(req)
		if err != nil {
			return
		}
		for _, p := range got {
			if !policyName.MatchString(p) || strings.EqualFold(p, "root") {
				t.Fatalf("template %q with label %q gave policy %q", text, label, p)
			}
		}
		// The README's template: the label names one policy, never more.
		if text == `team-{{serviceLabel "team"}}` && !slices.Equal(got, []string{"team-" + label}) {
			t.Fatalf("label %q gave policies %q", label, got)
		}
	})
}

// renderSecret marks every value of the data render sees: no error may
// quote one.
const renderSecret = "SECRETVALUE"

func FuzzRender(f *testing.F) {
	for _, c := range renderCases {
		f.Add(c.labels[LabelField], c.labels[LabelFormat], c.labels[LabelTemplate])
	}
	for _, format := range []string{"raw", "json", "env", "template"} {
		f.Add("", format, "{{range $k, $v := .}}{{$k}}={{$v}};{{end}}")
		f.Add("list", format, "{{index .list 9}}")
	}
	data := `{"password":"` + renderSecret + `-1\n✓","user":"` + renderSecret + `-2","port":5432,"ratio":0.5,"on":true,` +
		`"nested":{"k":"` + renderSecret + `-3"},"list":["` + renderSecret + `-4",1],"empty":""}`
	f.Fuzz(func(t *testing.T, field, format, tmpl string) {
		labels := map[string]string{LabelPath: "secret/app/db"}
		for k, v := range map[string]string{LabelField: field, LabelFormat: format, LabelTemplate: tmpl} {
			if v != "" {
				labels[k] = v
			}
		}
		plan, err := ParsePlan(labels)
		if err != nil {
			checkErrLine(t, err)
			return
		}
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out, err := render(m, plan)
		if err != nil {
			if strings.Contains(err.Error(), renderSecret) {
				t.Fatalf("the error quotes a secret value: %v", err)
			}
			checkErrLine(t, fmt.Errorf("%s", oneLine(err.Error())))
			return
		}
		if len(out) == 0 || len(out) >= MaxValueSize {
			t.Fatalf("a value of %d bytes", len(out))
		}
	})
}
