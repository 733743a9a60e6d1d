//go:build e2e

// Package e2e tests swarmvault end to end: a real dockerd in swarm mode, the
// plugin as `make plugin` builds it, and a real Vault (make e2e starts all
// three). Every name it creates carries a run ID and is removed afterwards,
// so it can run again at once on the same engine.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/bootstrap"
	"github.com/swarmvault/swarmvault/swarm"
)

const testImage = "swarmvault-test/busybox:latest"

var (
	pluginName = envOr("PLUGIN", "swarmvault:latest")
	dockerdLog = envOr("DOCKERD_LOG", "/var/log/dockerd.log")
	// run prefixes every Docker and Vault name this run creates.
	run = "e2e" + randHex(4)
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is the Vault side of a run: what was written, and every value and
// token handed out, none of which may appear in any log.
type fixture struct {
	root *api.Client
	kv1  string // KV v1 mount of this run
	role string // the token role task tokens are made through
	// pluginPolicy may only make tokens through role.
	pluginPolicy string
	// pluginToken is the plugin's own token, made with pluginPolicy.
	pluginToken string
	// statePath is this run's STATE_PATH, which pluginPolicy grants.
	statePath string
	issued    []string
	v1, v2    map[string]string // versions 1 and 2 of secret/<run>/db
	kv1Data   map[string]string
}

// issue records values handed out, line by line: a log could hold one line
// of a multi-line value.
func (f *fixture) issue(values ...string) {
	for _, v := range values {
		f.issued = append(f.issued, strings.Split(v, "\n")...)
	}
}

// setUpVault prepares Vault for a run and gives the one-node bed's plugin
// its token.
func setUpVault(t *testing.T) *fixture {
	t.Helper()
	f := vaultFixture(t)
	configurePlugin(t, f.pluginToken, f.role)
	return f
}

// vaultFixture writes this run's secrets, token role and the plugin's
// policy to Vault, and makes the plugin's token.
func vaultFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN_FILE") == "" {
		t.Fatal("VAULT_ADDR and VAULT_TOKEN_FILE (the dev Vault's root token) must be set: run make e2e")
	}
	return vaultFixtureAt(t, os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_TOKEN_FILE"))
}

// vaultFixtureAt is vaultFixture for the Vault at addr, whose root token is
// in tokenFile.
func vaultFixtureAt(t *testing.T, addr, tokenFile string) *fixture {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	root, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(strings.TrimSpace(string(tok)))
	ctx := context.Background()

	f := &fixture{root: root, kv1: run + "-kv1"}
	// Version 2, the latest, holds a newline and non-ASCII bytes.
	f.v1 = map[string]string{"username": "app-" + randHex(6), "password": "old-" + randHex(8)}
	f.v2 = map[string]string{"username": f.v1["username"], "password": "pw-" + randHex(8) + "\nzweite Zeile ✓ ü"}
	f.kv1Data = map[string]string{"api_key": "key-" + randHex(8), "region": "eu-1"}
	f.issue(f.v1["username"], f.v1["password"], f.v2["password"], f.kv1Data["api_key"])

	for _, v := range []map[string]string{f.v1, f.v2} {
		if _, err := root.KVv2("secret").Put(ctx, run+"/db", toAny(v)); err != nil {
			t.Fatalf("writing secret/%s/db (is the dev Vault's secret/ a KV v2 mount?): %v", run, err)
		}
	}
	t.Cleanup(func() { root.KVv2("secret").DeleteMetadata(ctx, run+"/db") })
	if err := root.Sys().Mount(f.kv1, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Sys().Unmount(f.kv1) })
	if err := root.KVv1(f.kv1).Put(ctx, "app", toAny(f.kv1Data)); err != nil {
		t.Fatal(err)
	}

	// As an operator sets it up: task tokens come from a token role that
	// makes orphans with this run's policies; the plugin's own token may use
	// the role and read nothing.
	f.role = run + "-tasks"
	if _, err := root.Logical().Write("auth/token/roles/"+f.role, map[string]any{
		"allowed_policies_glob": []string{run + "*"},
		"orphan":                true,
		"token_type":            "default-service",
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Logical().Delete("auth/token/roles/" + f.role) })
	// Outside the role's glob: no task token may be given the plugin's
	// policy. It is the README's: the role, and the task lifecycle's paths.
	policy := "plugin-" + run
	f.statePath = "secret/swarmvault-" + run + "/state"
	if err := root.Sys().PutPolicy(policy, fmt.Sprintf("path \"auth/token/create/%s\" { capabilities = [\"update\"] }\n", f.role)+lifecycleRules(f.statePath)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Sys().DeletePolicy(policy) })
	f.pluginPolicy = policy
	s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, TTL: "2h", DisplayName: "plugin-" + run})
	if err != nil {
		t.Fatal(err)
	}
	f.pluginToken = s.Auth.ClientToken
	f.issue(f.pluginToken)
	t.Cleanup(func() { root.Auth().Token().RevokeOrphan(f.pluginToken) })
	return f
}

// enableAudit turns on a file audit device for the rest of the test and
// returns its file, to count or find what Vault was asked.
func (f *fixture) enableAudit(t *testing.T) string {
	t.Helper()
	auditLog, err := filepath.Abs(filepath.Join("..", ".e2e", "audit-"+run+".log"))
	if err != nil {
		t.Fatal(err)
	}
	device := run + "-audit"
	if err := f.root.Sys().EnableAuditWithOptions(device, &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditLog}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().DisableAudit(device); os.Remove(auditLog) })
	return auditLog
}

// lifecycleRules are the README's policy lines for the task lifecycle with
// STATE_PATH statePath on the KV v2 mount secret/.
func lifecycleRules(statePath string) string {
	rel := strings.TrimPrefix(statePath, "secret/")
	return fmt.Sprintf(`path "secret/data/%[1]s/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/%[1]s/*" { capabilities = ["list", "delete"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
`, rel)
}

// servicePolicy writes the policy POLICY_TEMPLATE ({{.ServiceName}}) gives
// the tasks of service: read on paths.
func (f *fixture) servicePolicy(t *testing.T, service string, paths ...string) {
	t.Helper()
	f.putPolicy(t, service, readRules(paths...))
}

// putPolicy writes a Vault policy for the length of the test.
func (f *fixture) putPolicy(t *testing.T, name, rules string) {
	t.Helper()
	if err := f.root.Sys().PutPolicy(name, rules); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().DeletePolicy(name) })
}

func readRules(paths ...string) string {
	var rules strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&rules, "path %q { capabilities = [\"read\"] }\n", p)
	}
	return rules.String()
}

// helperSecret returns what the helper service's task holds now.
func helperSecret(t *testing.T, helper string) string {
	t.Helper()
	ids := runningContainers(t, helper)
	if len(ids) != 1 {
		t.Fatalf("helper tasks: %s", taskStates(helper))
	}
	return string(readSecretFile(t, ids[0], "vault_bootstrap"))
}

func toAny(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// configurePlugin gives the plugin its token as a file on its credentials
// mount, as the README tells operators to, and enables it.
func configurePlugin(t *testing.T, token, role string) {
	t.Helper()
	configurePluginAt(t, os.Getenv("VAULT_ADDR"), token, role)
}

// configurePluginAt is configurePlugin for the Vault at addr.
func configurePluginAt(t *testing.T, addr, token, role string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".e2e", "credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setPluginAt(t, addr,
		"credentials.source="+dir,
		"docker-socket.source=/dev/null",
		"VAULT_AUTH_METHOD=token",
		"VAULT_TOKEN_FILE=/run/swarmvault/token",
		"VAULT_TOKEN=",
		"TOKEN_ROLE="+role,
		"POLICY_TEMPLATE={{.ServiceName}}",
		// debug, so that the leak check covers everything the plugin can log.
		"LOG_LEVEL=debug")
}

// setPlugin disables the plugin, changes settings and enables it again, as
// an operator must (docker plugin set works only on a disabled plugin).
func setPlugin(t *testing.T, settings ...string) {
	t.Helper()
	setPluginAt(t, os.Getenv("VAULT_ADDR"), settings...)
}

// setPluginAt is setPlugin with the plugin's VAULT_ADDR set to addr.
func setPluginAt(t *testing.T, addr string, settings ...string) {
	t.Helper()
	tryDocker("plugin", "disable", "-f", pluginName)
	docker(t, append([]string{"plugin", "set", pluginName, "VAULT_ADDR=" + addr}, settings...)...)
	docker(t, "plugin", "enable", pluginName)
}

// newPluginToken makes a token with the plugin's policy, as an operator hands
// the plugin one.
func (f *fixture) newPluginToken(t *testing.T) string {
	t.Helper()
	s, err := f.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{f.pluginPolicy}, TTL: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	f.issue(s.Auth.ClientToken)
	t.Cleanup(func() { f.root.Auth().Token().RevokeOrphan(s.Auth.ClientToken) })
	return s.Auth.ClientToken
}

// createPlainSecret makes an ordinary swarm secret (no driver).
func createPlainSecret(t *testing.T, name, value string) {
	t.Helper()
	cmd := exec.Command("docker", "secret", "create", name, "-")
	cmd.Stdin = strings.NewReader(value)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker secret create %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { removeSecret(name) })
}

// deployStack deploys docker-compose.yml as stack, its secrets served by the
// plugin from secret/<path>, its helper holding the swarm secret bootstrap.
func deployStack(t *testing.T, stack, path, bootstrap string) {
	t.Helper()
	dockerEnv(t, stackEnv(path, bootstrap), "stack", "deploy", "--compose-file", "../docker-compose.yml", stack)
	t.Cleanup(func() {
		tryDocker("stack", "rm", stack)
		waitGone(t, "label=com.docker.stack.namespace="+stack)
	})
}

// stackEnv is the environment docker-compose.yml is deployed with.
func stackEnv(path, bootstrap string) []string {
	return []string{
		"SWARMVAULT_DRIVER=" + pluginName,
		"SWARMVAULT_APP_IMAGE=" + testImage,
		"SWARMVAULT_HELPER_IMAGE=" + testImage,
		"SWARMVAULT_PATH=secret/" + path,
		"SWARMVAULT_BOOTSTRAP_SECRET=" + bootstrap,
	}
}

// waitGone waits until no container matches filter.
func waitGone(t *testing.T, filter string) {
	t.Helper()
	waitFor(t, "containers of "+filter+" to go", 60*time.Second, func() (bool, string) {
		out, _ := tryDocker("ps", "-aq", "--filter", filter)
		return strings.TrimSpace(out) == "", out
	})
}

// auditHasRead tells whether Vault's file audit log has a request to path
// made with a token whose metadata names taskID.
func auditHasRead(t *testing.T, file, path, taskID string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Type    string
			Auth    struct{ Metadata map[string]string }
			Request struct{ Path string }
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "request" && e.Request.Path == path && e.Auth.Metadata["task_id"] == taskID {
			return true
		}
	}
	return false
}

// logMark remembers where dockerd's log ends, to read what a run adds.
func logMark(t *testing.T) int64 {
	t.Helper()
	st, err := os.Stat(dockerdLog)
	if err != nil {
		t.Fatalf("dockerd's log %s (DOCKERD_LOG) cannot be read: the plugin's lines are checked there: %v", dockerdLog, err)
	}
	return st.Size()
}

func logSince(t *testing.T, mark int64) string {
	t.Helper()
	b, err := os.ReadFile(dockerdLog)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[mark:])
}

// waitForLogLine waits until dockerd's log (after mark) has a line from the
// plugin at error level that contains text.
func waitForLogLine(t *testing.T, mark int64, text string) {
	t.Helper()
	waitFor(t, "plugin log line: "+text, 60*time.Second, func() (bool, string) {
		for _, line := range strings.Split(logSince(t, mark), "\n") {
			if strings.Contains(line, inDockerdLog(text)) && strings.Contains(line, "level=error") && strings.Contains(line, "plugin=") {
				return true, ""
			}
		}
		return false, "not in " + dockerdLog
	})
}

// inDockerdLog is text as it stands in dockerd's log: quoted twice, once
// by the plugin's logger, once by dockerd's, each escaping quotes and
// backslashes.
func inDockerdLog(text string) string {
	for range 2 {
		q := strconv.Quote(text)
		text = q[1 : len(q)-1]
	}
	return text
}

func TestSwarm(t *testing.T) {
	mark := logMark(t)
	f := setUpVault(t)

	t.Run("driver secrets from docker secret create reach every task byte for byte", func(t *testing.T) {
		db := "secret/" + run + "/db"
		want := map[string]string{}
		secret := func(key string, value string, labels map[string]string) {
			name := run + "_" + key
			createDriverSecret(t, name, labels)
			want[name] = value
		}
		secret("raw", f.v2["password"], map[string]string{"vault.path": db, "vault.field": "password"})
		secret("json", `"`+f.v2["username"]+`"`, map[string]string{"vault.path": db, "vault.field": "username", "vault.format": "json"})
		secret("whole", `{"password":"`+f.v1["password"]+`","username":"`+f.v1["username"]+`"}`, map[string]string{"vault.path": db, "vault.version": "1"})
		secret("pinned", f.v1["password"], map[string]string{"vault.path": db, "vault.field": "password", "vault.version": "1"})
		secret("kv1", f.kv1Data["api_key"], map[string]string{"vault.path": f.kv1 + "/app", "vault.field": "api_key"})
		secret("env", "api_key="+f.kv1Data["api_key"]+"\nregion=eu-1\n", map[string]string{"vault.path": f.kv1 + "/app", "vault.format": "env"})
		secret("tmpl", "region=eu-1 key="+f.kv1Data["api_key"], map[string]string{"vault.path": f.kv1 + "/app", "vault.template": "region={{.region}} key={{.api_key}}"})
		// The seed proof-of-concept's labels still work.
		secret("legacy", f.v1["password"], map[string]string{
			"dk.almbrand.docker.plugin.secretprovider.vault.path": db, "dk.almbrand.docker.plugin.secretprovider.vault.field": "password",
			"dk.almbrand.docker.plugin.secretprovider.vault.version": "1"})

		// A logical read, and a write whose answer differs at each call.
		secret("read", f.kv1Data["api_key"], map[string]string{"vault.type": "read", "vault.path": f.kv1 + "/app", "vault.field": "api_key"})
		random := run + "_random"
		createDriverSecret(t, random, map[string]string{"vault.type": "write", "vault.path": "sys/tools/random",
			"vault.param.bytes": "24", "vault.param.format": "hex", "vault.field": "random_bytes"})

		names := []string{random}
		for n := range want {
			names = append(names, n)
		}
		service := run + "-cli"
		f.putPolicy(t, service, readRules("secret/data/"+run+"/*", f.kv1+"/*")+`path "sys/tools/random" { capabilities = ["update"] }`)
		// Two replicas: each task is served on its own (DoNotReuse).
		createService(t, service, []string{"--replicas", "2"}, names...)
		randoms := map[string]bool{}
		for _, c := range waitRunning(t, service, 2) {
			for name, value := range want {
				if got := readSecretFile(t, c, name); !bytes.Equal(got, []byte(value)) {
					t.Errorf("container %s: /run/secrets/%s differs from Vault (%d bytes, want %d)", c[:12], name, len(got), len(value))
				}
			}
			r := string(readSecretFile(t, c, random))
			if len(r) != 48 || strings.Trim(r, "0123456789abcdef") != "" {
				t.Errorf("container %s: /run/secrets/%s is not 24 random bytes in hex", c[:12], random)
			}
			randoms[r] = true
			f.issue(r)
		}
		if len(randoms) != 2 {
			t.Errorf("the two tasks got the same vault.type=write value: a value was reused between tasks")
		}
	})

	t.Run("driver secrets from docker stack deploy", func(t *testing.T) {
		stack := run + "stack"
		f.servicePolicy(t, stack+"_app", "secret/data/"+run+"/*")
		// The plugin logs in with its token file here: the helper's secret is unused.
		createPlainSecret(t, run+"_unused_bootstrap", "unused")
		// swarmvault check passes the stack that deploys below.
		code, rows := swarmvaultCheck(t, f.role, stack, stackEnv(run+"/db", run+"_unused_bootstrap"), "../docker-compose.yml")
		if code != 0 {
			t.Errorf("swarmvault check exited %d on the stack that deploys: %+v", code, rows)
		}
		served := 0
		for _, r := range rows {
			if r.Status == "ok" && r.Service == stack+"_app" && strings.Join(r.Policies, ",") == stack+"_app" {
				served++
			}
		}
		if served != 2 {
			t.Errorf("swarmvault check: %+v, want db_password and db_user ok for %s_app", rows, stack)
		}
		deployStack(t, stack, run+"/db", run+"_unused_bootstrap")
		containers := waitRunning(t, stack+"_app", 1)
		if got := readSecretFile(t, containers[0], "db_password"); string(got) != f.v2["password"] {
			t.Errorf("/run/secrets/db_password differs from Vault (%d bytes, want %d)", len(got), len(f.v2["password"]))
		}
		if got, want := readSecretFile(t, containers[0], "db_user"), f.v2["username"]; string(got) != want {
			t.Errorf("/run/secrets/db_user differs from Vault")
		}
		// The labels of the compose file reach the engine as written.
		if l := docker(t, "secret", "inspect", "--format", `{{index .Spec.Labels "vault.field"}} {{.Spec.Driver.Name}}`, stack+"_db_password"); strings.TrimSpace(l) != "password "+pluginName {
			t.Errorf("stack secret labels/driver: %q", l)
		}
	})

	t.Run("templated configs: a config template embeds a KV field and a wrapped token (the legacy labels) per task; two replicas, two wrapping tokens, each unwraps once", func(t *testing.T) {
		testTemplatedConfig(t, f)
	})

	t.Run("swarmvault check flags a stack, which then fails as it said", func(t *testing.T) {
		testCheckFlagsStack(t, f, run)
	})

	t.Run("a bad label or path fails its task with a log line that names it, and the next task is served", func(t *testing.T) {
		failing := map[string]struct {
			labels map[string]string
			line   string
		}{
			"badlabel": {
				labels: map[string]string{"vault.path": "secret/" + run + "/db", "vault.format": "xml"},
				line:   "secret " + run + "_badlabel: label vault.format=\"xml\" is not a format: use raw, json, env or template (Vault path secret/" + run + "/db)",
			},
			"missing": {
				labels: map[string]string{"vault.path": "secret/" + run + "/nope"},
				line:   "secret " + run + "_missing: no secret at Vault path secret/" + run + "/nope: check label vault.path",
			},
			"denied": {
				labels: map[string]string{"vault.path": "secret/" + run + "-other/db"},
				line:   "secret " + run + "_denied: permission denied to read Vault path secret/" + run + "-other/db: the token's policies must grant read on secret/data/" + run + "-other/db",
			},
			"notemplate": {
				labels: map[string]string{"vault.type": "token", "vault.token.policies": "plugin-" + run},
				line:   "secret " + run + "_notemplate: label vault.token.policies asks for policy \"plugin-" + run + "\", which POLICY_TEMPLATE does not give service " + run + "-notemplate (it gives: " + run + "-notemplate)",
			},
		}
		for key, c := range failing {
			name := run + "_" + key
			f.servicePolicy(t, run+"-"+key, "secret/data/"+run+"/*")
			createDriverSecret(t, name, c.labels)
			createService(t, run+"-"+key, []string{"--restart-condition", "none"}, name)
		}
		for key, c := range failing {
			waitForLogLine(t, mark, c.line)
			if ids := runningContainers(t, run+"-"+key); len(ids) != 0 {
				t.Errorf("service %s-%s runs without its secret: %s", run, key, taskStates(run+"-"+key))
			}
		}

		after := run + "_after"
		createDriverSecret(t, after, map[string]string{"vault.path": "secret/" + run + "/db", "vault.field": "password"})
		service := run + "-after"
		f.servicePolicy(t, service, "secret/data/"+run+"/*")
		createService(t, service, nil, after)
		c := waitRunning(t, service, 1)[0]
		if got := readSecretFile(t, c, after); string(got) != f.v2["password"] {
			t.Errorf("the task after the failures got a different value")
		}
	})

	t.Run("each task reads with its own token: A and B, token and wrapped secrets, audit log", func(t *testing.T) {
		ctx := context.Background()
		a, b := run+"-a", run+"-b"
		pw := map[string]string{a: "a-" + randHex(8), b: "b-" + randHex(8)}
		f.issue(pw[a], pw[b])
		for svc, value := range pw {
			if _, err := f.root.KVv2("secret").Put(ctx, run+"/"+svc+"/db", map[string]any{"password": value}); err != nil {
				t.Fatal(err)
			}
			f.servicePolicy(t, svc, "secret/data/"+run+"/"+svc+"/*")
		}
		auditLog := f.enableAudit(t)

		createDriverSecret(t, a+"_pw", map[string]string{"vault.path": "secret/" + run + "/" + a + "/db", "vault.field": "password"})
		createDriverSecret(t, b+"_pw", map[string]string{"vault.path": "secret/" + run + "/" + b + "/db", "vault.field": "password"})
		createDriverSecret(t, a+"_token", map[string]string{"vault.type": "token", "vault.token.ttl": "10m"})
		createDriverSecret(t, a+"_wrapped", map[string]string{"vault.path": "secret/" + run + "/" + a + "/db", "vault.wrap": "2m"})
		// The legacy plugin's own combination: a path, a field, wrapped.
		legacy := "dk.almbrand.docker.plugin.secretprovider."
		createDriverSecret(t, a+"_field_wrapped", map[string]string{legacy + "vault.path": "secret/" + run + "/" + a + "/db", legacy + "vault.field": "password", legacy + "vault.wrap": "true"})
		createService(t, a, nil, a+"_pw", a+"_token", a+"_wrapped", a+"_field_wrapped")
		createService(t, b, nil, b+"_pw")
		ca := waitRunning(t, a, 1)[0]
		cb := waitRunning(t, b, 1)[0]
		if got := readSecretFile(t, ca, a+"_pw"); string(got) != pw[a] {
			t.Errorf("service A did not get its password")
		}
		if got := readSecretFile(t, cb, b+"_pw"); string(got) != pw[b] {
			t.Errorf("service B did not get its password")
		}

		vaultURL := os.Getenv("VAULT_ADDR") + "/v1/"
		// inTask runs wget in A's container, authenticated with the content
		// of one of its secret files; "" for data means GET.
		inTask := func(secretFile, path, data string) (string, error) {
			cmd := `wget -q -O - --header "X-Vault-Token: $(cat /run/secrets/` + secretFile + `)" `
			if data != "" {
				cmd += `--post-data '` + data + `' `
			}
			return tryDocker("exec", ca, "sh", "-c", cmd+vaultURL+path)
		}

		token := string(readSecretFile(t, ca, a+"_token"))
		f.issue(token)
		out, err := inTask(a+"_token", "secret/data/"+run+"/"+a+"/db", "")
		if err != nil || !strings.Contains(out, `"password":"`+pw[a]+`"`) {
			t.Errorf("the task's token cannot read A's path from inside the task: %v", err)
		}
		if _, err := inTask(a+"_token", "secret/data/"+run+"/"+b+"/db", ""); err == nil {
			t.Errorf("A's task token reads B's path")
		}

		// Wrapped at the source: the creation path a task checks before
		// unwrapping names the KV read, not sys/wrapping/wrap.
		wrapping := string(readSecretFile(t, ca, a+"_wrapped"))
		f.issue(wrapping)
		anon, _ := f.root.Clone()
		anon.ClearToken()
		look, err := anon.Logical().Write("sys/wrapping/lookup", map[string]any{"token": wrapping})
		if want := "secret/data/" + run + "/" + a + "/db"; err != nil || look.Data["creation_path"] != want {
			t.Errorf("wrapping token lookup: %v, creation path %v, want %s", err, look, want)
		}
		out, err = inTask(a+"_wrapped", "sys/wrapping/unwrap", "{}")
		var unwrapped struct{ Data struct{ Data map[string]any } }
		if err != nil || json.Unmarshal([]byte(out), &unwrapped) != nil || unwrapped.Data.Data["password"] != pw[a] {
			t.Errorf("unwrapping from inside the task: %v", err)
		}
		if _, err := inTask(a+"_wrapped", "sys/wrapping/unwrap", "{}"); err == nil {
			t.Error("the wrapping token unwrapped twice")
		}

		// A wrapped field: Vault never answers the field alone, so the
		// plugin wraps it with sys/wrapping/wrap, and the task finds that
		// creation path and {"value": <the field>} inside, once.
		fieldWrapping := string(readSecretFile(t, ca, a+"_field_wrapped"))
		f.issue(fieldWrapping)
		look, err = anon.Logical().Write("sys/wrapping/lookup", map[string]any{"token": fieldWrapping})
		if err != nil || look.Data["creation_path"] != "sys/wrapping/wrap" {
			t.Errorf("wrapped field's token lookup: %v, %v, want creation path sys/wrapping/wrap", err, look)
		}
		out, err = inTask(a+"_field_wrapped", "sys/wrapping/unwrap", "{}")
		var field struct{ Data map[string]any }
		if err != nil || json.Unmarshal([]byte(out), &field) != nil || field.Data["value"] != pw[a] || len(field.Data) != 1 {
			t.Errorf("unwrapping the wrapped field from inside the task: %v", err)
		}
		if _, err := inTask(a+"_field_wrapped", "sys/wrapping/unwrap", "{}"); err == nil {
			t.Error("the wrapped field's token unwrapped twice")
		}

		// Vault's audit log names the task behind each read.
		taskIDs := strings.Fields(docker(t, "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", a))
		if len(taskIDs) != 1 {
			t.Fatalf("service A tasks: %v", taskIDs)
		}
		if !auditHasRead(t, auditLog, "secret/data/"+run+"/"+a+"/db", taskIDs[0]) {
			t.Errorf("the audit log has no read of A's path by a token of task %s", taskIDs[0])
		}

		// A's secret pointing at B's path fails A's new task, with the path.
		createDriverSecret(t, a+"_steals_b", map[string]string{"vault.path": "secret/" + run + "/" + b + "/db", "vault.field": "password"})
		docker(t, "service", "update", "--detach", "--secret-add", a+"_steals_b", a)
		// Cleanups run last first: the service must go before its secret.
		t.Cleanup(func() { tryDocker("service", "rm", a) })
		waitForLogLine(t, mark, "secret "+a+"_steals_b: permission denied to read Vault path secret/"+run+"/"+b+"/db: the token's policies must grant read on secret/data/"+run+"/"+b+"/db")
	})

	t.Run("bootstrap reads a helper service's swarm secret through the Docker API", func(t *testing.T) {
		// Through the real engine: an archive copy of a swarm secret is
		// empty, so this proves the exec route the plugin depends on.
		helperValue := "helper-" + randHex(8)
		f.issue(helperValue)
		name := run + "_helper"
		createPlainSecret(t, name, helperValue)
		service := run + "-helper"
		createService(t, service, []string{"--mode", "global", "--constraint", "node.role==manager"}, name)
		waitRunning(t, service, 1)

		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		r, err := bootstrap.NewReader(swarm.NewEngine(cli), service, name)
		if err != nil {
			t.Fatal(err)
		}
		// The container runs a moment before its node reports the task
		// running, which is what the reader looks for.
		var got []byte
		waitFor(t, "the helper's task reported running", 30*time.Second, func() (bool, string) {
			got, err = r.Read(context.Background())
			return err == nil, fmt.Sprint(err)
		})
		if string(got) != helperValue {
			t.Errorf("read %d bytes from the helper, want the %d of its secret", len(got), len(helperValue))
		}

		r, err = bootstrap.NewReader(swarm.NewEngine(cli), service, "not_attached")
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Read(context.Background())
		if err == nil || !strings.Contains(err.Error(), "cannot read /run/secrets/not_attached in HELPER_SERVICE "+service+" (exit 1: cat: can't open '/run/secrets/not_attached': No such file or directory)") {
			t.Errorf("reading a secret the helper lacks: %v", err)
		}
	})

	t.Run("helper method: the plugin's token comes from a helper service, again when it dies", func(t *testing.T) {
		stack := run + "h"
		helper := stack + "_vault-helper"
		for _, svc := range []string{stack + "_app", run + "-h-after", run + "-h-gone", run + "-h-back"} {
			f.servicePolicy(t, svc, "secret/data/"+run+"/*")
		}
		createPlainSecret(t, run+"_boot1", f.newPluginToken(t))
		// Only the helper method: no token file, the Docker socket mounted.
		setPlugin(t,
			"VAULT_AUTH_METHOD=helper", "HELPER_SERVICE="+helper, "HELPER_SECRET=vault_bootstrap",
			"docker-socket.source=/var/run/docker.sock", "VAULT_TOKEN_FILE=", "VAULT_TOKEN=",
			"TOKEN_ROLE="+f.role, "LOG_LEVEL=debug")
		deployStack(t, stack, run+"/db", run+"_boot1")
		// The app's first tasks may fail while the helper starts; swarm retries them.
		c := waitRunning(t, stack+"_app", 1)[0]
		if got := readSecretFile(t, c, "db_password"); string(got) != f.v2["password"] {
			t.Errorf("the stack served by the helper-method plugin got a different value")
		}

		served := func(service string) {
			t.Helper()
			secret := service + "_pw"
			createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.field": "password"})
			createService(t, service, nil, secret)
			c := waitRunning(t, service, 1)[0]
			if got := readSecretFile(t, c, secret); string(got) != f.v2["password"] {
				t.Errorf("service %s got a different value", service)
			}
		}

		// Rotate the helper's secret and revoke the token the plugin holds.
		old := helperSecret(t, helper)
		createPlainSecret(t, run+"_boot2", f.newPluginToken(t))
		docker(t, "service", "update", "--detach", "--secret-rm", run+"_boot1",
			"--secret-add", "source="+run+"_boot2,target=vault_bootstrap", helper)
		waitFor(t, "the helper to hold the new secret", 60*time.Second, func() (bool, string) {
			ids := runningContainers(t, helper)
			if len(ids) != 1 {
				return false, taskStates(helper)
			}
			out, _ := tryDocker("exec", ids[0], "cat", "/run/secrets/vault_bootstrap")
			return out != old, "old secret"
		})
		if err := f.root.Auth().Token().RevokeOrphan(old); err != nil {
			t.Fatal(err)
		}
		served(run + "-h-after")

		// The helper gone and the token dead: the plugin says which.
		current := helperSecret(t, helper)
		docker(t, "service", "rm", helper)
		waitGone(t, "label=com.docker.swarm.service.name="+helper)
		if err := f.root.Auth().Token().RevokeOrphan(current); err != nil {
			t.Fatal(err)
		}
		gone := run + "-h-gone"
		createDriverSecret(t, gone+"_pw", map[string]string{"vault.path": "secret/" + run + "/db"})
		createService(t, gone, []string{"--restart-condition", "none"}, gone+"_pw")
		waitForLogLine(t, mark, "secret "+gone+"_pw: Vault refused the plugin's token and the plugin cannot log in to Vault: unable to log in to auth method: HELPER_SERVICE "+helper+" does not exist: create it (global, on the managers) or fix the name")

		// Back: the next task is served.
		createPlainSecret(t, run+"_boot3", f.newPluginToken(t))
		deployStack(t, stack, run+"/db", run+"_boot3")
		served(run + "-h-back")
	})

	t.Run("Vault sealed, unsealed and restarted with its storage: a task that starts sealed is told so, the running one keeps its file, and the same plugin serves after", func(t *testing.T) {
		testVaultSealedAndRestarted(t, f)
	})

	t.Run("the plugin's own token revoked out of band", func(t *testing.T) { testPluginTokenRevoked(t, f) })

	t.Run("task lifecycle", func(t *testing.T) { testLifecycle(t, f, mark) })

	t.Run("no log contains a secret value or token", func(t *testing.T) {
		logs := map[string]string{"dockerd (plugin lines included)": logSince(t, mark)}
		b, err := os.ReadFile(filepath.Join("..", ".e2e", "vault.log"))
		if err != nil {
			t.Fatalf("the dev Vault's log: %v", err)
		}
		logs["vault"] = string(b)
		if !strings.Contains(logs["dockerd (plugin lines included)"], "secret delivered") {
			t.Fatal("the plugin's lines are not in dockerd's log: the check would prove nothing")
		}
		// dockerd stamps each plugin line: the plugin adds no time of its own.
		for _, line := range strings.Split(logs["dockerd (plugin lines included)"], "\n") {
			if strings.Contains(line, "plugin=") && strings.Contains(line, `msg="time=`) {
				t.Errorf("a plugin line with a second timestamp: %s", line)
				break
			}
		}
		for name, text := range logs {
			for _, v := range f.issued {
				if strings.Contains(text, v) {
					t.Errorf("%s log contains an issued value or token (%d bytes)", name, len(v))
				}
			}
		}
	})
}

// testTemplatedConfig deploys examples/templated-config, the templated
// config of docs/secrets.md, with docker stack deploy: each task's config embeds
// the KV field and a wrapping token of its own, made by the token create
// (its creation path names the token role) and good once.
func testTemplatedConfig(t *testing.T, f *fixture) {
	const dir = "../examples/templated-config"
	stack := run + "tmpl"
	f.servicePolicy(t, stack+"_app", "secret/data/"+run+"/*")
	env := stackEnv(run+"/db", "")
	if code, rows := swarmvaultCheck(t, f.role, stack, env, dir+"/docker-compose.yml"); code != 0 {
		t.Errorf("swarmvault check exited %d on the example: %+v", code, rows)
	}
	// What docs/secrets.md shows is what deploys here.
	readme, err := os.ReadFile("../docs/secrets.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"docker-compose.yml", "config.yml.tmpl"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(b)) {
			t.Errorf("docs/secrets.md does not show %s/%s as it is", dir, name)
		}
	}
	dockerEnv(t, env, "stack", "deploy", "--compose-file", dir+"/docker-compose.yml", stack)
	t.Cleanup(func() {
		tryDocker("stack", "rm", stack)
		waitGone(t, "label=com.docker.stack.namespace="+stack)
	})
	anon, _ := f.root.Clone()
	anon.ClearToken()
	wrapping := map[string]bool{}
	for _, c := range waitRunning(t, stack+"_app", 2) {
		out, err := tryDocker("exec", c, "cat", "/etc/app/config.yml")
		if err != nil {
			t.Fatalf("the rendered config of %.12s: %v", c, err)
		}
		values := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				values[k] = v
			}
		}
		f.issue(values["vault_token"])
		// The password has a line break of its own: it ends the config.
		if !strings.HasSuffix(strings.TrimSpace(out), "db_password: "+f.v2["password"]) || values["vault_addr"] != "https://vault.example.com:8200" {
			t.Errorf("task %.12s's config does not hold the KV field", c)
		}
		token := values["vault_token"]
		wrapping[token] = true
		look, err := anon.Logical().Write("sys/wrapping/lookup", map[string]any{"token": token})
		if want := "auth/token/create/" + f.role; err != nil || look.Data["creation_path"] != want {
			t.Errorf("task %.12s's wrapping token: %v, %v, want creation path %s", c, err, look, want)
			continue
		}
		s, err := unwrap(f, token)
		if err != nil || s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			t.Errorf("task %.12s's wrapping token does not unwrap to a token: %v", c, err)
			continue
		}
		f.issue(s.Auth.ClientToken)
		if _, err := unwrap(f, token); err == nil {
			t.Errorf("task %.12s's wrapping token unwrapped twice", c)
		}
	}
	if len(wrapping) != 2 {
		t.Errorf("two replicas hold %d different wrapping tokens, want 2", len(wrapping))
	}
}

// unwrap unwraps a wrapping token with a client of no token of its own
// (the api client's Unwrap takes the wrapping token as its token, so a
// client is good for one unwrap).
func unwrap(f *fixture, wrapping string) (*api.Secret, error) {
	c, err := f.root.Clone()
	if err != nil {
		return nil, err
	}
	c.ClearToken()
	return c.Logical().Unwrap(wrapping)
}
