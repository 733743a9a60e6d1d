package provider

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
)

func taskRequest(labels map[string]string) Request {
	return Request{
		Request: secrets.Request{
			SecretName: "db_pw", SecretLabels: labels, ServiceName: "app", ServiceID: "svc1",
			TaskName: "app.1.t1", TaskID: "t1", ServiceLabels: map[string]string{"team": "pay"},
		},
		NodeID: "n1",
	}
}

func TestKVReadUsesABatchTokenMintedForTheTask(t *testing.T) {
	vault := newFakeVault(t)
	policies, _ := ParsePolicyTemplate(`{{.ServiceName}},team-{{serviceLabel "team"}}`)
	p, _ := newTestProvider(t, vault.URL, Options{Policies: policies, Timeout: 3 * time.Second})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}))
	if resp.Err != "" || string(resp.Value) != "app" {
		t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
	}
	minted := vault.mintedTokens()
	if len(minted) != 1 {
		t.Fatalf("%d tokens minted, want 1", len(minted))
	}
	m := minted[0]
	wantMeta := map[string]string{"service": "app", "service_id": "svc1", "task": "app.1.t1", "task_id": "t1", "node_id": "n1", "secret": "db_pw"}
	if m.path != "auth/token/create" || m.req.Type != "batch" || m.req.TTL != "6s" ||
		!reflect.DeepEqual(m.req.Policies, []string{"app", "team-pay"}) || !reflect.DeepEqual(m.req.Metadata, wantMeta) || m.req.DisplayName != "app.1.t1" {
		t.Errorf("minted %+v", m)
	}
}

func TestTokenRoleIsUsedForEveryToken(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{TokenRole: "orphan-tasks"})
	for _, labels := range []map[string]string{{"vault.path": "secret/app/db"}, {"vault.type": "token"}} {
		if resp := p.GetSecret(context.Background(), taskRequest(labels)); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	for _, m := range vault.mintedTokens() {
		if m.path != "auth/token/create/orphan-tasks" {
			t.Errorf("token made at %s", m.path)
		}
	}
}

func TestTokenSecret(t *testing.T) {
	tests := []struct {
		name         string
		labels       map[string]string
		opts         Options
		wantValue    string
		wantPolicies []string
		wantTTL      string
	}{
		{name: "defaults: all the task's policies, TOKEN_TTL", labels: map[string]string{"vault.type": "token"},
			wantValue: "task-token-0", wantPolicies: []string{"app"}, wantTTL: "1h0m0s"},
		{name: "a subset and a TTL", labels: map[string]string{"vault.type": "token", "vault.token.policies": "team-pay", "vault.token.ttl": "10m"},
			opts:      Options{Policies: mustPolicies(t, `{{.ServiceName}},team-{{serviceLabel "team"}}`)},
			wantValue: "task-token-0", wantPolicies: []string{"team-pay"}, wantTTL: "10m0s"},
		{name: "TTL capped by TOKEN_MAX_TTL", labels: map[string]string{"vault.type": "token", "vault.token.ttl": "72h"},
			opts:      Options{TokenMaxTTL: 2 * time.Hour},
			wantValue: "task-token-0", wantPolicies: []string{"app"}, wantTTL: "2h0m0s"},
		{name: "as JSON", labels: map[string]string{"vault.type": "token", "vault.format": "json"},
			wantValue: `"task-token-0"`, wantPolicies: []string{"app"}, wantTTL: "1h0m0s"},
		{name: "the accessor", labels: map[string]string{"vault.type": "token", "vault.field": "accessor"},
			wantValue: "acc-task-token-0", wantPolicies: []string{"app"}, wantTTL: "1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			p, logs := newTestProvider(t, vault.URL, tt.opts)
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != "" || string(resp.Value) != tt.wantValue || !resp.DoNotReuse {
				t.Fatalf("Value %q Err %q DoNotReuse %v", resp.Value, resp.Err, resp.DoNotReuse)
			}
			m := vault.mintedTokens()[0]
			// An orphan, so that it outlives the plugin's own token.
			if m.path != "auth/token/create-orphan" || m.req.Type != "" || m.req.TTL != tt.wantTTL ||
				!reflect.DeepEqual(m.req.Policies, tt.wantPolicies) || m.req.ExplicitMaxTTL == "" {
				t.Errorf("minted %+v", m)
			}
			if strings.Contains(logs.String(), "task-token-0") {
				t.Error("the task token is in the log")
			}
		})
	}
}

func mustPolicies(t *testing.T, text string) *PolicyTemplate {
	t.Helper()
	p, err := ParsePolicyTemplate(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenSecretErrors(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		opts    Options
		wantErr string
		revoked []string
	}{
		{
			name:    "labels cannot widen the task's policies",
			labels:  map[string]string{"vault.type": "token", "vault.token.policies": "app,admin"},
			wantErr: "secret db_pw: label vault.token.policies asks for policy admin, which POLICY_TEMPLATE does not give service app (it gives: app)",
		},
		{
			name:    "a role that makes child tokens",
			labels:  map[string]string{"vault.type": "token"},
			opts:    Options{TokenRole: "child-tasks"},
			wantErr: "secret db_pw: TOKEN_ROLE child-tasks makes child tokens, which die with the plugin's token: set orphan=true on the role",
			revoked: []string{"acc-task-token-0"},
		},
		{
			name:    "the plugin may not use the role",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{TokenRole: "forbidden-role"},
			wantErr: "secret db_pw: the plugin's token may not create tokens for service app: grant it update on auth/token/create/forbidden-role (and sudo for create-orphan without TOKEN_ROLE)",
		},
		{
			name:    "Vault refuses the policies",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{Policies: mustPolicies(t, "root")},
			wantErr: `secret db_pw: Vault refused a token with policies root for service app (HTTP 400: token policies (["root"]) must be subset of the parent token's policies): check POLICY_TEMPLATE and TOKEN_ROLE`,
		},
		{
			name:    "a template error fails this request",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{Policies: mustPolicies(t, `{{serviceLabel "tier"}}`)},
			wantErr: `secret db_pw: POLICY_TEMPLATE {{serviceLabel "tier"}} failed for service app: service app has no label tier`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			p, _ := newTestProvider(t, vault.URL, tt.opts)
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != tt.wantErr {
				t.Errorf("Err:\n got %q\nwant %q", resp.Err, tt.wantErr)
			}
			if !reflect.DeepEqual(vault.revoked, tt.revoked) {
				t.Errorf("revoked %v, want %v", vault.revoked, tt.revoked)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name      string
		labels    map[string]string
		wantTTL   string
		wantData  map[string]any
		wantAsKey string // whose token wrapped: "task" or "plugin"
	}{
		{name: "a KV field with the operator's TTL", labels: map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.wrap": "true"},
			wantTTL: "5m0s", wantData: map[string]any{"username": "app"}, wantAsKey: "task"},
		{name: "a whole KV secret with its own TTL", labels: map[string]string{"vault.path": "kv1/app/db", "vault.wrap": "90s"},
			wantTTL: "1m30s", wantData: map[string]any{"password": testPassword}, wantAsKey: "task"},
		{name: "a task token", labels: map[string]string{"vault.type": "token", "vault.wrap": "true"},
			wantTTL: "5m0s", wantData: map[string]any{"token": "task-token-0"}, wantAsKey: "plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			p, logs := newTestProvider(t, vault.URL, Options{})
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != "" || string(resp.Value) != "wrapping-token-1" || !resp.DoNotReuse {
				t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
			}
			if len(vault.wrapped) != 1 {
				t.Fatalf("%d wrap calls", len(vault.wrapped))
			}
			w := vault.wrapped[0]
			if w.ttl != tt.wantTTL || !reflect.DeepEqual(w.data, tt.wantData) {
				t.Errorf("wrapped %+v", w)
			}
			if as := map[bool]string{true: "plugin", false: "task"}[w.token == pluginToken]; as != tt.wantAsKey {
				t.Errorf("wrapped with the %s's token", as)
			}
			if strings.Contains(logs.String(), "wrapping-token") {
				t.Error("the wrapping token is in the log")
			}
		})
	}
}

func TestReadAndWrite(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		want    string
		wantTTL string
	}{
		{name: "a dynamic read with a query parameter", labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.param.suffix": "x1", "vault.field": "username"},
			want: "v-app-x1", wantTTL: "1h0m0s"},
		{name: "the lease lives as long as vault.token.ttl asks", labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.token.ttl": "3h", "vault.format": "json"},
			want: `{"password":"dyn-pw","username":"v-app-"}`, wantTTL: "3h0m0s"},
		{name: "a write with a body", labels: map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.common_name": "web.example.com", "vault.field": "certificate"},
			want: "CERT for web.example.com", wantTTL: "1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			p, _ := newTestProvider(t, vault.URL, Options{})
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != "" || string(resp.Value) != tt.want || !resp.DoNotReuse {
				t.Fatalf("Value %q Err %q DoNotReuse %v", resp.Value, resp.Err, resp.DoNotReuse)
			}
			m := vault.mintedTokens()
			if len(m) != 1 || m[0].req.TTL != tt.wantTTL {
				t.Errorf("minted %+v", m)
			}
			if len(vault.revoked) != 0 {
				t.Errorf("the reading token was revoked, and with it the lease: %v", vault.revoked)
			}
		})
	}
}

func TestReadAndWriteErrors(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	for _, tt := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"vault.type": "read", "vault.path": "database/creds/nope"}, "secret db_pw: Vault gives no data at path database/creds/nope (vault.type=read): check label vault.path"},
		{map[string]string{"vault.type": "write", "vault.path": "secret/data/forbidden"}, "secret db_pw: permission denied to write Vault path secret/data/forbidden: the token's policies must grant update on secret/data/forbidden"},
	} {
		resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
		if resp.Err != tt.want {
			t.Errorf("Err:\n got %q\nwant %q", resp.Err, tt.want)
		}
	}
}

// fakeReauther logs the plugin in again with plugin-token-<n>.
type fakeReauther struct {
	client  interface{ SetToken(string) }
	calls   int
	refused []string
	err     error
}

func (f *fakeReauther) Reauth(_ context.Context, refused string) error {
	f.calls++
	f.refused = append(f.refused, refused)
	if f.err == nil {
		f.client.SetToken(fmt.Sprintf("plugin-token-%d", f.calls+1))
	}
	return f.err
}

func TestDeadPluginTokenIsReplacedOnce(t *testing.T) {
	vault := newFakeVault(t)
	vault.dead = map[string]bool{pluginToken: true}
	p, _ := newTestProvider(t, vault.URL, Options{})
	re := &fakeReauther{client: p.vault}
	p.opts.Reauth = re
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}))
	if resp.Err != "" || string(resp.Value) != "app" {
		t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
	}
	if re.calls != 1 || re.refused[0] != pluginToken {
		t.Errorf("Reauth calls %d refused %v", re.calls, re.refused)
	}
}

func TestMissingPermissionIsNoReasonToLogIn(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{TokenRole: "forbidden-role"})
	re := &fakeReauther{client: p.vault}
	p.opts.Reauth = re
	p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db"}))
	if re.calls != 0 {
		t.Errorf("a missing permission caused %d logins", re.calls)
	}
}

func TestLoginFailureIsTheRequestError(t *testing.T) {
	vault := newFakeVault(t)
	vault.dead = map[string]bool{pluginToken: true}
	p, _ := newTestProvider(t, vault.URL, Options{})
	p.opts.Reauth = &fakeReauther{client: p.vault, err: errors.New("the plugin cannot log in to Vault: approle: invalid secret id")}
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db"}))
	if want := "secret db_pw: Vault refused the plugin's token and the plugin cannot log in to Vault: approle: invalid secret id"; resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}

func TestRequestBeforeTheFirstLoginWaitsForIt(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	p.vault.ClearToken()
	re := &fakeReauther{client: p.vault}
	p.opts.Reauth = re
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}))
	if resp.Err != "" || re.calls != 1 || re.refused[0] != "" {
		t.Errorf("Err %q, Reauth calls %d %v", resp.Err, re.calls, re.refused)
	}
}

func TestReuseSharesAReadTokenPerPolicySet(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	reuse := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"})
	get := func(req Request) {
		t.Helper()
		if resp := p.GetSecret(context.Background(), req); resp.Err != "" || string(resp.Value) != "app" {
			t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
		}
	}
	get(reuse)
	get(reuse)
	if n := len(vault.mintedTokens()); n != 1 {
		t.Errorf("two reuse requests minted %d tokens, want 1", n)
	}
	// Another service (other policies) gets its own token; so does every
	// request that is not reuse.
	other := reuse
	other.ServiceName = "other"
	get(other)
	task := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"})
	get(task)
	get(task)
	if n := len(vault.mintedTokens()); n != 4 {
		t.Errorf("%d tokens minted, want 4", n)
	}

	// A shared token that died is replaced, and the request served.
	vault.mu.Lock()
	vault.dead = map[string]bool{}
	for tok := range vault.minted {
		vault.dead[tok] = true
	}
	vault.mu.Unlock()
	get(reuse)
	// After half the read token's TTL the shared token is not used again.
	now := time.Now()
	p.readTokens.now = func() time.Time { return now.Add(p.opts.ReadTokenTTL) }
	before := len(vault.mintedTokens())
	get(reuse)
	if n := len(vault.mintedTokens()); n != before+1 {
		t.Errorf("after expiry: %d tokens, want %d", n, before+1)
	}
}
