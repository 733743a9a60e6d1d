//go:build integration

package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// tokenFixture is a plugin as an operator sets it up: a token role that makes
// orphan tokens with the tasks' policies, and a plugin token that may use the
// role and nothing else (no read of any secret, no sudo).
type tokenFixture struct {
	*kvFixture
	role        string
	plugin      *api.Client
	pluginToken string
}

func newTokenFixture(t testing.TB) *tokenFixture {
	t.Helper()
	f := &tokenFixture{kvFixture: newKVFixture(t)}
	f.role = "it-" + f.kv2
	ctx := context.Background()
	policies := map[string]string{
		f.role + "-app": fmt.Sprintf("path %q { capabilities = [\"read\"] }\npath %q { capabilities = [\"read\"] }\npath \"sys/tools/random\" { capabilities = [\"update\"] }",
			f.kv2+"/data/app/*", f.kv1+"/app/*"),
		f.role + "-other":  fmt.Sprintf("path %q { capabilities = [\"read\"] }", f.kv2+"/data/other/*"),
		f.role + "-plugin": fmt.Sprintf("path \"auth/token/create/%s\" { capabilities = [\"update\"] }\npath \"auth/token/lookup-accessor\" { capabilities = [\"update\"] }", f.role),
	}
	for name, rules := range policies {
		if err := f.root.Sys().PutPolicyWithContext(ctx, name, rules); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.root.Sys().DeletePolicy(name) })
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, "auth/token/roles/"+f.role, map[string]any{
		"allowed_policies": []string{f.role + "-app", f.role + "-other"},
		"orphan":           true,
		"token_type":       "default-service",
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Logical().Delete("auth/token/roles/" + f.role) })
	s, err := f.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{f.role + "-plugin"}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	f.pluginToken = s.Auth.ClientToken
	t.Cleanup(func() { f.root.Auth().Token().RevokeOrphan(f.pluginToken) })
	f.plugin, err = f.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	f.plugin.SetToken(f.pluginToken)
	return f
}

func (f *tokenFixture) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	if opts.Policies == nil {
		opts.Policies = mustPolicies(t, f.role+"-{{.ServiceName}}")
	}
	if opts.TokenRole == "" {
		opts.TokenRole = f.role
	}
	return New(f.plugin, logrus.New(), opts)
}

func TestIntegrationReadsWithTheTaskPolicies(t *testing.T) {
	f := newTokenFixture(t)
	p := f.provider(t, Options{})

	// The plugin's own token may read nothing.
	if _, err := f.plugin.KVv2(f.kv2).Get(context.Background(), "app/db"); err == nil {
		t.Fatal("the plugin's token reads secrets: the fixture proves nothing")
	}
	app := taskRequest(map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "username"})
	if resp := p.GetSecret(context.Background(), app); resp.Err != "" || string(resp.Value) != "app" {
		t.Fatalf("service app reading its path: Value %q Err %q", resp.Value, resp.Err)
	}
	other := app
	other.ServiceName = "other"
	want := "secret db_pw: permission denied to read Vault path " + f.kv2 + "/app/db: the token's policies must grant read on " + f.kv2 + "/data/app/db"
	if resp := p.GetSecret(context.Background(), other); resp.Err != want {
		t.Errorf("service other reading app's path:\n got %q\nwant %q", resp.Err, want)
	}
}

func TestIntegrationTokenSecret(t *testing.T) {
	f := newTokenFixture(t)
	p := f.provider(t, Options{TokenMaxTTL: 2 * time.Hour})
	ctx := context.Background()

	resp := p.GetSecret(ctx, taskRequest(map[string]string{"vault.type": "token", "vault.token.ttl": "30m"}))
	if resp.Err != "" {
		t.Fatal(resp.Err)
	}
	taskToken := string(resp.Value)
	look, err := f.root.Auth().Token().LookupWithContext(ctx, taskToken)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := look.TokenMetadata()
	wantMeta := map[string]string{"service": "app", "service_id": "svc1", "task": "app.1.t1", "task_id": "t1", "node_id": "n1", "secret": "db_pw"}
	for k, v := range wantMeta {
		if meta[k] != v {
			t.Errorf("metadata %s = %q, want %q (all: %v)", k, meta[k], v, meta)
		}
	}
	policies, _ := look.TokenPolicies()
	ttl, _ := look.TokenTTL()
	// Vault adds the default policy (which lets the task renew and look up its token).
	if look.Data["type"] != "service" || look.Data["orphan"] != true || strings.Join(policies, ",") != "default,"+f.role+"-app" ||
		ttl > 30*time.Minute || ttl < 29*time.Minute || look.Data["explicit_max_ttl"] != json.Number("7200") {
		t.Errorf("task token: type %v orphan %v policies %v ttl %v explicit_max_ttl %v", look.Data["type"], look.Data["orphan"], policies, ttl, look.Data["explicit_max_ttl"])
	}

	// The seed's bug: task tokens died with the plugin's token.
	if err := f.root.Auth().Token().RevokeTreeWithContext(ctx, f.pluginToken); err != nil {
		t.Fatal(err)
	}
	task, _ := f.root.Clone()
	task.SetToken(taskToken)
	if _, err := task.KVv2(f.kv2).Get(ctx, "app/db"); err != nil {
		t.Errorf("the task token stopped working when the plugin's token was revoked: %v", err)
	}
}

func TestIntegrationTokenLabelsCannotWiden(t *testing.T) {
	f := newTokenFixture(t)
	p := f.provider(t, Options{})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.token.policies": f.role + "-other"}))
	want := "secret db_pw: label vault.token.policies asks for policy \"" + f.role + "-other\", which POLICY_TEMPLATE does not give service app (it gives: " + f.role + "-app)"
	if resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}

func TestIntegrationWithoutRoleOrSudo(t *testing.T) {
	f := newTokenFixture(t)
	p := New(f.plugin, logrus.New(), Options{Policies: mustPolicies(t, f.role+"-{{.ServiceName}}")})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token"}))
	want := "secret db_pw: the plugin's token may not create tokens for service app: grant it update on auth/token/create (and sudo for create-orphan without TOKEN_ROLE)"
	if resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}

// Vault wraps the call that makes each value: the wrapping token's
// creation path, which a task checks with sys/wrapping/lookup, names that
// call, and the token unwraps once.
func TestIntegrationWrappedValueUnwrapsOnce(t *testing.T) {
	f := newTokenFixture(t)
	// Read tokens live 2 s here: the wrapping token must outlive the batch
	// token that made it.
	p := f.provider(t, Options{ReadTokenTTL: 2 * time.Second, Timeout: time.Second})
	ctx := context.Background()
	tests := []struct {
		name         string
		labels       map[string]string
		creationPath string
		check        func(t *testing.T, s *api.Secret)
	}{
		{name: "a KV v2 secret", labels: map[string]string{"vault.path": f.kv2 + "/app/db", "vault.wrap": "1m"},
			creationPath: f.kv2 + "/data/app/db",
			check: func(t *testing.T, s *api.Secret) {
				data, _ := s.Data["data"].(map[string]any)
				if data["password"] != "v4-pw\nzweite Zeile ✓" {
					t.Errorf("unwrapped %v", s.Data)
				}
			}},
		{name: "a task token", labels: map[string]string{"vault.type": "token", "vault.wrap": "true"},
			creationPath: "auth/token/create/" + f.role,
			check: func(t *testing.T, s *api.Secret) {
				if s.Auth == nil {
					t.Fatalf("unwrapped no token: %+v", s)
				}
				if _, err := f.root.Auth().Token().Lookup(s.Auth.ClientToken); err != nil {
					t.Errorf("the unwrapped token does not work: %v", err)
				}
			}},
		// A field cut out of the answer: wrapped by sys/wrapping/wrap, as
		// the plugin's own token (the legacy plugin's labels).
		{name: "a KV field", labels: map[string]string{"dk.almbrand.docker.plugin.secretprovider.vault.path": f.kv2 + "/app/db",
			"dk.almbrand.docker.plugin.secretprovider.vault.field": "password", "dk.almbrand.docker.plugin.secretprovider.vault.wrap": "true"},
			creationPath: "sys/wrapping/wrap",
			check: func(t *testing.T, s *api.Secret) {
				if len(s.Data) != 1 || s.Data["value"] != "v4-pw\nzweite Zeile ✓" {
					t.Errorf("unwrapped %v", s.Data)
				}
			}},
		{name: "a task token in a template", labels: map[string]string{"vault.type": "token", "vault.template": "VAULT_TOKEN={{.}}", "vault.wrap": "true"},
			creationPath: "sys/wrapping/wrap",
			check: func(t *testing.T, s *api.Secret) {
				v, _ := s.Data["value"].(string)
				token, ok := strings.CutPrefix(v, "VAULT_TOKEN=")
				if !ok {
					t.Fatalf("unwrapped %d bytes that are not the template's", len(v))
				}
				if _, err := f.root.Auth().Token().Lookup(token); err != nil {
					t.Errorf("the unwrapped token does not work: %v", err)
				}
			}},
		{name: "a logical write", labels: map[string]string{"vault.type": "write", "vault.path": "sys/tools/random", "vault.param.bytes": "8", "vault.wrap": "1m"},
			creationPath: "sys/tools/random",
			check: func(t *testing.T, s *api.Secret) {
				if b, _ := s.Data["random_bytes"].(string); b == "" {
					t.Errorf("unwrapped %v", s.Data)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := p.GetSecret(ctx, taskRequest(tt.labels))
			if resp.Err != "" {
				t.Fatal(resp.Err)
			}
			time.Sleep(3 * time.Second)
			unwrapper, _ := f.root.Clone()
			unwrapper.SetToken("")
			look, err := unwrapper.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": string(resp.Value)})
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if got := look.Data["creation_path"]; got != tt.creationPath {
				t.Errorf("creation_path %v, want %s", got, tt.creationPath)
			}
			s, err := unwrapper.Logical().UnwrapWithContext(ctx, string(resp.Value))
			if err != nil {
				t.Fatalf("first unwrap: %v", err)
			}
			tt.check(t, s)
			unwrapper.ClearToken()
			_, err = unwrapper.Logical().UnwrapWithContext(ctx, string(resp.Value))
			if err == nil || !strings.Contains(err.Error(), "wrapping token is not valid or does not exist") {
				t.Errorf("second unwrap: %v", err)
			}
		})
	}
}

func TestIntegrationAuditLogShowsTheTask(t *testing.T) {
	f := newTokenFixture(t)
	p := f.provider(t, Options{})
	ctx := context.Background()
	logFile := filepath.Join(t.TempDir(), "audit.log")
	device := "it-audit-" + f.kv2
	if err := f.root.Sys().EnableAuditWithOptionsWithContext(ctx, device, &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": logFile}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().DisableAudit(device) })

	req := taskRequest(map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "username"})
	req.TaskID = "audit-task-" + f.kv2
	if resp := p.GetSecret(ctx, req); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	file, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var found bool
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Type string
			Auth struct {
				TokenType string            `json:"token_type"`
				Metadata  map[string]string `json:"metadata"`
			}
			Request struct{ Path string }
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if e.Type == "request" && e.Request.Path == f.kv2+"/data/app/db" {
			found = true
			if e.Auth.Metadata["task_id"] != req.TaskID || e.Auth.TokenType != "batch" {
				t.Errorf("audit entry of the read: token_type %q metadata %v", e.Auth.TokenType, e.Auth.Metadata)
			}
		}
	}
	if !found {
		t.Error("no audit entry for the read")
	}
}

func TestIntegrationReadAndWrite(t *testing.T) {
	f := newTokenFixture(t)
	p := f.provider(t, Options{})
	ctx := context.Background()

	// vault write sys/tools/random bytes=16 format=hex
	resp := p.GetSecret(ctx, taskRequest(map[string]string{
		"vault.type": "write", "vault.path": "sys/tools/random", "vault.param.bytes": "16", "vault.param.format": "hex", "vault.field": "random_bytes"}))
	if resp.Err != "" || len(resp.Value) != 32 || strings.Trim(string(resp.Value), "0123456789abcdef") != "" {
		t.Errorf("write: Value %q Err %q", resp.Value, resp.Err)
	}
	// vault read <kv v1 path>: a plain logical read.
	resp = p.GetSecret(ctx, taskRequest(map[string]string{"vault.type": "read", "vault.path": f.kv1 + "/app/db", "vault.field": "password"}))
	if resp.Err != "" || string(resp.Value) != "kv1-pw" {
		t.Errorf("read: Value %q Err %q", resp.Value, resp.Err)
	}
	// Another service's policies do not allow it.
	other := taskRequest(map[string]string{"vault.type": "write", "vault.path": "sys/tools/random"})
	other.ServiceName = "other"
	want := "secret db_pw: permission denied to write Vault path sys/tools/random: the token's policies must grant update on sys/tools/random"
	if resp := p.GetSecret(ctx, other); resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}
