package provider

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// parsePlanCases are TestParsePlan's cases; the fuzz targets start from them too.
var parsePlanCases = []struct {
	name    string
	labels  map[string]string
	want    Plan // Template is checked for presence only
	wantErr string
}{
	{
		name:   "path only: raw, latest, not reused",
		labels: map[string]string{"vault.path": "secret/app/db"},
		want:   Plan{Path: "secret/app/db", Format: FormatRaw, Type: TypeKV},
	},
	{
		name:   "slashes around the path are dropped",
		labels: map[string]string{"vault.path": "/secret/app/db/"},
		want:   Plan{Path: "secret/app/db", Format: FormatRaw, Type: TypeKV},
	},
	{
		name: "every label",
		labels: map[string]string{
			"vault.path": "secret/app/db", "vault.field": "password", "vault.format": "json",
			"vault.version": "3", "vault.reuse": "true", "vault.type": "kv",
			"com.docker.stack.namespace": "app",
		},
		want: Plan{Path: "secret/app/db", Field: "password", Format: FormatJSON, Version: 3, Reuse: true, Type: TypeKV},
	},
	{
		name:   "two spellings of one parameter that agree",
		labels: map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.ttl": "1h", "dk.almbrand.docker.plugin.secretprovider.vault.param.ttl": "1h"},
		want:   Plan{Path: "pki/issue/web", Format: FormatRaw, Type: TypeWrite, Params: map[string]string{"ttl": "1h"}},
	},
	{
		name:   "a path with dots inside segments and spaces",
		labels: map[string]string{"vault.path": "secret/app.v2/my db"},
		want:   Plan{Path: "secret/app.v2/my db", Format: FormatRaw, Type: TypeKV},
	},
	{
		name:   "env format",
		labels: map[string]string{"vault.path": "kv/app", "vault.format": "env"},
		want:   Plan{Path: "kv/app", Format: FormatEnv, Type: TypeKV},
	},
	{
		name:   "a template alone implies format=template",
		labels: map[string]string{"vault.path": "secret/db", "vault.template": "{{.user}}"},
		want:   Plan{Path: "secret/db", Format: FormatTemplate, Type: TypeKV},
	},
	{
		name:   "the seed proof-of-concept's labels are aliases",
		labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/db", "dk.almbrand.docker.plugin.secretprovider.vault.field": "pw"},
		want:   Plan{Path: "secret/db", Field: "pw", Format: FormatRaw, Type: TypeKV},
	},
	{
		name:   "an alias agreeing with the canonical label is fine",
		labels: map[string]string{"vault.path": "secret/db", "dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/db"},
		want:   Plan{Path: "secret/db", Format: FormatRaw, Type: TypeKV},
	},
	{
		name:    "no labels",
		labels:  nil,
		wantErr: "label vault.path is missing: set it to the Vault path of the secret, e.g. vault.path=secret/myapp/db",
	},
	{
		name:    "empty path",
		labels:  map[string]string{"vault.path": "/"},
		wantErr: "label vault.path is missing: set it to the Vault path of the secret, e.g. vault.path=secret/myapp/db",
	},
	{
		name:    "unknown vault label",
		labels:  map[string]string{"vault.path": "secret/db", "vault.feild": "pw"},
		wantErr: "label vault.feild is not a swarmvault label: did you mean vault.field?",
	},
	{
		name:    "unknown vault label near two",
		labels:  map[string]string{"vault.path": "secret/db", "vault.tokn.ttl": "1h"},
		wantErr: "label vault.tokn.ttl is not a swarmvault label: did you mean vault.token.ttl?",
	},
	{
		name:    "unknown vault label near none",
		labels:  map[string]string{"vault.path": "secret/db", "vault.secret": "x"},
		wantErr: "label vault.secret is not a swarmvault label: use vault.path, vault.field, vault.format, vault.template, vault.version, vault.type, vault.wrap, vault.reuse, vault.rotate, vault.group, vault.token.ttl, vault.token.policies, vault.param.<name>",
	},
	{
		name:    "alias and label disagree",
		labels:  map[string]string{"vault.path": "secret/a", "dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/b"},
		wantErr: "labels dk.almbrand.docker.plugin.secretprovider.vault.path and vault.path disagree: keep one of them",
	},
	{
		name:    "bad format",
		labels:  map[string]string{"vault.path": "secret/db", "vault.format": "yaml"},
		wantErr: "label vault.format=\"yaml\" is not a format: use raw, json, env or template (Vault path secret/db)",
	},
	{
		name:    "bad version",
		labels:  map[string]string{"vault.path": "secret/db", "vault.version": "latest"},
		wantErr: "label vault.version=\"latest\" is not a version number: use a positive integer (Vault path secret/db)",
	},
	{
		name:    "version zero",
		labels:  map[string]string{"vault.path": "secret/db", "vault.version": "0"},
		wantErr: "label vault.version=\"0\" is not a version number: use a positive integer (Vault path secret/db)",
	},
	{
		name:   "rotation of a KV secret",
		labels: map[string]string{"vault.path": "secret/db", "vault.rotate": "true", "vault.field": "pw"},
		want:   Plan{Path: "secret/db", Field: "pw", Format: FormatRaw, Type: TypeKV, Rotate: true},
	},
	{
		name:   "rotation of a value a node's tasks share",
		labels: map[string]string{"vault.path": "secret/db", "vault.rotate": "true", "vault.reuse": "true"},
		want:   Plan{Path: "secret/db", Format: FormatRaw, Type: TypeKV, Rotate: true, Reuse: true},
	},
	{
		name:    "rotation of a pinned version",
		labels:  map[string]string{"vault.path": "secret/db", "vault.rotate": "true", "vault.version": "2"},
		wantErr: `label vault.rotate=true cannot apply with vault.version="2": a pinned version never changes; remove one of them (Vault path secret/db)`,
	},
	{
		name:   "rotation of a token: rolled before its max TTL",
		labels: map[string]string{"vault.type": "token", "vault.rotate": "true"},
		want:   Plan{Field: "token", Format: FormatRaw, Type: TypeToken, Rotate: true},
	},
	{
		name:   "rotation of database credentials: rolled before their max TTL",
		labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.rotate": "true"},
		want:   Plan{Path: "database/creds/app", Format: FormatRaw, Type: TypeRead, Rotate: true},
	},
	{
		name:    "bad rotate",
		labels:  map[string]string{"vault.path": "secret/db", "vault.rotate": "yes please"},
		wantErr: "label vault.rotate=\"yes please\" is not a boolean: use true or false (Vault path secret/db)",
	},
	{
		name:    "bad reuse",
		labels:  map[string]string{"vault.path": "secret/db", "vault.reuse": "sometimes"},
		wantErr: "label vault.reuse=\"sometimes\" is not a boolean: use true or false (Vault path secret/db)",
	},
	{
		name:   "wrap with the operator's TTL",
		labels: map[string]string{"vault.path": "secret/db", "vault.wrap": "true"},
		want:   Plan{Path: "secret/db", Format: FormatRaw, Type: TypeKV, Wrap: true},
	},
	{
		name:   "wrap with a TTL",
		labels: map[string]string{"vault.path": "secret/db", "vault.wrap": "90s"},
		want:   Plan{Path: "secret/db", Format: FormatRaw, Type: TypeKV, Wrap: true, WrapTTL: 90 * time.Second},
	},
	{
		name:   "a field, wrapped (the legacy plugin's combination)",
		labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/db", "dk.almbrand.docker.plugin.secretprovider.vault.field": "pw", "dk.almbrand.docker.plugin.secretprovider.vault.wrap": "true"},
		want:   Plan{Path: "secret/db", Field: "pw", Format: FormatRaw, Type: TypeKV, Wrap: true},
	},
	{
		name:   "a template, wrapped",
		labels: map[string]string{"vault.path": "secret/db", "vault.template": "{{.a}}", "vault.wrap": "1m"},
		want:   Plan{Path: "secret/db", Format: FormatTemplate, Type: TypeKV, Wrap: true, WrapTTL: time.Minute},
	},
	{
		name:   "wrap=false is off",
		labels: map[string]string{"vault.path": "secret/db", "vault.wrap": "false"},
		want:   Plan{Path: "secret/db", Format: FormatRaw, Type: TypeKV},
	},
	{
		name:   "token: the file holds the token field",
		labels: map[string]string{"vault.type": "token"},
		want:   Plan{Field: "token", Format: FormatRaw, Type: TypeToken},
	},
	{
		name:   "token with TTL, policies and wrapping; the seed's type name",
		labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.type": "vault_token", "vault.token.ttl": "30m", "vault.token.policies": " a, b ,", "vault.wrap": "1m"},
		want:   Plan{Field: "token", Format: FormatRaw, Type: TypeToken, TokenTTL: 30 * time.Minute, TokenPolicies: []string{"a", "b"}, Wrap: true, WrapTTL: time.Minute},
	},
	{
		name:    "unknown type",
		labels:  map[string]string{"vault.path": "secret/db", "vault.type": "pki"},
		wantErr: "label vault.type=\"pki\" is not supported: use kv, read, write or token",
	},
	{
		name:    "path with a token",
		labels:  map[string]string{"vault.type": "token", "vault.path": "secret/db"},
		wantErr: "label vault.path has no meaning with vault.type=token: remove it",
	},
	{
		name:    "token labels on a KV secret",
		labels:  map[string]string{"vault.path": "secret/db", "vault.token.policies": "root"},
		wantErr: "label vault.token.policies applies only to vault.type=token, read or write (Vault path secret/db)",
	},
	{
		name:   "read with query parameters and a lease TTL",
		labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.param.x": "1", "vault.token.ttl": "2h"},
		want:   Plan{Path: "database/creds/app", Format: FormatRaw, Type: TypeRead, Params: map[string]string{"x": "1"}, TokenTTL: 2 * time.Hour},
	},
	{
		name:   "write with a body",
		labels: map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.common_name": "web.example.com", "vault.field": "certificate"},
		want:   Plan{Path: "pki/issue/web", Field: "certificate", Format: FormatRaw, Type: TypeWrite, Params: map[string]string{"common_name": "web.example.com"}},
	},
	{
		name:    "params on a KV secret",
		labels:  map[string]string{"vault.path": "secret/db", "vault.param.x": "1"},
		wantErr: "label vault.param.x applies only to vault.type=read or write (Vault path secret/db)",
	},
	{
		name:    "read needs a path",
		labels:  map[string]string{"vault.type": "read"},
		wantErr: "label vault.path is missing: set it to the Vault path of the secret, e.g. vault.path=secret/myapp/db",
	},
	{
		name:    "a version on a read",
		labels:  map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.version": "2"},
		wantErr: "label vault.version applies only to vault.type=kv (Vault path database/creds/app)",
	},
	{
		name:    "bad token TTL",
		labels:  map[string]string{"vault.type": "token", "vault.token.ttl": "forever"},
		wantErr: "label vault.token.ttl=\"forever\" is not a duration: use e.g. 1h",
	},
	{
		name:    "empty token policies",
		labels:  map[string]string{"vault.type": "token", "vault.token.policies": " , "},
		wantErr: "label vault.token.policies is empty: name policies, or remove it to give the task all its policies",
	},
	{
		name:    "bad wrap",
		labels:  map[string]string{"vault.path": "secret/db", "vault.wrap": "yes"},
		wantErr: "label vault.wrap=\"yes\" is neither true nor a TTL: use e.g. vault.wrap=5m (Vault path secret/db)",
	},
	{
		name:    "a token is never shared",
		labels:  map[string]string{"vault.type": "token", "vault.reuse": "true"},
		wantErr: "label vault.reuse=true cannot apply to a task token: each task needs its own value",
	},
	{
		name:    "a wrapping token is never shared",
		labels:  map[string]string{"vault.path": "secret/db", "vault.wrap": "true", "vault.reuse": "true"},
		wantErr: "label vault.reuse=true cannot apply with vault.wrap=true: a wrapping token unwraps once, so each task needs its own; remove one of them (Vault path secret/db)",
	},
	{
		name:    "a wrapping token is never shared, with a TTL and the legacy labels",
		labels:  map[string]string{LegacyLabel("vault.path"): "secret/db", LegacyLabel("vault.wrap"): "90s", LegacyLabel("vault.reuse"): "true"},
		wantErr: "label dk.almbrand.docker.plugin.secretprovider.vault.reuse=true cannot apply with dk.almbrand.docker.plugin.secretprovider.vault.wrap=1m30s: a wrapping token unwraps once, so each task needs its own; remove one of them (Vault path secret/db)",
	},
	{
		name:    "template with another format",
		labels:  map[string]string{"vault.path": "secret/db", "vault.format": "json", "vault.template": "{{.a}}"},
		wantErr: "label vault.template is set but vault.format=json: set vault.format=template or remove vault.template (Vault path secret/db)",
	},
	{
		name:    "format=template without a template",
		labels:  map[string]string{"vault.path": "secret/db", "vault.format": "template"},
		wantErr: "label vault.format=template needs a vault.template label (Vault path secret/db)",
	},
	// The Vault client cleans a request path: these would read another
	// path than the one the log and the token's metadata name.
	{
		name:    "a .. segment",
		labels:  map[string]string{"vault.path": "secret/../kv1/app"},
		wantErr: `label vault.path="secret/../kv1/app" has an empty, . or .. segment, which Vault would resolve to another path: name the path itself, e.g. secret/myapp/db`,
	},
	{
		name:    "a . segment",
		labels:  map[string]string{"vault.path": "secret/./app"},
		wantErr: `label vault.path="secret/./app" has an empty, . or .. segment, which Vault would resolve to another path: name the path itself, e.g. secret/myapp/db`,
	},
	{
		name:    "an empty segment",
		labels:  map[string]string{"vault.type": "read", "vault.path": "database//creds/app"},
		wantErr: `label vault.path="database//creds/app" has an empty, . or .. segment, which Vault would resolve to another path: name the path itself, e.g. secret/myapp/db`,
	},
	{
		name:    "a legacy path label with ..",
		labels:  map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": "../secret/app"},
		wantErr: `label dk.almbrand.docker.plugin.secretprovider.vault.path="../secret/app" has an empty, . or .. segment, which Vault would resolve to another path: name the path itself, e.g. secret/myapp/db`,
	},
	{
		name:    "a newline in the path",
		labels:  map[string]string{"vault.path": "secret/app\nlevel=error msg=forged"},
		wantErr: `label vault.path="secret/app\nlevel=error msg=forged" holds a control or non-printing character: write the path as plain text`,
	},
	{
		name:    "a path too long",
		labels:  map[string]string{"vault.path": "secret/" + strings.Repeat("a", 600)},
		wantErr: "label vault.path is 607 bytes long: a Vault path here is at most 512",
	},
	// Echoed label values are quoted and cut; keys that are not plain
	// names are quoted too.
	{
		name:    "a long bad value is cut",
		labels:  map[string]string{"vault.path": "secret/db", "vault.format": strings.Repeat("x", 5000)},
		wantErr: `label vault.format="` + strings.Repeat("x", 64) + `"… is not a format: use raw, json, env or template (Vault path secret/db)`,
	},
	{
		name:    "a newline in an unknown key",
		labels:  map[string]string{"vault.path": "secret/db", "vault.x\nlevel=error": "1"},
		wantErr: `label "vault.x\nlevel=error" is not a swarmvault label: use vault.path, vault.field, vault.format, vault.template, vault.version, vault.type, vault.wrap, vault.reuse, vault.rotate, vault.group, vault.token.ttl, vault.token.policies, vault.param.<name>`,
	},
	{
		name:    "two spellings of one parameter disagree",
		labels:  map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.common_name": "a.example.com", "dk.almbrand.docker.plugin.secretprovider.vault.param.common_name": "b.example.com"},
		wantErr: "labels dk.almbrand.docker.plugin.secretprovider.vault.param.common_name and vault.param.common_name disagree: keep one of them",
	},
	{
		name:    "a parameter without a name",
		labels:  map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.": "x"},
		wantErr: "label vault.param. names no parameter: use vault.param.<name>",
	},
	{
		name:    "template that does not parse",
		labels:  map[string]string{"vault.path": "secret/db", "vault.template": "{{.a"},
		wantErr: "label vault.template does not parse: template: vault.template:1: unclosed action (Vault path secret/db)",
	},
}

func TestParsePlan(t *testing.T) {

	for _, tt := range parsePlanCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePlan(tt.labels)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if (got.Template != nil) != (tt.want.Format == FormatTemplate) {
				t.Errorf("template parsed = %v, want %v", got.Template != nil, tt.want.Format == FormatTemplate)
			}
			got.Template = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// vault.wrap wraps Vault's answer at its source unless a field, format or
// template cuts a value out of it: then that value is what is wrapped.
func TestWhereAValueIsWrapped(t *testing.T) {
	for _, tt := range []struct {
		labels            map[string]string
		atSource, ofValue bool
	}{
		{map[string]string{"vault.path": "secret/db"}, false, false},
		{map[string]string{"vault.path": "secret/db", "vault.field": "pw"}, false, false},
		{map[string]string{"vault.path": "secret/db", "vault.wrap": "true"}, true, false},
		{map[string]string{"vault.path": "secret/db", "vault.wrap": "true", "vault.field": "pw"}, false, true},
		{map[string]string{"vault.path": "secret/db", "vault.wrap": "true", "vault.format": "json"}, false, true},
		{map[string]string{"vault.path": "secret/db", "vault.wrap": "true", "vault.template": "{{.pw}}"}, false, true},
		{map[string]string{"vault.type": "token", "vault.wrap": "true"}, true, false},
		{map[string]string{"vault.type": "token", "vault.wrap": "true", "vault.field": "token"}, true, false},
		{map[string]string{"vault.type": "token", "vault.wrap": "true", "vault.field": "accessor"}, false, true},
		{map[string]string{"vault.type": "token", "vault.wrap": "true", "vault.template": "VAULT_TOKEN={{.}}"}, false, true},
	} {
		p, err := ParsePlan(tt.labels)
		if err != nil {
			t.Fatalf("%v: %v", tt.labels, err)
		}
		if p.WrapsAtSource() != tt.atSource || p.WrapsSelection() != tt.ofValue {
			t.Errorf("%v: at the source %v, the selection %v; want %v, %v", tt.labels, p.WrapsAtSource(), p.WrapsSelection(), tt.atSource, tt.ofValue)
		}
	}
}
