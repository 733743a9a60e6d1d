package check

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/swarmvault/swarmvault/provider"
)

// The tests of issue 21: what swarmvault check missed or hid.

// inDir writes files (name: text) into a new working directory for the
// test, so that rows and errors name them as a user would type them.
func inDir(t *testing.T, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// oneService is a compose file of one service a that uses secret s.
func oneService(secret string) string {
	return "version: \"3.8\"\nservices:\n  a:\n    image: busybox\n    secrets: [s]\nsecrets:\n  s: " + secret + "\n"
}

// mainOut runs the command and returns its exit code, stdout and stderr.
func mainOut(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// Fix 1: vault.token.policies outside what POLICY_TEMPLATE gives the
// service is found offline, with the sentence the plugin answers.
func TestTokenPoliciesOutsideTheTemplateOffline(t *testing.T) {
	const admin = `secret st_s: label vault.token.policies asks for policy "admin", which POLICY_TEMPLATE does not give service st_a (it gives: st_a)`
	for _, c := range []struct {
		name, template, secret string
		status                 string
		problems               []string
		reason                 string
		code                   int
	}{
		{"a token, the default template", "", `{driver: vault, labels: {vault.type: token, vault.token.policies: admin}}`,
			StatusProblem, []string{admin}, "", ExitProblem},
		{"a read's token", "", `{driver: vault, labels: {vault.type: read, vault.path: database/creds/app, vault.token.policies: admin}}`,
			StatusProblem, []string{admin}, "", ExitProblem},
		{"a write's token, legacy labels", "", `{driver: vault, labels: {dk.almbrand.docker.plugin.secretprovider.vault.type: write, dk.almbrand.docker.plugin.secretprovider.vault.path: pki/issue/web, dk.almbrand.docker.plugin.secretprovider.vault.token.policies: admin}}`,
			StatusProblem, []string{admin}, "", ExitProblem},
		{"one of two outside", "{{.ServiceName}},shared", `{driver: vault, labels: {vault.type: token, vault.token.policies: "shared,admin"}}`,
			StatusProblem, []string{`secret st_s: label vault.token.policies asks for policy "admin", which POLICY_TEMPLATE does not give service st_a (it gives: shared, st_a)`}, "", ExitProblem},
		{"within the template", "{{.ServiceName}},shared", `{driver: vault, labels: {vault.type: token, vault.token.policies: shared}}`,
			StatusOK, nil, "", ExitOK},
		{"the template's policies unknown offline", "{{.ServiceName}}-{{.TaskID}}", `{driver: vault, labels: {vault.type: token, vault.token.policies: admin}}`,
			StatusUnchecked, nil, idsUnknown, ExitUnchecked},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": oneService(c.secret)})
			code, rows, stderr := runCheck(t, "--stack", "st", "--policy-template", c.template, "stack.yml")
			r := find(t, rows, "s", "st_a")
			if code != c.code || r.Status != c.status || !slices.Equal(r.Problems, c.problems) || r.Reason != c.reason {
				t.Errorf("exit %d, %s %q %q (stderr %s)\nwant exit %d, %s %q %q", code, r.Status, r.Problems, r.Reason, stderr, c.code, c.status, c.problems, c.reason)
			}
		})
	}

	// Vault settings of the environment that the Vault API refuses make
	// no client: only a row with vault.token.policies needed one.
	t.Run("VAULT_* settings the Vault API refuses", func(t *testing.T) {
		clearPluginEnv(t)
		t.Setenv("VAULT_SKIP_VERIFY", "maybe")
		inDir(t, map[string]string{"stack.yml": "version: \"3.8\"\nservices:\n  a: {image: busybox, secrets: [s, k]}\nsecrets:\n" +
			"  s: {driver: vault, labels: {vault.type: token, vault.token.policies: admin}}\n  k: {driver: vault, labels: {vault.path: secret/x}}\n"})
		code, rows, _ := runCheck(t, "--stack", "st", "stack.yml")
		const why = "the check cannot tell whether POLICY_TEMPLATE gives the policies of label vault.token.policies: the environment's Vault settings are wrong: could not parse VAULT_SKIP_VERIFY"
		if s, k := find(t, rows, "s", "st_a"), find(t, rows, "k", "st_a"); code != ExitUnchecked || s.Status != StatusUnchecked || s.Reason != why || k.Status != StatusOK {
			t.Errorf("exit %d, s %s %q, k %s", code, s.Status, s.Reason, k.Status)
		}
	})

	// The plugin answers a task the same sentence, before any Vault call.
	clearPluginEnv(t)
	inDir(t, map[string]string{"stack.yml": oneService(`{driver: vault, labels: {vault.type: token, vault.token.policies: admin}}`)})
	_, rows, _ := runCheck(t, "--stack", "st", "stack.yml")
	var req provider.Request
	req.SecretName, req.ServiceName, req.TaskID = "st_s", "st_a", "task"
	req.SecretLabels = map[string]string{"vault.type": "token", "vault.token.policies": "admin"}
	if resp := vaultAnswering(t, http.StatusForbidden).GetSecret(context.Background(), req); resp.Err != admin || find(t, rows, "s", "st_a").Problem != resp.Err {
		t.Errorf("the plugin answers %q, the check says %q", resp.Err, find(t, rows, "s", "st_a").Problem)
	}
}

// Fix 2: a secret with swarmvault labels and another driver is a
// problem, not a secret the check never shows.
func TestVaultLabelsWithAnotherDriver(t *testing.T) {
	for _, c := range []struct {
		name, secret string
		args         []string
		want         string // the row's one problem; "" for no row at all
	}{
		{"a typo", `{driver: vaultt, labels: {vault.path: secret/x}}`, nil,
			"secret st_s has vault.* labels but driver vaultt, not vault: did you mean driver: vault?"},
		{"a typo, the legacy labels", `{driver: valut, labels: {dk.almbrand.docker.plugin.secretprovider.vault.path: secret/x}}`, nil,
			"secret st_s has dk.almbrand.docker.plugin.secretprovider.vault.* labels but driver valut, not vault: did you mean driver: vault?"},
		{"another name", `{driver: hashicorp-vault, labels: {vault.path: secret/x}}`, nil,
			"secret st_s has vault.* labels but driver hashicorp-vault, not vault: set driver: vault (or --driver hashicorp-vault if the plugin is installed under that name)"},
		{"the plugin installed under another name", `{driver: vault, labels: {vault.path: secret/x}}`, []string{"--driver", "swarmvault"},
			"secret st_s has vault.* labels but driver vault, not swarmvault: set driver: swarmvault (or --driver vault if the plugin is installed under that name)"},
		{"no driver", `{file: ./stack.yml, labels: {vault.path: secret/x}}`, nil,
			"secret st_s has vault.* labels but no driver, so docker stack deploy reads it from its file: set driver: vault"},
		{"another driver, no vault labels", `{driver: other, labels: {team: x}}`, nil, ""},
		{"a file secret", `{file: ./stack.yml}`, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": oneService(c.secret)})
			code, rows, stderr := runCheck(t, append(append([]string{"--stack", "st"}, c.args...), "stack.yml")...)
			if c.want == "" {
				if code != ExitOK || len(rows) != 0 {
					t.Errorf("exit %d, rows %+v (stderr %s); want 0 and none", code, rows, stderr)
				}
				return
			}
			r := find(t, rows, "s", "st_a")
			if code != ExitProblem || r.Status != StatusProblem || !slices.Equal(r.Problems, []string{c.want}) {
				t.Errorf("exit %d, %s %q (stderr %s)\nwant exit 1, problem %q", code, r.Status, r.Problems, stderr, c.want)
			}
		})
	}
}

// Fix 3: every problem of a secret for a service is shown: one JSON row
// with a list, one table line each.
func TestEveryProblemOfASecret(t *testing.T) {
	for _, c := range []struct {
		name, secret string
		args         []string
		problems     []string
		reason       string
		table        []string // the table's lines after the settings
	}{
		{"driver, label and POLICY_TEMPLATE", `{driver: vaultt, labels: {vault.path: secret/x, vault.feild: pw}}`,
			[]string{"--policy-template", `{{serviceLabel "team"}}`},
			[]string{
				"secret st_s has vault.* labels but driver vaultt, not vault: did you mean driver: vault?",
				"secret st_s: label vault.feild is not a swarmvault label: did you mean vault.field?",
				`secret st_s: POLICY_TEMPLATE {{serviceLabel "team"}} failed for service st_a: service st_a has no label team`,
			}, "",
			[]string{
				"FILE       SECRET  SERVICE  TYPE  POLICIES  RESULT",
				"stack.yml  s       st_a     -     -         problem: secret st_s has vault.* labels but driver vaultt, not vault: did you mean driver: vault?",
				"stack.yml  s       st_a     -     -         problem: secret st_s: label vault.feild is not a swarmvault label: did you mean vault.field?",
				`stack.yml  s       st_a     -     -         problem: secret st_s: POLICY_TEMPLATE {{serviceLabel "team"}} failed for service st_a: service st_a has no label team`,
				"0 ok, 3 problems, 0 unchecked, 0 skipped",
			}},
		{"ALLOWED_TYPES and WRAP_MAX_TTL", `{driver: vault, labels: {vault.type: token, vault.wrap: 2h}}`,
			[]string{"--allowed-types", "kv"},
			[]string{
				"secret st_s: vault.type=token is not served by this plugin (ALLOWED_TYPES=kv): use one of those types, or ask the operator to allow it",
				"secret st_s: label vault.wrap=2h0m0s is longer than WRAP_MAX_TTL=1h0m0s: ask for at most 1h0m0s, or ask the operator to raise WRAP_MAX_TTL (a task token)",
			}, "", nil},
		{"a label and a template the check cannot judge", `{driver: vault, labels: {vault.path: secret/x, vault.format: xml}}`,
			[]string{"--policy-template", "{{.TaskID}}"},
			[]string{`secret st_s: label vault.format="xml" is not a format: use raw, json, env or template (Vault path secret/x)`},
			idsUnknown,
			[]string{
				"FILE       SECRET  SERVICE  TYPE  POLICIES  RESULT",
				`stack.yml  s       st_a     -     -         problem: secret st_s: label vault.format="xml" is not a format: use raw, json, env or template (Vault path secret/x)`,
				"stack.yml  s       st_a     -     -         unchecked: " + idsUnknown,
				"0 ok, 1 problems, 1 unchecked, 0 skipped",
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": oneService(c.secret)})
			code, rows, stderr := runCheck(t, append(append([]string{"--stack", "st"}, c.args...), "stack.yml")...)
			r := find(t, rows, "s", "st_a")
			if code != ExitProblem || r.Status != StatusProblem || !slices.Equal(r.Problems, c.problems) || r.Reason != c.reason || r.Problem != c.problems[0] {
				t.Errorf("exit %d, %s %q, reason %q (stderr %s)\nwant exit 1, problems %q, reason %q", code, r.Status, r.Problems, r.Reason, stderr, c.problems, c.reason)
			}
			if c.table == nil {
				return
			}
			_, out, _ := mainOut(append(append([]string{"--stack", "st"}, c.args...), "stack.yml")...)
			if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(lines[1:], c.table) {
				t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines[1:], "\n"), strings.Join(c.table, "\n"))
			}
		})
	}
}

// Fix 4: exit 3 for a row the check could not judge, 2 only when it
// could not run, and a problem wins over unchecked.
func TestExitCodes(t *testing.T) {
	const served = `{driver: vault, labels: {vault.path: secret/x}}`
	const bad = `{driver: vault, labels: {vault.path: secret/x, vault.format: xml}}`
	for _, c := range []struct {
		name, file string
		args       []string
		code       int
	}{
		{"every secret served", oneService(served), nil, ExitOK},
		{"a problem", oneService(bad), nil, ExitProblem},
		{"a template with a task ID", oneService(served), []string{"--policy-template", "{{.TaskID}}"}, ExitUnchecked},
		{"a global service's task name holds a node ID", strings.Replace(oneService(served), "    image: busybox\n", "    image: busybox\n    deploy: {mode: global}\n", 1),
			[]string{"--policy-template", "{{.TaskName}}"}, ExitUnchecked},
		{"a problem and an unchecked row", "version: \"3.8\"\nservices:\n  a: {image: busybox, secrets: [s, t]}\nsecrets:\n  s: " + served + "\n  t: " + bad + "\n",
			[]string{"--policy-template", "{{.ServiceName}}{{if .SecretName | eq \"st_s\"}}-{{.TaskID}}{{end}}"}, ExitProblem},
		{"a file that does not load", "services: [", nil, ExitError},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": c.file})
			code, _, stderr := mainOut(append(append([]string{"--stack", "st"}, c.args...), "stack.yml")...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %s)", code, c.code, stderr)
			}
		})
	}
	for _, c := range []struct {
		rows []Row
		code int
	}{
		{[]Row{{Status: StatusOK}, {Status: StatusSkipped}}, ExitOK},
		{[]Row{{Status: StatusOK}, {Status: StatusUnchecked}}, ExitUnchecked},
		{[]Row{{Status: StatusUnchecked}, {Status: StatusProblem}, {Status: StatusUnchecked}}, ExitProblem},
	} {
		if code := exitCode(c.rows); code != c.code {
			t.Errorf("exitCode(%+v) = %d, want %d", c.rows, code, c.code)
		}
	}
	_, _, help := mainOut("--help")
	const want = `Exit status:
  0  every secret would be served
  1  a problem: a secret would not be served (the output says why)
  2  the check could not run: a file that does not load, a bad flag, or,
     with --vault, no VAULT_ADDR or token, Vault out of reach, or a token
     without the plugin's rights
  3  unchecked: no problem, but a secret the check could not judge: a
     POLICY_TEMPLATE that uses a service, task or node ID (Swarm makes them
     at the deploy), or Vault that did not answer for it (the rows say why)
A problem wins over unchecked: a 1 is certain whatever the unchecked
secrets turn out to be, so a pipeline that lets 3 pass still stops on it.
`
	if !strings.Contains(help, want) {
		t.Errorf("--help does not say:\n%s\nit says:\n%s", want, help)
	}
}

// Fix 5: the settings in effect, and where each came from, are shown;
// never a token.
func TestSettingsInEffect(t *testing.T) {
	const token = "hvs.never-print-me"
	const defaults = "ALLOWED_TYPES=kv,read,write,token (default) TOKEN_TTL=1h (default) TOKEN_MAX_TTL=24h (default) WRAP_MAX_TTL=1h (default) VAULT_CLIENT_TIMEOUT=10s (default)"
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		line string
	}{
		{"defaults", nil, []string{"--stack", "pay"},
			"settings: POLICY_TEMPLATE={{.ServiceName}} (default) TOKEN_ROLE='' (default) " + defaults + " driver=vault (default) stack=pay (flag)"},
		{"a stray POLICY_TEMPLATE", map[string]string{"POLICY_TEMPLATE": `{{serviceLabel "team"}}`, "TOKEN_ROLE": "tasks"}, nil,
			`settings: POLICY_TEMPLATE='{{serviceLabel "team"}}' (env) TOKEN_ROLE=tasks (env) ` + defaults + " driver=vault (default) stack=stack (default)"},
		{"flags over the environment", map[string]string{"POLICY_TEMPLATE": "x", "TOKEN_TTL": "2h", "ALLOWED_TYPES": "kv"},
			[]string{"--policy-template", "{{.ServiceName}}-ro", "--token-ttl", "30m", "--allowed-types", "", "--driver", "vault", "--stack", "pay"},
			"settings: POLICY_TEMPLATE={{.ServiceName}}-ro (flag) TOKEN_ROLE='' (default) ALLOWED_TYPES=kv,read,write,token (default) TOKEN_TTL=30m (flag) TOKEN_MAX_TTL=24h (default) WRAP_MAX_TTL=1h (default) VAULT_CLIENT_TIMEOUT=10s (default) driver=vault (flag) stack=pay (flag)"},
		{"a quote in a value", map[string]string{"POLICY_TEMPLATE": `{{.ServiceName}}{{/* it's */}}`}, nil,
			`settings: POLICY_TEMPLATE='{{.ServiceName}}{{/* it'\''s */}}' (env) TOKEN_ROLE='' (default) ` + defaults + " driver=vault (default) stack=stack (default)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			t.Setenv("VAULT_TOKEN", token)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			inDir(t, map[string]string{"stack.yml": oneService(`{driver: vault, labels: {vault.path: secret/x}}`)})
			_, out, stderr := mainOut(append(c.args, "stack.yml")...)
			if line, _, _ := strings.Cut(out, "\n"); line != c.line {
				t.Errorf("first line:\n got %s\nwant %s", line, c.line)
			}
			_, js, _ := mainOut(append([]string{"--format", "json"}, append(c.args, "stack.yml")...)...)
			var r struct{ Settings map[string]shown }
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, name := range append(slices.Clone(pluginSettings), "driver", "stack") {
				parts = append(parts, name+"="+shellWord(r.Settings[name].Value)+" ("+r.Settings[name].From+")")
			}
			if got := "settings: " + strings.Join(parts, " "); got != c.line || len(r.Settings) != len(pluginSettings)+2 {
				t.Errorf("JSON settings %+v\nsay %s\nwant %s", r.Settings, got, c.line)
			}
			if strings.Contains(out+js+stderr, token) {
				t.Errorf("the output shows VAULT_TOKEN")
			}
		})
	}

	// With --vault, the Vault address too, without a password it holds.
	clearPluginEnv(t)
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data": {"capabilities": ["update"], "auth/token/create": ["update"]}}`))
	}))
	t.Cleanup(vault.Close)
	addr := strings.Replace(vault.URL, "http://", "http://check:hunter2@", 1)
	t.Setenv("VAULT_ADDR", addr)
	t.Setenv("VAULT_TOKEN", token)
	inDir(t, map[string]string{"stack.yml": oneService(`{driver: other}`)})
	code, out, stderr := mainOut("--vault", "--stack", "pay", "stack.yml")
	want := "settings: POLICY_TEMPLATE={{.ServiceName}} (default) TOKEN_ROLE='' (default) " + defaults + " driver=vault (default) stack=pay (flag) VAULT_ADDR=" +
		strings.Replace(vault.URL, "http://", "http://check:xxxxx@", 1) + " (env)"
	if line, _, _ := strings.Cut(out, "\n"); code != ExitOK || line != want {
		t.Errorf("exit %d (stderr %s), first line:\n got %s\nwant %s", code, stderr, line, want)
	}
	if strings.Contains(out+stderr, token) || strings.Contains(out+stderr, "hunter2") {
		t.Errorf("the output shows the token or the address's password:\n%s%s", out, stderr)
	}
}

// Fix 6a: a label POLICY_TEMPLATE reads that the service has among its
// containers' labels, not its deploy.labels.
func TestContainerLabelsHint(t *testing.T) {
	const file = "version: \"3.8\"\nservices:\n  a:\n    image: busybox\n    secrets: [s]\n%s\nsecrets:\n  s: {driver: vault, labels: {vault.path: secret/x}}\n"
	for _, c := range []struct {
		name, labels, template string
		want                   []string // the row's problems
	}{
		{"under labels:", "    labels: {team: payments}", `{{serviceLabel "team"}}`,
			[]string{`secret st_s: POLICY_TEMPLATE {{serviceLabel "team"}} failed for service st_a: service st_a has no label team (team is in the service's labels:, which go to its containers; the plugin reads deploy.labels: move it under deploy: labels:)`}},
		{"two of them", "    labels: {team: payments, owner: alice, other: x}", `{{serviceLabel "team"}},{{serviceLabel "owner"}}`,
			[]string{`secret st_s: POLICY_TEMPLATE {{serviceLabel "team"}},{{serviceLabel "owner"}} failed for service st_a: service st_a has no label team (team, owner are in the service's labels:, which go to its containers; the plugin reads deploy.labels: move them under deploy: labels:)`}},
		{"in neither", "    labels: {owner: alice}", `{{serviceLabel "team"}}`,
			[]string{`secret st_s: POLICY_TEMPLATE {{serviceLabel "team"}} failed for service st_a: service st_a has no label team`}},
		{"under deploy: labels:", "    deploy: {labels: {team: payments}}\n    labels: {team: other}", `{{serviceLabel "team"}}`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": strings.Replace(file, "%s", c.labels, 1)})
			_, rows, stderr := runCheck(t, "--stack", "st", "--policy-template", c.template, "stack.yml")
			if r := find(t, rows, "s", "st_a"); !slices.Equal(r.Problems, c.want) {
				t.Errorf("problems %q (stderr %s)\nwant %q", r.Problems, stderr, c.want)
			}
		})
	}
}

// Fix 6b: a compose file version older than driver: secrets.
func TestComposeVersionBeforeDriverSecrets(t *testing.T) {
	const secret = `{driver: vault, labels: {vault.path: secret/x}}`
	for _, c := range []struct {
		name, version string
		code          int
		stderr        string
	}{
		{"3.7", `"3.7"`, ExitError, `swarmvault check: docker stack deploy could not load the compose files: secrets.s Additional property driver is not allowed (secret s of stack.yml has a driver:, which needs compose file version 3.8 or later, and stack.yml says version: "3.7": set version: "3.8" in each file)` + "\n"},
		{"3.0", `"3.0"`, ExitError, `swarmvault check: docker stack deploy could not load the compose files: services.a Additional property secrets is not allowed (secret s of stack.yml has a driver:, which needs compose file version 3.8 or later, and stack.yml says version: "3.0": set version: "3.8" in each file)` + "\n"},
		{"3.7, a number", `3.7`, ExitError, `swarmvault check: docker stack deploy could not load the compose files: secrets.s Additional property driver is not allowed (secret s of stack.yml has a driver:, which needs compose file version 3.8 or later, and stack.yml says version: "3.7": set version: "3.8" in each file)` + "\n"},
		{"2.4", `"2.4"`, ExitError, `swarmvault check: docker stack deploy could not load the compose files: unsupported Compose file version: 2.4 (secret s of stack.yml has a driver:, which needs compose file version 3.8 or later, and stack.yml says version: "2.4": set version: "3.8" in each file)` + "\n"},
		{"3.8", `"3.8"`, ExitOK, ""},
		{"3.10", `"3.10"`, ExitOK, ""},
		{"3, the latest 3.x", `"3"`, ExitOK, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": strings.Replace(oneService(secret), `"3.8"`, c.version, 1)})
			if code, _, stderr := mainOut("--stack", "st", "stack.yml"); code != c.code || stderr != c.stderr {
				t.Errorf("exit %d, stderr %q\nwant %d, %q", code, stderr, c.code, c.stderr)
			}
		})
	}
	// A version older than 3.8 with no driver secret gets no hint.
	clearPluginEnv(t)
	inDir(t, map[string]string{"stack.yml": "version: \"3.7\"\nservices:\n  a: {image: busybox, secrets: [s]}\nsecrets:\n  s: {file: ./stack.yml, template_driver: golang}\n"})
	if code, _, stderr := mainOut("--stack", "st", "stack.yml"); code != ExitError || stderr != "swarmvault check: docker stack deploy could not load the compose files: secrets.s Additional property template_driver is not allowed\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// Fix 6c: vault.reuse with vault.wrap names vault.wrap.
func TestReuseWithWrap(t *testing.T) {
	for _, c := range []struct{ name, secret, want string }{
		{"vault.wrap=true", `{driver: vault, labels: {vault.path: secret/x, vault.wrap: "true", vault.reuse: "true"}}`,
			"secret st_s: label vault.reuse=true cannot apply with vault.wrap=true: a wrapping token unwraps once, so each task needs its own; remove one of them (Vault path secret/x)"},
		{"a wrap TTL", `{driver: vault, labels: {vault.path: secret/x, vault.field: pw, vault.wrap: 5m, vault.reuse: "true"}}`,
			"secret st_s: label vault.reuse=true cannot apply with vault.wrap=5m0s: a wrapping token unwraps once, so each task needs its own; remove one of them (Vault path secret/x)"},
		{"a token is one task's anyway", `{driver: vault, labels: {vault.type: token, vault.wrap: "true", vault.reuse: "true"}}`,
			"secret st_s: label vault.reuse=true cannot apply to a task token: each task needs its own value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearPluginEnv(t)
			inDir(t, map[string]string{"stack.yml": oneService(c.secret)})
			_, rows, _ := runCheck(t, "--stack", "st", "stack.yml")
			if r := find(t, rows, "s", "st_a"); !slices.Equal(r.Problems, []string{c.want}) {
				t.Errorf("problems %q\nwant %q", r.Problems, c.want)
			}
		})
	}
}

// Fix 7: the help and the errors write every flag --name.
func TestFlagsWithTwoDashes(t *testing.T) {
	clearPluginEnv(t)
	code, _, help := mainOut("--help")
	flags := help[strings.Index(help, "\nFlags:\n")+len("\nFlags:\n"):]
	var heads []string
	for _, line := range strings.Split(strings.TrimSuffix(flags, "\n"), "\n") {
		if !strings.HasPrefix(line, "      ") {
			heads = append(heads, line)
		}
	}
	want := []string{
		"  --allowed-types TYPES", "  --driver NAME", "  --format table|json", "  --policy-template TEMPLATE",
		"  --stack NAME", "  --timeout DURATION", "  --token-file FILE", "  --token-max-ttl DURATION",
		"  --token-role ROLE", "  --token-ttl DURATION", "  --vault", "  --wrap-max-ttl DURATION",
	}
	if code != ExitOK || !slices.Equal(heads, want) {
		t.Errorf("exit %d, flags:\n%s\nwant:\n%s", code, strings.Join(heads, "\n"), strings.Join(want, "\n"))
	}
	if oneDash := regexp.MustCompile(`(^|[\s'"(])-[a-z]`).FindAllString(help, -1); len(oneDash) > 0 {
		t.Errorf("--help writes a flag with one dash: %q\n%s", oneDash, help)
	}
	for _, c := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"a typo", []string{"--vualt", "f.yml"}, "swarmvault check: --vualt is not a flag: did you mean --vault? (see --help)\n"},
		{"a typo, one dash", []string{"-polcy-template", "x", "f.yml"}, "swarmvault check: --polcy-template is not a flag: did you mean --policy-template? (see --help)\n"},
		{"no such flag", []string{"--colour", "f.yml"}, "swarmvault check: --colour is not a flag (see --help)\n"},
		{"no value", []string{"f.yml", "--stack"}, "swarmvault check: --stack needs a value: --stack NAME (see --help)\n"},
		{"not a boolean", []string{"--vault=maybe", "f.yml"}, "swarmvault check: invalid boolean value \"maybe\" for --vault: parse error\n"},
		{"a format", []string{"--format", "xml", "f.yml"}, "swarmvault check: --format xml is not a format: use table or json\n"},
		{"no driver", []string{"--driver", "", "f.yml"}, "swarmvault check: --driver is empty: give the name the plugin is installed as, e.g. vault\n"},
		{"--vault without --stack", []string{"--vault", "f.yml"}, "swarmvault check: --vault needs --stack: POLICY_TEMPLATE gives each service policies by its name in the swarm, STACK_service\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, _, stderr := mainOut(c.args...); code != ExitError || stderr != c.stderr {
				t.Errorf("exit %d, stderr %q\nwant %d, %q", code, stderr, ExitError, c.stderr)
			}
		})
	}
}
