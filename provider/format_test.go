package provider

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// vaultData decodes JSON the way the Vault client does (numbers as
// json.Number), so the tests see the types render sees in production.
func vaultData(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// renderCases are TestRender's cases; the fuzz targets start from them too.
var renderCases = []struct {
	name    string
	labels  map[string]string
	want    string
	wantErr string
}{
	{name: "raw string field is its bytes, newline and non-ASCII kept", labels: map[string]string{"vault.field": "password"}, want: "pä$$ wörd\n✓"},
	{name: "raw number field is JSON", labels: map[string]string{"vault.field": "port"}, want: "5432"},
	{name: "raw float keeps its text", labels: map[string]string{"vault.field": "ratio"}, want: "0.5"},
	{name: "raw bool field is JSON", labels: map[string]string{"vault.field": "on"}, want: "true"},
	{name: "raw object field is JSON with sorted keys", labels: map[string]string{"vault.field": "nested"}, want: `{"a":"x","b":1}`},
	{name: "raw whole secret is JSON", labels: map[string]string{}, want: `{"html":"<a&b>","nested":{"a":"x","b":1},"on":true,"password":"pä$$ wörd\n✓","port":5432,"ratio":0.5,"user":"app"}`},
	{name: "json string field is a JSON string", labels: map[string]string{"vault.field": "user", "vault.format": "json"}, want: `"app"`},
	{name: "json does not escape HTML", labels: map[string]string{"vault.field": "html", "vault.format": "json"}, want: `"<a&b>"`},
	{name: "env one field", labels: map[string]string{"vault.field": "user", "vault.format": "env"}, want: "user=app\n"},
	{name: "env number field", labels: map[string]string{"vault.field": "port", "vault.format": "env"}, want: "port=5432\n"},
	{name: "template", labels: map[string]string{"vault.template": "postgres://{{.user}}@db:{{.port}}/app"}, want: "postgres://app@db:5432/app"},
	{name: "template over one field", labels: map[string]string{"vault.field": "nested", "vault.template": "{{.a}}{{.b}}"}, want: "x1"},
	{
		name:    "missing field names the fields, not values",
		labels:  map[string]string{"vault.field": "pasword"},
		wantErr: "label vault.field=\"pasword\" names no field of Vault path secret/app/db (its fields: html, nested, on, password, port, ratio, user)",
	},
	{
		name:    "env cannot hold a newline",
		labels:  map[string]string{"vault.field": "password", "vault.format": "env"},
		wantErr: "field password of Vault path secret/app/db holds a newline, which vault.format=env cannot write: use vault.format=json or select another field",
	},
	// text/template would print the value itself here.
	{
		name:    "template ranging over a string",
		labels:  map[string]string{"vault.template": "{{range .password}}{{end}}"},
		wantErr: `label vault.template failed on Vault path secret/app/db: template: vault.template:1:8: executing "vault.template" at <.password>: range can't iterate over <hidden>`,
	},
	{
		name:    "template failing only on the real data",
		labels:  map[string]string{"vault.template": `{{if eq .user "app"}}{{range .password}}{{end}}{{end}}`},
		wantErr: `label vault.template failed on Vault path secret/app/db: it fails on the data (the cause is not shown, as it would quote the secret)`,
	},
	{
		name:    "template naming a missing key",
		labels:  map[string]string{"vault.template": "{{.username}}"},
		wantErr: `label vault.template failed on Vault path secret/app/db: template: vault.template:1:2: executing "vault.template" at <.username>: map has no entry for key "username"`,
	},
}

// renderData is what TestRender renders.
const renderData = `{"password":"pä$$ wörd\n✓","user":"app","port":5432,"ratio":0.5,"on":true,"html":"<a&b>","nested":{"b":1,"a":"x"}}`

func TestRender(t *testing.T) {
	for _, tt := range renderCases {
		t.Run(tt.name, func(t *testing.T) {
			tt.labels["vault.path"] = "secret/app/db"
			plan, err := ParsePlan(tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			got, err := render(vaultData(t, renderData), plan)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "wörd") {
					t.Fatal("error text quotes the secret value")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("value:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRenderEnvWholeSecret(t *testing.T) {
	plan := Plan{Path: "kv/app", Format: FormatEnv}
	got, err := render(vaultData(t, `{"B":"2","A":"one two","C":{"x":1}}`), plan)
	if err != nil {
		t.Fatal(err)
	}
	if want := "A=one two\nB=2\nC={\"x\":1}\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRenderSizeLimits(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		wantErr string
	}{
		{name: "one byte", size: 1},
		{name: "just under Swarm's limit", size: MaxValueSize - 1},
		{name: "empty", size: 0, wantErr: "Vault path secret/big gives an empty value and Swarm refuses empty secrets: check vault.field and the data in Vault"},
		{name: "at Swarm's limit", size: MaxValueSize, wantErr: "Vault path secret/big gives 512000 bytes or more, over Swarm's limit of 511999: select less with vault.field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Plan{Path: "secret/big", Field: "v", Format: FormatRaw}
			got, err := render(map[string]any{"v": strings.Repeat("x", tt.size)}, plan)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != tt.size {
				t.Fatalf("got %d bytes, err %v; want %d bytes", len(got), err, tt.size)
			}
		})
	}
}

// Nested loops would render 64^4 × 100 bytes (1.6 GB) into memory: the
// template stops at Swarm's limit instead.
func TestRenderTemplateStopsAtTheLimit(t *testing.T) {
	list := make([]any, 64)
	for i := range list {
		list[i] = strings.Repeat("y", 100)
	}
	plan, err := ParsePlan(map[string]string{"vault.path": "secret/big",
		"vault.template": "{{range .l}}{{range $.l}}{{range $.l}}{{range $.l}}{{.}}{{end}}{{end}}{{end}}{{end}}"})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = render(map[string]any{"l": list}, plan)
	runtime.ReadMemStats(&after)
	if want := "Vault path secret/big gives 512000 bytes or more, over Swarm's limit of 511999: select less with vault.field"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("rendering allocated %d MB before stopping", grew>>20)
	}
	// Just under the limit still renders.
	plan, _ = ParsePlan(map[string]string{"vault.path": "secret/big", "vault.template": "{{.v}}"})
	if got, err := render(map[string]any{"v": strings.Repeat("z", MaxValueSize-1)}, plan); err != nil || len(got) != MaxValueSize-1 {
		t.Errorf("%d bytes, err %v", len(got), err)
	}
}
