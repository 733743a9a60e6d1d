package provider

import (
	"testing"
)

func TestParsePlan(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		want    Plan // Template is checked for presence only
		wantErr string
	}{
		{
			name:   "path only: raw, latest, not reused",
			labels: map[string]string{"vault.path": "secret/app/db"},
			want:   Plan{Path: "secret/app/db", Format: FormatRaw},
		},
		{
			name:   "slashes around the path are dropped",
			labels: map[string]string{"vault.path": "/secret/app/db/"},
			want:   Plan{Path: "secret/app/db", Format: FormatRaw},
		},
		{
			name: "every label",
			labels: map[string]string{
				"vault.path": "secret/app/db", "vault.field": "password", "vault.format": "json",
				"vault.version": "3", "vault.reuse": "true", "vault.type": "kv",
				"com.docker.stack.namespace": "app",
			},
			want: Plan{Path: "secret/app/db", Field: "password", Format: FormatJSON, Version: 3, Reuse: true},
		},
		{
			name:   "env format",
			labels: map[string]string{"vault.path": "kv/app", "vault.format": "env"},
			want:   Plan{Path: "kv/app", Format: FormatEnv},
		},
		{
			name:   "a template alone implies format=template",
			labels: map[string]string{"vault.path": "secret/db", "vault.template": "{{.user}}"},
			want:   Plan{Path: "secret/db", Format: FormatTemplate},
		},
		{
			name:   "the seed proof-of-concept's labels are aliases",
			labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/db", "dk.almbrand.docker.plugin.secretprovider.vault.field": "pw"},
			want:   Plan{Path: "secret/db", Field: "pw", Format: FormatRaw},
		},
		{
			name:   "an alias agreeing with the canonical label is fine",
			labels: map[string]string{"vault.path": "secret/db", "dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/db"},
			want:   Plan{Path: "secret/db", Format: FormatRaw},
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
			wantErr: "label vault.feild is not a swarmvault label: use vault.path, vault.field, vault.format, vault.template, vault.version, vault.reuse",
		},
		{
			name:    "alias and label disagree",
			labels:  map[string]string{"vault.path": "secret/a", "dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/b"},
			wantErr: "labels dk.almbrand.docker.plugin.secretprovider.vault.path and vault.path disagree: keep one of them",
		},
		{
			name:    "bad format",
			labels:  map[string]string{"vault.path": "secret/db", "vault.format": "yaml"},
			wantErr: "label vault.format=yaml is not a format: use raw, json, env or template (Vault path secret/db)",
		},
		{
			name:    "bad version",
			labels:  map[string]string{"vault.path": "secret/db", "vault.version": "latest"},
			wantErr: "label vault.version=latest is not a version number: use a positive integer (Vault path secret/db)",
		},
		{
			name:    "version zero",
			labels:  map[string]string{"vault.path": "secret/db", "vault.version": "0"},
			wantErr: "label vault.version=0 is not a version number: use a positive integer (Vault path secret/db)",
		},
		{
			name:    "bad reuse",
			labels:  map[string]string{"vault.path": "secret/db", "vault.reuse": "sometimes"},
			wantErr: "label vault.reuse=sometimes is not a boolean: use true or false (Vault path secret/db)",
		},
		{
			name:    "type not in this version",
			labels:  map[string]string{"vault.path": "secret/db", "vault.type": "token"},
			wantErr: "label vault.type=token is not supported by this version of swarmvault (supported: kv) for Vault path secret/db",
		},
		{
			name:    "wrap is refused, never ignored",
			labels:  map[string]string{"vault.path": "secret/db", "vault.wrap": "true"},
			wantErr: "label vault.wrap is not supported by this version of swarmvault: remove it to deliver Vault path secret/db unwrapped",
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
		{
			name:    "template that does not parse",
			labels:  map[string]string{"vault.path": "secret/db", "vault.template": "{{.a"},
			wantErr: "label vault.template does not parse: template: vault.template:1: unclosed action (Vault path secret/db)",
		},
	}
	for _, tt := range tests {
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
			if got != tt.want {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
