package check

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmvault/swarmvault/internal/vaulttest"
	"github.com/swarmvault/swarmvault/provider"
)

// runCheck runs the command as a user would and decodes its JSON output.
func runCheck(t *testing.T, args ...string) (int, []Row, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(append([]string{"--format", "json"}, args...), strings.NewReader(""), &out, &errOut)
	if code == ExitError && out.Len() == 0 {
		return code, nil, errOut.String()
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if r.Exit != code {
		t.Errorf("JSON says exit %d, the command exits %d", r.Exit, code)
	}
	return code, r.Results, errOut.String()
}

// clearPluginEnv keeps the machine's environment out of the settings.
func clearPluginEnv(t *testing.T) {
	for _, name := range []string{"POLICY_TEMPLATE", "TOKEN_ROLE", "ALLOWED_TYPES", "TOKEN_TTL", "TOKEN_MAX_TTL", "WRAP_MAX_TTL", "VAULT_CLIENT_TIMEOUT", "DRIVER", "DB_PATH"} {
		t.Setenv(name, "")
	}
}

func find(t *testing.T, rows []Row, secret, service string) Row {
	t.Helper()
	for _, r := range rows {
		if r.Secret == secret && r.Service == service {
			return r
		}
	}
	t.Fatalf("no row for secret %s, service %q in %+v", secret, service, rows)
	return Row{}
}

func TestExampleComposeFile(t *testing.T) {
	clearPluginEnv(t)
	code, rows, stderr := runCheck(t, "--stack", "myapp", "../docker-compose.yml")
	if code != ExitOK {
		t.Fatalf("exit %d for the README's example stack: %+v %s", code, rows, stderr)
	}
	for _, secret := range []string{"db_password", "db_user"} {
		r := find(t, rows, secret, "myapp_app")
		if r.Status != StatusOK || r.Name != "myapp_"+secret || r.Type != "kv" || r.Path != "secret/myapp/db" || strings.Join(r.Policies, ",") != "myapp_app" || r.File != "../docker-compose.yml" {
			t.Errorf("%s: %+v", secret, r)
		}
	}
	if r := find(t, rows, "vault_bootstrap", "myapp_vault-helper"); r.Status != StatusSkipped || r.Name != "swarmvault_bootstrap" {
		t.Errorf("the external secret: %+v", r)
	}
	if len(rows) != 3 {
		t.Errorf("%d rows, want 3: %+v", len(rows), rows)
	}
}

// Each problem is the plugin's own sentence: what the leader's log would
// say for the task, prefixed by the secret's name in the swarm.
func TestMistakesFoundOffline(t *testing.T) {
	clearPluginEnv(t)
	code, rows, _ := runCheck(t, "--stack", "shop", "testdata/mistakes.yml")
	if code != ExitProblem {
		t.Errorf("exit %d, want %d", code, ExitProblem)
	}
	want := map[[2]string]string{
		{"typo", "shop_web"}:        `secret shop_typo: label vault.feild is not a swarmvault label: did you mean vault.field?`,
		{"badtype", "shop_web"}:     `secret shop_badtype: label vault.type="secret" is not supported: use kv, read, write or token`,
		{"pinnedtoken", "shop_web"}: `secret shop_pinnedtoken: label vault.version applies only to vault.type=kv (a task token)`,
		{"reusedtoken", "shop_web"}: `secret shop_reusedtoken: label vault.reuse=true cannot apply to a task token: each task needs its own value`,
		{"unused", ""}:              `secret shop_unused: label vault.format="xml" is not a format: use raw, json, env or template (Vault path secret/app/db)`,
		{"nowhere", "shop_worker"}:  `service shop_worker uses secret nowhere, which no secrets: entry of the compose files defines: docker stack deploy refuses it`,
	}
	for key, sentence := range want {
		r := find(t, rows, key[0], key[1])
		if r.Status != StatusProblem || r.Problem != sentence {
			t.Errorf("%s/%s:\n got %s: %s\nwant problem: %s", key[0], key[1], r.Status, r.Problem, sentence)
		}
	}
	// The same sentence as the plugin's parser gives, for a label it is
	// the plugin's parser that decides.
	_, err := provider.ParsePlan(map[string]string{"vault.path": "secret/app/db", "vault.feild": "password"})
	if got := find(t, rows, "typo", "shop_web").Problem; got != provider.Message("shop_typo", err) {
		t.Errorf("check says %q, the plugin %q", got, provider.Message("shop_typo", err))
	}
	if r := find(t, rows, "nowhere", "shop_worker"); r.File != "testdata/mistakes.yml" {
		t.Errorf("the undefined secret's row names file %q, want the service's", r.File)
	}
	for _, service := range []string{"shop_web", "shop_worker"} {
		if r := find(t, rows, "fine", service); r.Status != StatusOK {
			t.Errorf("fine/%s: %+v", service, r)
		}
	}
	for _, r := range rows {
		if r.Secret == "plain" {
			t.Errorf("a secret without the driver was checked: %+v", r)
		}
	}
}

// Several files merge as docker stack deploy -c a -c b merges them, and
// ${VAR:-default} takes the environment.
func TestMergedFilesAndInterpolation(t *testing.T) {
	clearPluginEnv(t)
	t.Setenv("DB_PATH", "secret/from-env/db")
	code, rows, stderr := runCheck(t, "--stack", "pay", "--policy-template", `{{serviceLabel "team"}},{{.ServiceName}}`,
		"testdata/base.yml", "testdata/override.yml")
	if code != ExitOK {
		t.Fatalf("exit %d: %+v %s", code, rows, stderr)
	}
	db := find(t, rows, "db", "pay_api")
	if db.Name != "shared_db" || db.Path != "secret/from-env/db" || db.File != "testdata/override.yml" || strings.Join(db.Policies, ",") != "pay_api,payments" {
		t.Errorf("db: %+v", db)
	}
	if tok := find(t, rows, "token", "pay_api"); tok.Type != "token" || tok.Status != StatusOK || tok.File != "testdata/override.yml" {
		t.Errorf("token: %+v", tok)
	}

	// Another driver name: the files' secrets are not this plugin's,
	// though their labels are.
	t.Setenv("DRIVER", "other")
	code, rows, _ = runCheck(t, "--stack", "pay", "testdata/base.yml")
	if r := find(t, rows, "db", "pay_api"); code != ExitProblem || len(rows) != 1 || r.Problem != "secret pay_db has vault.* labels but driver other, not vault: set driver: vault (or --driver other if the plugin is installed under that name)" {
		t.Errorf("driver other, checked as vault: exit %d, %+v", code, rows)
	}
	code, rows, _ = runCheck(t, "--stack", "pay", "--driver", "other", "testdata/base.yml")
	if code != ExitOK || len(rows) != 1 {
		t.Errorf("--driver other: exit %d, %+v", code, rows)
	}
}

// Settings: a flag, else the environment variable, else the plugin's
// default.
func TestSettingsPrecedence(t *testing.T) {
	clearPluginEnv(t)
	t.Setenv("ALLOWED_TYPES", "kv")
	code, rows, _ := runCheck(t, "--stack", "pay", "testdata/base.yml", "testdata/override.yml")
	tok := find(t, rows, "token", "pay_api")
	if code != ExitProblem || tok.Problem != "secret pay_token: vault.type=token is not served by this plugin (ALLOWED_TYPES=kv): use one of those types, or ask the operator to allow it" {
		t.Errorf("ALLOWED_TYPES from the environment: exit %d, %+v", code, tok)
	}
	code, _, _ = runCheck(t, "--stack", "pay", "--allowed-types", "kv,token", "testdata/base.yml", "testdata/override.yml")
	if code != ExitOK {
		t.Errorf("--allowed-types should win over ALLOWED_TYPES: exit %d", code)
	}

	t.Setenv("POLICY_TEMPLATE", `{{serviceLabel "owner"}}`)
	code, rows, _ = runCheck(t, "--stack", "pay", "testdata/base.yml")
	if db := find(t, rows, "db", "pay_api"); code != ExitProblem || !strings.Contains(db.Problem, "service pay_api has no label owner") {
		t.Errorf("POLICY_TEMPLATE from the environment: exit %d, %+v", code, db)
	}
	code, rows, _ = runCheck(t, "--stack", "pay", "--policy-template", "{{.ServiceName}}-ro", "testdata/base.yml")
	if db := find(t, rows, "db", "pay_api"); code != ExitOK || strings.Join(db.Policies, ",") != "pay_api-ro" {
		t.Errorf("--policy-template should win: exit %d, %+v", code, db)
	}

	s, err := parseFlags([]string{"f.yml"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil || s.opts.TokenTTL != provider.DefaultTokenTTL || s.opts.TokenMaxTTL != provider.DefaultTokenMaxTTL || s.opts.Timeout != provider.DefaultTimeout || s.driver != "vault" {
		t.Errorf("defaults: %+v, %v", s.opts, err)
	}
	env := map[string]string{"TOKEN_TTL": "30m", "TOKEN_MAX_TTL": "2h"}
	s, err = parseFlags([]string{"-token-ttl", "45m", "f.yml"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil || s.opts.TokenTTL.String() != "45m0s" || s.opts.TokenMaxTTL.String() != "2h0m0s" {
		t.Errorf("TOKEN_TTL flag over env: %+v, %v", s.opts, err)
	}
}

// A template that depends on an ID Swarm makes at deploy gives policies
// nobody can know before: such a row is unchecked, and so is the exit.
func TestPolicyTemplateWithIDs(t *testing.T) {
	clearPluginEnv(t)
	code, rows, _ := runCheck(t, "--stack", "pay", "--policy-template", "task-{{.TaskID}}", "testdata/base.yml")
	if db := find(t, rows, "db", "pay_api"); code != ExitUnchecked || db.Status != StatusUnchecked || db.Reason != idsUnknown || db.Problem != idsUnknown || len(db.Problems) != 0 {
		t.Errorf("exit %d, %+v", code, db)
	}
}

func TestCouldNotCheck(t *testing.T) {
	clearPluginEnv(t)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no file":          {nil, "no compose file given"},
		"missing file":     {[]string{"testdata/nope.yml"}, "cannot read compose file"},
		"not YAML":         {[]string{"testdata/broken.yml"}, "is not YAML docker stack deploy reads"},
		"vault, no stack":  {[]string{"--vault", "testdata/base.yml"}, "--vault needs --stack"},
		"bad format":       {[]string{"--format", "xml", "testdata/base.yml"}, "--format xml is not a format: use table or json"},
		"bad template":     {[]string{"--policy-template", "{{", "testdata/base.yml"}, "POLICY_TEMPLATE does not parse"},
		"bad duration":     {[]string{"--token-ttl", "soon", "testdata/base.yml"}, "TOKEN_TTL=soon is not a duration"},
		"unknown flag":     {[]string{"--vualt", "testdata/base.yml"}, "swarmvault check: --vualt is not a flag: did you mean --vault? (see --help)\n"},
		"vault, no server": {[]string{"--vault", "--stack", "s", "testdata/base.yml"}, "VAULT_ADDR is not set"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("VAULT_ADDR", "")
			var out, errOut bytes.Buffer
			code := Main(c.args, strings.NewReader(""), &out, &errOut)
			if code != ExitError || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), ExitError, c.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"--help"}, strings.NewReader(""), &out, &errOut); code != ExitOK || !strings.Contains(errOut.String(), "swarmvault check --stack myapp docker-compose.yml") {
		t.Errorf("--help: exit %d, %q", code, errOut.String())
	}
}

func TestStdinAndTable(t *testing.T) {
	clearPluginEnv(t)
	var out, errOut bytes.Buffer
	file := "version: \"3.8\"\nservices:\n  a:\n    image: busybox\n    secrets: [s]\nsecrets:\n  s:\n    driver: vault\n    labels:\n      vault.path: secret/x\n      vault.format: xml\n"
	code := Main([]string{"--stack", "st", "-"}, strings.NewReader(file), &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != ExitProblem || len(lines) != 4 || !strings.HasPrefix(lines[0], "settings: ") || !strings.HasPrefix(lines[1], "FILE") ||
		!strings.Contains(lines[2], "st_a") || !strings.Contains(lines[2], `problem: secret st_s: label vault.format="xml" is not a format`) ||
		lines[3] != "0 ok, 1 problems, 0 unchecked, 0 skipped" {
		t.Errorf("exit %d, table:\n%s\nstderr: %s", code, out.String(), errOut.String())
	}
}

// fakeVerifier answers Verify with one error for every request.
type fakeVerifier struct {
	err  error
	seen []provider.Request
}

func (f *fakeVerifier) Verify(_ context.Context, req provider.Request) (provider.Plan, []string, error) {
	f.seen = append(f.seen, req)
	plan, _ := provider.ParsePlan(req.SecretLabels)
	return plan, []string{req.ServiceName}, f.err
}

// vaultAnswering is a Provider whose Vault answers every call with status.
func vaultAnswering(t *testing.T, status int) *provider.Provider {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(`{"errors":["permission denied"]}`))
	}))
	t.Cleanup(srv.Close)
	return providerAt(t, srv.URL)
}

func providerAt(t *testing.T, addr string) *provider.Provider {
	t.Helper()
	return provider.New(vaulttest.Client(t, addr, "operator"), vaulttest.Discard(), provider.Options{})
}

// Only what Vault could not be asked is unchecked; its refusals are
// problems. Offline problems never reach Vault.
func TestVaultOutcomes(t *testing.T) {
	clearPluginEnv(t)
	st, err := loadStack([]string{"testdata/base.yml"}, nil, nil, "shop", "vault")
	if err != nil {
		t.Fatal(err)
	}
	opts := provider.Options{}
	opts.Policies, _ = provider.ParsePolicyTemplate("")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for name, c := range map[string]struct {
		v    verifier
		want string
		code int
	}{
		"served":      {&fakeVerifier{}, StatusOK, ExitOK},
		"unreachable": {providerAt(t, closed.URL), StatusUnchecked, ExitUnchecked},
		"denied":      {vaultAnswering(t, http.StatusForbidden), StatusProblem, ExitProblem},
		"refused":     {vaultAnswering(t, http.StatusBadRequest), StatusProblem, ExitProblem},
	} {
		rows := run(context.Background(), st, opts, c.v)
		r := find(t, rows, "db", "shop_api")
		if r.Status != c.want {
			t.Errorf("%s: row %+v, want %s", name, r, c.want)
		}
		if code := exitCode(rows); code != c.code {
			t.Errorf("%s: exit %d, want %d", name, code, c.code)
		}
	}

	st, err = loadStack([]string{"testdata/mistakes.yml"}, nil, nil, "shop", "vault")
	if err != nil {
		t.Fatal(err)
	}
	v := &fakeVerifier{}
	run(context.Background(), st, opts, v)
	// Only the secrets whose labels pass reach Vault: fine, for two
	// services.
	if len(v.seen) != 2 {
		t.Errorf("Vault asked %d times, want 2", len(v.seen))
	}
	for _, req := range v.seen {
		if req.SecretName != "shop_fine" || req.TaskName != req.ServiceName+".1" || req.ServiceLabels[stackLabel] != "shop" || req.SecretLabels[stackLabel] != "shop" {
			t.Errorf("request: %+v", req)
		}
	}
	if code := exitCode([]Row{{Status: StatusOK}, {Status: StatusUnchecked}, {Status: StatusSkipped}}); code != ExitUnchecked {
		t.Errorf("unchecked without problems: exit %d, want %d", code, ExitUnchecked)
	}
}

// A vault.wrap TTL above WRAP_MAX_TTL is found offline, with the plugin's
// sentence; the setting comes from the flag or the environment.
func TestWrapAboveWrapMaxTTL(t *testing.T) {
	clearPluginEnv(t)
	file := "version: \"3.8\"\nservices:\n  a:\n    image: busybox\n    secrets: [s]\nsecrets:\n  s:\n    driver: vault\n    labels:\n      vault.path: secret/x\n      vault.wrap: 2h\n"
	check := func(args ...string) (int, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := Main(append([]string{"--format", "json", "--stack", "st"}, append(args, "-")...), strings.NewReader(file), &out, &errOut)
		var r report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Results) != 1 {
			t.Fatalf("output %s, stderr %s", out.String(), errOut.String())
		}
		return code, r.Results[0].Problem
	}
	if code, problem := check(); code != ExitProblem || problem != "secret st_s: label vault.wrap=2h0m0s is longer than WRAP_MAX_TTL=1h0m0s: ask for at most 1h0m0s, or ask the operator to raise WRAP_MAX_TTL (Vault path secret/x)" {
		t.Errorf("default WRAP_MAX_TTL: exit %d, %q", code, problem)
	}
	if code, problem := check("--wrap-max-ttl", "3h"); code != ExitOK {
		t.Errorf("--wrap-max-ttl 3h: exit %d, %q", code, problem)
	}
	t.Setenv("WRAP_MAX_TTL", "90m")
	if code, problem := check(); code != ExitProblem || !strings.Contains(problem, "WRAP_MAX_TTL=1h30m0s") {
		t.Errorf("WRAP_MAX_TTL=90m: exit %d, %q", code, problem)
	}
}

// For each wrapped secret the check says which creation path the task
// should find when it looks its wrapping token up before unwrapping: the
// source's, or sys/wrapping/wrap for a field, format or template (the
// legacy plugin's path + field + wrap, served again).
func TestWrapCreationPaths(t *testing.T) {
	clearPluginEnv(t)
	file := filepath.Join(t.TempDir(), "stack.yml")
	compose := `version: "3.8"
services:
  a:
    image: busybox
    secrets: [kv, legacy, tok, db, plain]
secrets:
  kv: {driver: vault, labels: {vault.path: secret/app/db, vault.wrap: "true"}}
  legacy:
    driver: vault
    labels:
      dk.almbrand.docker.plugin.secretprovider.vault.path: secret/app/db
      dk.almbrand.docker.plugin.secretprovider.vault.field: password
      dk.almbrand.docker.plugin.secretprovider.vault.wrap: "true"
  tok: {driver: vault, labels: {vault.type: token, vault.wrap: 2m}}
  db: {driver: vault, labels: {vault.type: read, vault.path: database/creds/app, vault.wrap: "true"}}
  plain: {driver: vault, labels: {vault.path: secret/app/db, vault.field: password}}
`
	if err := os.WriteFile(file, []byte(compose), 0o600); err != nil {
		t.Fatal(err)
	}
	code, rows, stderr := runCheck(t, "--stack", "st", "--token-role", "tasks", file)
	if code != ExitOK {
		t.Fatalf("exit %d: %s %+v", code, stderr, rows)
	}
	for secret, want := range map[string]string{
		"kv":     "secret/data/app/db on a KV v2 mount secret/, secret/app/db on KV v1",
		"legacy": "sys/wrapping/wrap",
		"tok":    "auth/token/create/tasks",
		"db":     "database/creds/app",
		"plain":  "",
	} {
		if r := find(t, rows, secret, "st_a"); r.WrapPath != want {
			t.Errorf("%s: wrap creation path %q, want %q", secret, r.WrapPath, want)
		}
	}
	var out bytes.Buffer
	Main([]string{"--stack", "st", file}, strings.NewReader(""), &out, &bytes.Buffer{})
	if r := find(t, rows, "legacy", "st_a"); len(r.SharesWith) != 1 || r.SharesWith[0] != "plain" {
		t.Errorf("legacy shares a call with %v, want plain (the same path, read once)", r.SharesWith)
	}
	if !strings.Contains(out.String(), "ok (one Vault call with plain; a wrapping token made at sys/wrapping/wrap)") {
		t.Errorf("the table does not say where the legacy secret's wrapping token is made:\n%s", out.String())
	}
}

// A templated config's {{ secret "x" }} takes the target name of a secret
// attached to the same service: the seed's own example (a secret named
// vault_token, a template asking for "password") would fail its task, and
// the check says so before the deploy.
func TestTemplatedConfigsNameAttachedSecrets(t *testing.T) {
	clearPluginEnv(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("config.yml.tmpl", "vault_addr: https://vault.example.com:8200\nvault_token: {{ secret \"password\" }}\n")
	write("good.yml.tmpl", "token: {{ secret \"token\" }}\nother: {{- secret \"vault_token\" -}}\n")
	stack := write("stack.yml", `version: "3.8"
services:
  app:
    image: busybox
    configs:
      - source: config.yml
        target: /etc/app/config.yml
    secrets:
      - vault_token
  good:
    image: busybox
    configs: [good.yml]
    secrets:
      - source: vault_token
        target: token
      - vault_token
configs:
  config.yml:
    template_driver: golang
    file: config.yml.tmpl
  good.yml:
    template_driver: golang
    file: good.yml.tmpl
secrets:
  vault_token:
    name: vault_token
    driver: vault
    labels:
      dk.almbrand.docker.plugin.secretprovider.vault.type: "vault_token"
      dk.almbrand.docker.plugin.secretprovider.vault.wrap: "true"
`)
	code, rows, stderr := runCheck(t, "--stack", "st", stack)
	if code != ExitProblem {
		t.Fatalf("exit %d: %s %+v", code, stderr, rows)
	}
	var problems []Row
	for _, r := range rows {
		if r.Status == StatusProblem {
			problems = append(problems, r)
		}
	}
	want := `config config.yml embeds {{ secret "password" }}, but no secret of service st_app has the target password: {{ secret }} takes the target name of a secret attached to the same service (its secrets' targets: vault_token)`
	if len(problems) != 1 || problems[0].Service != "st_app" || problems[0].Problem != want {
		t.Errorf("problems %+v\nwant one: %s", problems, want)
	}
}
