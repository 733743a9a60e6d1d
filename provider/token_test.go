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
	"github.com/hashicorp/vault/api"
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
	// No secret: the token reads the task's other secrets too.
	wantMeta := map[string]string{"service": "app", "service_id": "svc1", "task": "app.1.t1", "task_id": "t1", "node_id": "n1"}
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
			wantErr: "secret db_pw: label vault.token.policies asks for policy \"admin\", which POLICY_TEMPLATE does not give service app (it gives: app)",
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
			// Measured on the dev Vault: it said "Vault refused a token
			// with policies … (HTTP 503: Vault is sealed): check
			// POLICY_TEMPLATE and TOKEN_ROLE", the wrong settings.
			name:    "a sealed Vault is named, not the policies",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{TokenRole: "sealed-role"},
			wantErr: "secret db_pw: Vault is sealed, so the plugin cannot create a token for service app: unseal it (vault operator unseal); swarm retries the task",
		},
		{
			name:    "a failure of Vault's own is not a refusal of the policies",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{TokenRole: "broken-role"},
			wantErr: "secret db_pw: Vault failed to create a token for service app (HTTP 500: failed to persist token: storage is full): fix what Vault names (its storage); swarm retries the task",
		},
		{
			// Vault's multi-line error list becomes one line.
			name:    "Vault refuses the policies",
			labels:  map[string]string{"vault.path": "secret/app/db"},
			opts:    Options{Policies: mustPolicies(t, "admin")},
			wantErr: `secret db_pw: Vault refused a token with policies admin for service app (HTTP 400: token policies (["admin"]) must be subset of the parent token's policies; one more cause): check POLICY_TEMPLATE and TOKEN_ROLE`,
		},
		{
			name:    "a wrapped token through a role that makes child tokens",
			labels:  map[string]string{"vault.type": "token", "vault.wrap": "true"},
			opts:    Options{TokenRole: "child-tasks"},
			wantErr: "secret db_pw: TOKEN_ROLE child-tasks makes child tokens, which die with the plugin's token: set orphan=true on the role",
			revoked: []string{"acc-task-token-0"},
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

// Vault wraps the call that makes the value, so that the wrapping token's
// creation path names it: the plugin never calls sys/wrapping/wrap.
func TestWrapAtTheSource(t *testing.T) {
	tests := []struct {
		name      string
		labels    map[string]string
		opts      Options
		wantTTL   string
		wantPath  string // the creation path a task can check
		wantQuery string
		wantAs    string // whose token made the wrapped call: "plugin" or "task"
	}{
		{name: "a KV v2 secret with the operator's TTL", labels: map[string]string{"vault.path": "secret/app/db", "vault.wrap": "true"},
			wantTTL: "5m0s", wantPath: "secret/data/app/db", wantAs: "task"},
		{name: "a pinned KV v2 version", labels: map[string]string{"vault.path": "secret/app/db", "vault.version": "1", "vault.wrap": "true"},
			wantTTL: "5m0s", wantPath: "secret/data/app/db", wantQuery: "version=1", wantAs: "task"},
		{name: "a KV v1 secret with its own TTL", labels: map[string]string{"vault.path": "kv1/app/db", "vault.wrap": "90s"},
			wantTTL: "1m30s", wantPath: "kv1/app/db", wantAs: "task"},
		{name: "a task token", labels: map[string]string{"vault.type": "token", "vault.wrap": "true"},
			wantTTL: "5m0s", wantPath: "auth/token/create-orphan", wantAs: "plugin"},
		{name: "a task token through an orphan role", labels: map[string]string{"vault.type": "token", "vault.wrap": "true"}, opts: Options{TokenRole: "orphan-tasks"},
			wantTTL: "5m0s", wantPath: "auth/token/create/orphan-tasks", wantAs: "plugin"},
		{name: "a dynamic secret", labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.wrap": "2m"},
			wantTTL: "2m0s", wantPath: "database/creds/app", wantAs: "task"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			p, logs := newTestProvider(t, vault.URL, tt.opts)
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != "" || string(resp.Value) != "wrapping-token-1" || !resp.DoNotReuse {
				t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
			}
			if len(vault.wrapped) != 1 {
				t.Fatalf("%d wrapped calls", len(vault.wrapped))
			}
			w := vault.wrapped[0]
			if w.ttl != tt.wantTTL || w.path != tt.wantPath || w.query != tt.wantQuery {
				t.Errorf("wrapped %s?%s with TTL %s, want %s?%s with %s", w.path, w.query, w.ttl, tt.wantPath, tt.wantQuery, tt.wantTTL)
			}
			if as := map[bool]string{true: "plugin", false: "task"}[w.token == pluginToken]; as != tt.wantAs {
				t.Errorf("wrapped with the %s's token", as)
			}
			if strings.Contains(logs.String(), "wrapping-token") || strings.Contains(logs.String(), "task-token-") {
				t.Error("a wrapping token or a task token is in the log")
			}
		})
	}
}

// A field, format or template cut out of Vault's answer cannot be wrapped
// at the source: the plugin reads unwrapped, with the task's token, and
// wraps the selected value with sys/wrapping/wrap, as its own token. The
// credentials behind it are tracked as unwrapped ones (the plugin sees
// them), and revoked when the wrap fails.
func TestWrapASelection(t *testing.T) {
	for _, tt := range []struct {
		name      string
		labels    map[string]string
		wantValue string
		wantTTL   string
		tracked   bool // a credential the lifecycle renews and revokes
		lease     bool
	}{
		{name: "a KV field (the legacy plugin's labels)", labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/app/db", "dk.almbrand.docker.plugin.secretprovider.vault.field": "password", "dk.almbrand.docker.plugin.secretprovider.vault.wrap": "true"},
			wantValue: "s3cr3t-välue\nline2", wantTTL: "5m0s"},
		{name: "a template of a dynamic secret", labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.template": "{{.username}}:{{.password}}", "vault.wrap": "2m"},
			wantValue: "v-app-:dyn-pw", wantTTL: "2m0s", tracked: true, lease: true},
		{name: "a task token in a template", labels: map[string]string{"vault.type": "token", "vault.template": "VAULT_TOKEN={{.}}", "vault.wrap": "true"},
			wantValue: "VAULT_TOKEN=task-token-", wantTTL: "5m0s", tracked: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			tr := &fakeTracker{}
			p, logs := newTestProvider(t, vault.URL, Options{Tracker: tr})
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != "" || string(resp.Value) != "wrapping-token-1" || !resp.DoNotReuse {
				t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
			}
			if len(vault.wrapped) != 1 {
				t.Fatalf("%d wrapped calls, want the one wrap of the selected value", len(vault.wrapped))
			}
			w := vault.wrapped[0]
			data, _ := w.data["data"].(map[string]any)
			value, _ := data["value"].(string)
			if w.path != "sys/wrapping/wrap" || w.ttl != tt.wantTTL || w.token != pluginToken || !strings.HasPrefix(value, tt.wantValue) || len(data) != 1 {
				t.Errorf("wrapped %v at %s with TTL %s as %s; want {value: %s...} at sys/wrapping/wrap with %s as the plugin", data, w.path, w.ttl, w.token, tt.wantValue, tt.wantTTL)
			}
			if tt.tracked && (len(tr.credentials) != 1 || tr.credentials[0].Accessor == "" || (tr.credentials[0].LeaseID != "") != tt.lease) || !tt.tracked && len(tr.credentials) != 0 {
				t.Errorf("tracked %+v, want the credentials as read (lease %v)", tr.credentials, tt.lease)
			}
			if strings.Contains(logs.String(), "wrapping-token") || strings.Contains(logs.String(), "s3cr3t") || strings.Contains(logs.String(), "dyn-pw") {
				t.Error("a value or a wrapping token is in the log")
			}
		})
	}

	// A plugin token that may not wrap fails the task with what to grant,
	// and the task token behind the value is revoked.
	vault := newFakeVault(t)
	vault.wrapDenied = true
	p, _ := newTestProvider(t, vault.URL, Options{})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.format": "json", "vault.wrap": "true"}))
	if want := "secret db_pw: the plugin's token may not wrap the value of a task token: grant it update on sys/wrapping/wrap (Vault's default policy does)"; resp.Err != want {
		t.Errorf("Err %q\nwant %q", resp.Err, want)
	}
	if m := vault.mintedTokens(); len(m) != 1 || len(vault.revoked) != 1 {
		t.Errorf("minted %d, revoked %v: the task token behind a value that failed must be revoked", len(m), vault.revoked)
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
	p, _ := newTestProvider(t, vault.URL, Options{}) // no REUSE_CACHE_TTL: the tokens, not the values kept
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
	// It names no task, nor a service: the tasks of every service with
	// these policies use it, and Vault's audit log would put their reads
	// down to the first one.
	if m := vault.mintedTokens()[0].req; !reflect.DeepEqual(m.Metadata, map[string]string{"purpose": "shared-read"}) || m.DisplayName != "swarmvault-shared-read" {
		t.Errorf("a shared read token's metadata %v, display name %q", m.Metadata, m.DisplayName)
	}
	// Another service (other policies) gets its own token; so does a
	// task's secret that is not reuse.
	other := reuse
	other.ServiceName = "other"
	get(other)
	task := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"})
	get(task)
	if n := len(vault.mintedTokens()); n != 3 {
		t.Errorf("%d tokens minted, want 3", n)
	}

	// A shared token that died is replaced, and the request served.
	vault.killMinted()
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

// The engine asks for a task's secrets one after the other: one read token
// reads them all (k secrets of k sources, k+1 Vault calls once the mount is
// known), and no other task ever uses it. (Each secret here is a source of
// its own by its vault.group; sources_test.go has the secrets that share
// one.)
func TestTaskSecretsShareOneReadToken(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	for i, field := range []string{"username", "password", "username", "password", "username"} {
		if resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": field, "vault.group": fmt.Sprint(i)})); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	if n, r := len(vault.mintedTokens()), vault.secretReads(); n != 1 || r != 5 {
		t.Errorf("5 secrets of one task: %d tokens minted and %d reads, want 1 and 5", n, r)
	}
	second := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "password"})
	second.TaskID, second.TaskName = "t2", "app.2.t2"
	if resp := p.GetSecret(context.Background(), second); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	minted := vault.mintedTokens()
	if len(minted) != 2 || minted[0].req.Metadata["task_id"] == minted[1].req.Metadata["task_id"] {
		t.Errorf("a second task: %d tokens, want one of its own", len(minted))
	}
	// Kept for half the granted TTL only.
	now := time.Now()
	p.taskReads.now = func() time.Time { return now.Add(p.opts.ReadTokenTTL) }
	p.sources.now = p.taskReads.now
	if resp := p.GetSecret(context.Background(), second); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	if n := len(vault.mintedTokens()); n != 3 {
		t.Errorf("after half the TTL: %d tokens, want 3", n)
	}
	// A token that died is replaced once, and the request served.
	vault.killMinted()
	p.taskReads.now = time.Now
	if resp := p.GetSecret(context.Background(), second); resp.Err != "" {
		t.Errorf("after the kept token died: %s", resp.Err)
	}
}

// A shared token that turns out dead is retried once with a fresh one; when
// that one is refused too, the request fails instead of minting on.
func TestReuseRetriesADeadTokenOnce(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{}) // no REUSE_CACHE_TTL: the tokens, not the values kept
	reuse := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"})
	if resp := p.GetSecret(context.Background(), reuse); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	// From now on every read token is refused as invalid.
	vault.mu.Lock()
	vault.dead = map[string]bool{}
	for i := 0; i < 100; i++ {
		vault.dead[fmt.Sprintf("task-token-%d", i)] = true
	}
	vault.mu.Unlock()
	resp := p.GetSecret(context.Background(), reuse)
	if want := "secret db_pw: invalid token: Vault refused the task's token to read path secret/app/db"; resp.Err != want {
		t.Errorf("Err %q, want %q", resp.Err, want)
	}
	if n := len(vault.mintedTokens()); n != 2 {
		t.Errorf("%d tokens minted, want 2: the first, and one retry", n)
	}
}

// The shared token is kept for half the TTL Vault granted, which may be
// shorter than asked (a role's or the mount's max TTL).
func TestReuseTokenLivesHalfTheGrantedTTL(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{ReadTokenTTL: time.Hour})
	vault.grantTTL = 10 * time.Second
	reuse := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"})
	get := func() {
		t.Helper()
		if resp := p.GetSecret(context.Background(), reuse); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	get()
	now := time.Now()
	p.readTokens.now = func() time.Time { return now.Add(4 * time.Second) }
	get()
	if n := len(vault.mintedTokens()); n != 1 {
		t.Fatalf("%d tokens minted within half the granted TTL, want 1", n)
	}
	p.readTokens.now = func() time.Time { return now.Add(6 * time.Second) }
	get()
	if n := len(vault.mintedTokens()); n != 2 {
		t.Errorf("%d tokens minted past half the granted TTL (5s of 10s), want 2", n)
	}
}

// With a POLICY_TEMPLATE per task, every task is its own policy set: the
// cache of shared tokens stays bounded.
func TestReuseTokenCacheIsBounded(t *testing.T) {
	c := newTokenCache()
	now := time.Now()
	c.now = func() time.Time { return now }
	for i := 0; i < 3*maxCachedTokens; i++ {
		c.put(fmt.Sprintf("task-%d", i), nil, time.Duration(i+1)*time.Second)
	}
	if n := c.len(); n != maxCachedTokens {
		t.Errorf("%d entries, want %d", n, maxCachedTokens)
	}
	// The entries that would expire soonest went first.
	if _, ok := c.get("task-0"); ok {
		t.Error("the oldest entry is still there")
	}
	if _, ok := c.get(fmt.Sprintf("task-%d", 3*maxCachedTokens-1)); !ok {
		t.Error("the newest entry is gone")
	}
	// Expired entries go before live ones.
	c.now = func() time.Time { return now.Add(time.Hour) }
	c.put("fresh", nil, time.Minute)
	if n := c.len(); n != 1 {
		t.Errorf("%d entries after all others expired, want 1", n)
	}
}

func TestAllowedTypes(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{AllowedTypes: []Type{TypeKV, TypeToken}})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "write", "vault.path": "pki/issue/web", "vault.param.common_name": "web"}))
	if want := "secret db_pw: vault.type=write is not served by this plugin (ALLOWED_TYPES=kv,token): use one of those types, or ask the operator to allow it"; resp.Err != want {
		t.Errorf("Err %q, want %q", resp.Err, want)
	}
	if n := len(vault.mintedTokens()); n != 0 {
		t.Errorf("%d tokens minted for a type not allowed", n)
	}
	if resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token"})); resp.Err != "" {
		t.Errorf("an allowed type: %s", resp.Err)
	}
}

// A login error that reaches Response.Err through a re-login is one line,
// as Vault's multi-line error lists become elsewhere.
func TestLoginFailureIsOneLine(t *testing.T) {
	vault := newFakeVault(t)
	vault.dead = map[string]bool{pluginToken: true}
	p, _ := newTestProvider(t, vault.URL, Options{})
	loginErr := fmt.Errorf("AppRole login at auth/approle failed: %w", &api.ResponseError{
		HTTPMethod: "PUT", URL: "http://vault/v1/auth/approle/login", StatusCode: 400,
		Errors: []string{"2 errors occurred:\n\t* invalid role or secret ID\n\t* one more\n\n"},
	})
	p.opts.Reauth = &fakeReauther{client: p.vault, err: fmt.Errorf("the plugin cannot log in to Vault: %w", loginErr)}
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.path": "secret/app/db"}))
	if want := "secret db_pw: Vault refused the plugin's token and the plugin cannot log in to Vault: AppRole login at auth/approle failed: HTTP 400: invalid role or secret ID; one more"; resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}

// vault.rotate on credentials is served, told to the Tracker, and warned
// of when what would roll the service is missing.
func TestRotatingCredentials(t *testing.T) {
	labels := map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.field": "username", "vault.rotate": "true"}
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Rotation: true, Lifecycle: true}, ""},
		{Options{Rotation: true}, "rotating a vault.type=read secret needs the task lifecycle: docker plugin set <plugin> STATE_PATH=<kv path>"},
		{Options{}, "rotation needs the Docker socket"},
	} {
		vault := newFakeVault(t)
		tracker := &fakeTracker{}
		c.opts.Tracker = tracker
		p, logs := newTestProvider(t, vault.URL, c.opts)
		if resp := p.GetSecret(context.Background(), taskRequest(labels)); resp.Err != "" {
			t.Fatalf("%+v: %s", c.opts, resp.Err)
		}
		if len(tracker.credentials) != 1 || !tracker.credentials[0].Rotate {
			t.Errorf("%+v: the tracker was told %+v, want credentials to rotate", c.opts, tracker.credentials)
		}
		if got := logs.String(); c.want == "" && strings.Contains(got, "level=warning") || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%+v: want warning %q:\n%s", c.opts, c.want, got)
		}
	}
}

// vault.wrap=<ttl> is capped by WRAP_MAX_TTL: a wrapping token is the
// value until it is unwrapped or expires. The cap is a label check, so
// swarmvault check finds it offline, and nothing reaches Vault.
func TestWrapTTLIsCapped(t *testing.T) {
	for _, tt := range []struct {
		labels  map[string]string
		opts    Options
		wantErr string
	}{
		{labels: map[string]string{"vault.path": "secret/app/db", "vault.wrap": "2h"},
			wantErr: "secret db_pw: label vault.wrap=2h0m0s is longer than WRAP_MAX_TTL=1h0m0s: ask for at most 1h0m0s, or ask the operator to raise WRAP_MAX_TTL (Vault path secret/app/db)"},
		{labels: map[string]string{"vault.type": "token", "vault.wrap": "11m"}, opts: Options{WrapMaxTTL: 10 * time.Minute},
			wantErr: "secret db_pw: label vault.wrap=11m0s is longer than WRAP_MAX_TTL=10m0s: ask for at most 10m0s, or ask the operator to raise WRAP_MAX_TTL (a task token)"},
		{labels: map[string]string{"vault.path": "secret/app/db", "vault.wrap": "1h"}},
		{labels: map[string]string{"vault.path": "secret/app/db", "vault.wrap": "true"}, opts: Options{WrapMaxTTL: time.Minute, WrapTTL: time.Minute}},
	} {
		vault := newFakeVault(t)
		p, _ := newTestProvider(t, vault.URL, tt.opts)
		if _, err := p.CheckLabels(tt.labels); tt.wantErr != "" && (err == nil || OutcomeOf(err) != OutcomeLabel) {
			t.Errorf("%v: CheckLabels: %v (%s)", tt.labels, err, OutcomeOf(err))
		}
		resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
		if resp.Err != tt.wantErr {
			t.Errorf("%v: Err:\n got %q\nwant %q", tt.labels, resp.Err, tt.wantErr)
		}
		if n := len(vault.mintedTokens()); tt.wantErr != "" && n != 0 {
			t.Errorf("%v: %d tokens minted", tt.labels, n)
		}
	}
}
