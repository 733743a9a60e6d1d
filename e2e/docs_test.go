//go:build e2e && cluster

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The documents' runnable blocks: a fenced block right after a
// <!-- docs-e2e: KIND --> comment, run as written (docs/development.md,
// "Docs that run", says where each kind runs).
type docBlock struct {
	file, kind, text string
	line             int
}

var docMarker = regexp.MustCompile(`^\s*<!-- docs-e2e: (.+) -->\s*$`)

// docBlocks returns file's marked blocks in order, each with the
// indentation of its fence taken off (a block in a list item is indented).
func docBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var out []docBlock
	for i := 0; i < len(lines); i++ {
		m := docMarker.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```sh" {
			t.Fatalf("%s:%d: a docs-e2e marker must be followed by a ```sh block", file, i+1)
		}
		indent := lines[i+1][:strings.Index(lines[i+1], "```")]
		var text []string
		j := i + 2
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			text = append(text, strings.TrimPrefix(lines[j], indent))
		}
		if j == len(lines) {
			t.Fatalf("%s:%d: the block does not end", file, i+2)
		}
		out = append(out, docBlock{file: file, kind: m[1], text: strings.Join(text, "\n") + "\n", line: i + 2})
		i = j
	}
	if len(out) == 0 {
		t.Fatalf("%s has no docs-e2e blocks", file)
	}
	return out
}

// docValues reads a values block: NAME=value lines (export or not), each
// with a comment; it returns the names in order.
func docValues(t *testing.T, b docBlock) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(b.text), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: %q in a values block is not NAME=value", b.file, b.line, line)
		}
		names = append(names, name)
	}
	return names
}

// docRunner runs blocks with the bed's environment.
type docRunner struct {
	t        *testing.T
	bin      string         // the vault stand-in and sudo
	env      []string       // the values and the operator's Vault token
	etc      map[int]string // each manager's /etc/swarmvault
	replaced map[string]bool
}

// bedWords are what the bed's managers, sharing one host, cannot take as
// written; each must occur in the blocks run.
func (r *docRunner) substitute(text string, node int) string {
	for _, s := range []struct{ from, to string }{
		{"/etc/swarmvault", r.etc[node]},
		{"/var/run/docker.sock", fmt.Sprintf("/run/svn%d/docker.sock", node)},
		{"image: busybox\n", "image: " + testImage + "\n"},
	} {
		if strings.Contains(text, s.from) {
			if s.to == "" {
				r.t.Fatalf("a block run on no manager names %s", s.from)
			}
			text = strings.ReplaceAll(text, s.from, s.to)
			r.replaced[s.from] = true
		}
	}
	return text
}

// run runs one block: on the host (node 0: the host's engine; else the
// engine of node via) or, inside its network namespace, on manager node.
func (r *docRunner) run(b docBlock, node int, inNamespace bool) string {
	r.t.Helper()
	script := "set -euo pipefail\n" + r.substitute(b.text, node)
	var cmd *exec.Cmd
	if inNamespace {
		cmd = exec.Command("nsenter", "--net=/var/run/netns/svn"+fmt.Sprint(node), "bash", "-c", script)
	} else {
		cmd = exec.Command("bash", "-c", script)
	}
	cmd.Dir = ".."
	cmd.Env = append(append(os.Environ(), r.env...), "PATH="+r.bin+":"+os.Getenv("PATH"))
	if node != 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("DOCKER_HOST=unix:///run/svn%d/docker.sock", node))
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("%s:%d (%s, node %d): %v\n--- block\n%s--- stdout\n%s--- stderr\n%s", b.file, b.line, b.kind, node, err, b.text, out.String(), errb.String())
	}
	r.t.Logf("%s:%d (%s, node %d) ran in %s", b.file, b.line, b.kind, node, time.Since(start).Round(time.Millisecond))
	return out.String()
}

// testDocsRun follows the README's install checklist, the AppRole steps of
// docs/vault-setup.md and the uninstall of docs/install.md, block by block
// as written, on every manager of the bed: from no plugin to a delivered
// secret, to another login, to nothing left.
func testDocsRun(t *testing.T, all []int, f *fixture) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "vault"), "./vaultcli").CombinedOutput(); err != nil {
		t.Fatalf("building the vault stand-in: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\nexec \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rootToken, err := os.ReadFile(os.Getenv("VAULT_TOKEN_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := f.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(strings.TrimSpace(string(rootToken)))
	// The operator runs the docs' vault commands with a token of an
	// operator's rights, not root: no sudo but where Vault asks for it
	// (enabling an auth method), so that a step that needs more fails here.
	operator := "docs-operator-" + run
	if err := root.Sys().PutPolicy(operator, operatorRules); err != nil {
		t.Fatal(err)
	}
	op, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{operator}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	f.issue(op.Auth.ClientToken)
	tag := run + "-docs"
	r := &docRunner{t: t, bin: bin, etc: map[int]string{}, replaced: map[string]bool{}, env: []string{
		"VAULT_TOKEN=" + op.Auth.ClientToken, "VAULT_ADDR=http://127.0.0.1:8200",
		"REGISTRY=" + registry, "TAG=" + tag,
	}}
	for _, i := range all {
		r.etc[i] = filepath.Join(tmp, fmt.Sprintf("etc-swarmvault-%d", i))
	}
	// Whatever a failed run leaves, in Vault and on the managers.
	t.Cleanup(func() {
		for _, i := range all {
			tryOn(i, "plugin", "rm", "-f", clusterAlias)
		}
		tryOn(all[0], "stack", "rm", "myapp")
		root.Logical().Delete("auth/token/roles/swarmvault")
		root.Logical().Delete("auth/token/roles/swarmvault-plugin")
		root.Auth().Token().RevokeTree(op.Auth.ClientToken)
		for _, p := range []string{"swarmvault-plugin", "svc-myapp_app", operator} {
			root.Sys().DeletePolicy(p)
		}
		root.Sys().DisableAuth("approle")
		root.KVv2("secret").DeleteMetadata(t.Context(), "myapp/db")
		os.Remove(filepath.Join("..", "myapp.yml")) // the README's step 6 writes it where it runs
	})
	// The bed's own install goes: the checklist starts from no plugin.
	for _, i := range all {
		on(t, i, "plugin", "rm", "-f", clusterAlias)
	}

	readme := docBlocks(t, "README.md")
	kinds := make([]string, len(readme))
	for k, b := range readme {
		kinds[k] = b.kind
	}
	if want := "values build-machine once every-manager every-manager once where myapp_app runs"; strings.Join(kinds, " ") != want {
		t.Fatalf("the README's checklist has the blocks %q, not %q: update this test with it", kinds, want)
	}
	if names := docValues(t, readme[0]); strings.Join(names, " ") != "VAULT_ADDR REGISTRY TAG" {
		t.Fatalf("the README's values are %v: give the test a value for each", names)
	}

	// 2. Publish.
	out := r.run(readme[1], 0, false)
	digest, err := os.ReadFile(filepath.Join("..", "bin", "push-amd64.digest"))
	if err != nil {
		t.Fatal(err)
	}
	wantRootfs := rootfsOf(t, strings.TrimSpace(string(digest)))
	if !strings.Contains(out, wantRootfs) {
		t.Errorf("make push did not print the rootfs %s a manager must show:\n%s", wantRootfs, out)
	}
	// 3. Vault setup, once.
	via := leader(t)
	r.run(readme[2], via, false)
	// 4. Install, and 5. verify, on every manager.
	marks := map[int]int64{}
	for _, i := range all {
		marks[i] = nodeLogSize(t, i)
		r.run(readme[3], i, true)
	}
	for _, i := range all {
		waitReady(t, i)
		out := r.run(readme[4], i, true)
		for _, want := range []string{clusterAlias + ":latest", wantRootfs, "ready"} {
			if !strings.Contains(out, want) {
				t.Errorf("node %d: the README's verify step printed no %q:\n%s", i, want, out)
			}
		}
		if !nodeLogHas(t, i, marks[i], "swarmvault serving") {
			t.Errorf("node %d: no \"swarmvault serving\" in the dockerd log, as the README says", i)
		}
		tok, err := os.ReadFile(filepath.Join(r.etc[i], "token"))
		if err != nil {
			t.Fatal(err)
		}
		f.issue(strings.TrimSpace(string(tok)))
	}
	// 6. A first secret, checked and deployed; read where its task runs.
	password := regexp.MustCompile(`vault kv put \S+ password=(\S+)`).FindStringSubmatch(readme[5].text)
	if password == nil {
		t.Fatal("the README's first secret writes no password= with vault kv put")
	}
	f.issue(password[1])
	r.run(readme[5], via, false)
	delivered := func(what string) {
		t.Helper()
		tasks := waitTasks(t, via, "myapp_app", 1)
		if got := strings.TrimSpace(r.run(readme[6], tasks[0].nodeIndex, true)); got != password[1] {
			t.Fatalf("%s: the task's /run/secrets/db_password holds %d bytes, not the password the README wrote", what, len(got))
		}
	}
	delivered("the README's checklist")

	// docs/vault-setup.md: the plugin logs in with AppRole and a wrapped
	// secret-id instead, on every manager; a new task is served so.
	setup := docBlocks(t, "docs/vault-setup.md")
	if len(setup) != 2 || setup[0].kind != "once" || setup[1].kind != "every-manager" {
		t.Fatalf("docs/vault-setup.md's AppRole blocks are %+v: update this test", setup)
	}
	r.run(setup[0], via, false)
	for _, i := range all {
		mark := nodeLogSize(t, i)
		r.run(setup[1], i, true)
		if b, err := os.ReadFile(filepath.Join(r.etc[i], "role-id")); err == nil {
			f.issue(strings.TrimSpace(string(b)))
		}
		waitReady(t, i)
		if !nodeLogHas(t, i, mark, "logged in to Vault") {
			t.Errorf("node %d: no AppRole login in the dockerd log", i)
		}
		if _, err := os.Stat(filepath.Join(r.etc[i], "secret-id")); !os.IsNotExist(err) {
			t.Errorf("node %d: the wrapped secret-id file is still there (VAULT_SECRET_ID_REMOVE=true): %v", i, err)
		}
	}
	// A restart (dockerd's, a reboot's) finds the secret-id file removed:
	// the plugin starts without a token, and the docs' step, run again,
	// gives it one.
	restarted := all[0]
	on(t, restarted, "plugin", "disable", "-f", clusterAlias)
	if _, err := tryOn(restarted, "plugin", "enable", clusterAlias); err != nil {
		t.Fatalf("node %d: the plugin does not start after a restart without its removed secret-id: %v", restarted, err)
	}
	r.run(setup[1], restarted, true)
	waitReady(t, restarted)
	before := waitTasks(t, via, "myapp_app", 1)[0].id
	on(t, via, "service", "update", "--detach", "--force", "myapp_app")
	deadline := time.Now().Add(90 * time.Second)
	for waitTasks(t, via, "myapp_app", 1)[0].id == before {
		if time.Now().After(deadline) {
			t.Fatal("myapp_app got no new task after docker service update --force")
		}
		time.Sleep(time.Second)
	}
	delivered("after the AppRole login")

	// docs/install.md: the uninstall, in its order.
	var tokens []string
	for _, i := range all {
		b, _ := os.ReadFile(filepath.Join(r.etc[i], "token"))
		tokens = append(tokens, strings.TrimSpace(string(b)))
	}
	uninstall := docBlocks(t, "docs/install.md")
	if len(uninstall) != 3 || uninstall[0].kind != "once" || uninstall[1].kind != "every-manager" || uninstall[2].kind != "once" {
		t.Fatalf("docs/install.md's uninstall blocks are %+v: update this test", uninstall)
	}
	r.run(uninstall[0], via, false)
	for _, i := range all {
		r.run(uninstall[1], i, true)
	}
	r.run(uninstall[2], via, false)
	for _, i := range all {
		if out, err := tryOn(i, "plugin", "inspect", clusterAlias); err == nil {
			t.Errorf("node %d: the plugin is still installed after the uninstall: %.200s", i, out)
		}
		if _, err := os.Stat(r.etc[i]); !os.IsNotExist(err) {
			t.Errorf("node %d: %s is still there", i, r.etc[i])
		}
	}
	for k, tok := range tokens {
		if s, err := root.Auth().Token().Lookup(tok); err == nil && s != nil {
			t.Errorf("manager %d's plugin token is still valid after the uninstall", all[k])
		}
	}
	for _, role := range []string{"swarmvault", "swarmvault-plugin"} {
		if s, _ := root.Logical().Read("auth/token/roles/" + role); s != nil {
			t.Errorf("the token role %s is still there after the uninstall", role)
		}
	}
	if p, _ := root.Sys().GetPolicy("swarmvault-plugin"); p != "" {
		t.Error("the policy swarmvault-plugin is still there after the uninstall")
	}
	if s, _ := root.Logical().List("secret/metadata/swarmvault/state"); s != nil {
		t.Errorf("STATE_PATH holds records after the uninstall: %v", s.Data["keys"])
	}
	for _, w := range []string{"/etc/swarmvault", "/var/run/docker.sock", "image: busybox\n"} {
		if !r.replaced[w] {
			t.Errorf("no block names %q: drop it from the test's substitutions", w)
		}
	}
}

// operatorRules are what an operator's token may do for the docs' steps:
// policies, token roles, the AppRole mount and its roles, the example's KV
// data, and what swarmvault check --vault needs; sudo only where Vault
// requires it (sys/auth).
const operatorRules = `
path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/token/roles/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/token/create/swarmvault-plugin" { capabilities = ["update"] }
path "auth/token/create/swarmvault" { capabilities = ["update"] }
path "sys/auth/*" { capabilities = ["create", "read", "update", "delete", "sudo"] }
path "auth/approle/role/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/data/myapp/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/myapp/*" { capabilities = ["read", "delete", "list"] }
`

// waitReady waits up to 30 s for node i's plugin to answer /readyz with 200,
// as an operator would before the verify step.
func waitReady(t *testing.T, i int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("nsenter", "--net=/var/run/netns/svn"+fmt.Sprint(i), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9650/readyz").Output()
		if err == nil && string(out) == fmt.Sprint(http.StatusOK) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: /readyz answered %q (%v) for 30 s", i, out, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
