package provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Whatever POLICY_TEMPLATE renders, no token minted for a request (a task
// token, a task's read token, a shared read token) carries a policy the
// plugin's own token holds, default aside; the request fails with one
// sentence and a config outcome, and nothing is minted.
func TestNoTokenCarriesThePluginsOwnPolicies(t *testing.T) {
	held := func(service, policy, tmpl string) string {
		return fmt.Sprintf("secret db_pw: POLICY_TEMPLATE %s gives service %s policy %s, which the plugin's own token holds: swarmvault never hands a task its own policies; rename the service or change POLICY_TEMPLATE", tmpl, service, policy)
	}
	for _, tt := range []struct {
		name     string
		service  string
		template string
		labels   map[string]string
		identity []string
		wantErr  string
	}{
		{name: "a service named after the plugin's policy, KV read", service: "swarmvault-plugin",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			wantErr: held("swarmvault-plugin", "swarmvault-plugin", "{{.ServiceName}}")},
		{name: "in another case: Vault lowercases policies", service: "SwarmVault-Plugin",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			wantErr: held("SwarmVault-Plugin", "SwarmVault-Plugin", "{{.ServiceName}}")},
		{name: "a shared read token (vault.reuse)", service: "swarmvault-plugin",
			labels:  map[string]string{"vault.path": "secret/app/db", "vault.reuse": "true"},
			wantErr: held("swarmvault-plugin", "swarmvault-plugin", "{{.ServiceName}}")},
		{name: "a task token", service: "swarmvault-plugin",
			labels:  map[string]string{"vault.type": "token"},
			wantErr: held("swarmvault-plugin", "swarmvault-plugin", "{{.ServiceName}}")},
		{name: "a read's token", service: "swarmvault-plugin",
			labels:  map[string]string{"vault.type": "read", "vault.path": "database/creds/app"},
			wantErr: held("swarmvault-plugin", "swarmvault-plugin", "{{.ServiceName}}")},
		{name: "vault.token.policies naming it", template: "{{.ServiceName}},swarmvault-plugin",
			labels:  map[string]string{"vault.type": "token", "vault.token.policies": "swarmvault-plugin"},
			wantErr: held("app", "swarmvault-plugin", "{{.ServiceName}},swarmvault-plugin")},
		{name: "an identity policy of the plugin's token", service: "ops", identity: []string{"ops"},
			labels:  map[string]string{"vault.path": "secret/app/db"},
			wantErr: held("ops", "ops", "{{.ServiceName}}")},
		{name: "vault.token.policies may leave it out", template: "{{.ServiceName}},swarmvault-plugin",
			labels: map[string]string{"vault.type": "token", "vault.token.policies": "app"}},
		{name: "default is every token's", template: "default,{{.ServiceName}}",
			labels: map[string]string{"vault.path": "secret/app/db"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			vault.identityPolicies = tt.identity
			o := &observed{}
			opts := Options{Observer: o}
			if tt.template != "" {
				opts.Policies = mustPolicies(t, tt.template)
			}
			p, logs := newTestProvider(t, vault.URL, opts)
			req := taskRequest(tt.labels)
			if tt.service != "" {
				req.ServiceName = tt.service
			}
			resp := p.GetSecret(context.Background(), req)
			if resp.Err != tt.wantErr {
				t.Fatalf("Err:\n got %q\nwant %q", resp.Err, tt.wantErr)
			}
			if tt.wantErr == "" {
				return
			}
			if n := len(vault.mintedTokens()); n != 0 {
				t.Errorf("%d tokens minted", n)
			}
			if len(o.got) != 1 || !strings.HasSuffix(o.got[0], " "+OutcomeConfig) {
				t.Errorf("outcome %v, want %s", o.got, OutcomeConfig)
			}
			if strings.Contains(logs.String(), pluginToken) {
				t.Errorf("the plugin's token is in the log:\n%s", logs)
			}
		})
	}
}

// Rotation's reads mint shared read tokens too: the same guard.
func TestRotationReadsAreGuardedToo(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	req := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.rotate": "true"})
	req.ServiceName = "swarmvault-plugin"
	if _, err := p.CurrentVersion(context.Background(), req); err == nil || !strings.Contains(err.Error(), "which the plugin's own token holds") || OutcomeOf(err) != OutcomeConfig {
		t.Errorf("err %v (%s)", err, OutcomeOf(err))
	}
	if n := len(vault.mintedTokens()); n != 0 {
		t.Errorf("%d tokens minted", n)
	}
}

// A root plugin token holds root only, which no template may give anyway.
func TestARootPluginTokenRefusesNothingMore(t *testing.T) {
	vault := newFakeVault(t)
	vault.pluginPolicies = []string{"root"}
	p, _ := newTestProvider(t, vault.URL, Options{})
	if resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token"})); resp.Err != "" {
		t.Errorf("Err %q", resp.Err)
	}
}

// The plugin's policies are asked once per token value: the next requests
// use what Vault said, and a new token (a new login) is asked again.
func TestThePluginsPoliciesAreAskedOncePerToken(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	for _, labels := range []map[string]string{
		{"vault.path": "secret/app/db"},
		{"vault.type": "token"},
		{"vault.path": "secret/app/db", "vault.reuse": "true"},
	} {
		if resp := p.GetSecret(context.Background(), taskRequest(labels)); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	p.vault.SetToken("plugin-token-2")
	// Another group: the task's first token secret's answer is not reused.
	if resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.group": "2"})); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	vault.mu.Lock()
	defer vault.mu.Unlock()
	if len(vault.selfLookups) != 2 || vault.selfLookups[pluginToken] != 1 || vault.selfLookups["plugin-token-2"] != 1 {
		t.Errorf("lookup-self calls by token: %v, want one for each", vault.selfLookups)
	}
}

// Without its policies the plugin mints nothing, and says which grant is
// missing.
func TestLookupSelfRefusedMintsNothing(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusForbidden:  "secret db_pw: the plugin's token may not look up its own policies, which no task token may carry: grant it read on auth/token/lookup-self (Vault's default policy has it)",
		http.StatusBadRequest: "secret db_pw: Vault refused to tell the plugin's token its own policies, which no task token may carry (HTTP 400: permission denied): check that the plugin's token may read auth/token/lookup-self",
	} {
		vault := newFakeVault(t)
		vault.selfRefused = status
		p, _ := newTestProvider(t, vault.URL, Options{})
		resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token"}))
		if resp.Err != want {
			t.Errorf("HTTP %d: Err:\n got %q\nwant %q", status, resp.Err, want)
		}
		if n := len(vault.mintedTokens()); n != 0 {
			t.Errorf("HTTP %d: %d tokens minted", status, n)
		}
	}
}
