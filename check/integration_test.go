//go:build integration

// swarmvault check --vault against a real Vault (make test-integration starts
// the dev server): VAULT_ADDR, and a root token in VAULT_TOKEN_FILE. The
// check runs with a token that has the plugin's rights only, as the README
// tells operators to give it.

package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaulttest"
)

// stackFile is a stack with one service per mistake the check must find
// in Vault, and the same kinds of secret served well.
const stackFile = `version: "3.8"
services:
  web:
    image: busybox
    secrets: [pw, whole, wrapped, tok, rd, nofield, missing, denied, pinned, wr]
  norole:
    image: busybox
    secrets: [tok]
secrets:
  pw:       {driver: vault, labels: {vault.path: "${KV2}/app/db", vault.field: password}}
  whole:    {driver: vault, labels: {vault.path: "${KV1}/app/cfg", vault.format: env}}
  wrapped:  {driver: vault, labels: {vault.path: "${KV2}/app/db", vault.wrap: "true"}}
  tok:      {driver: vault, labels: {vault.type: token, vault.token.ttl: 10m}}
  rd:       {driver: vault, labels: {vault.type: read, vault.path: "${KV2}/data/app/db"}}
  nofield:  {driver: vault, labels: {vault.path: "${KV2}/app/db", vault.field: pasword}}
  missing:  {driver: vault, labels: {vault.path: "${KV2}/app/nope"}}
  denied:   {driver: vault, labels: {vault.path: "${KV2}/other/db"}}
  pinned:   {driver: vault, labels: {vault.path: "${KV1}/app/cfg", vault.version: "2"}}
  wr:       {driver: vault, labels: {vault.type: write, vault.path: "${KV2}/data/app/new", vault.param.x: "y"}}
`

func TestCheckAgainstVault(t *testing.T) {
	clearPluginEnv(t)
	root := vaulttest.RootClient(t)
	ctx := context.Background()
	run := fmt.Sprintf("ck%x", time.Now().UnixNano())
	kv1, kv2, role, stack := run+"-kv1", run+"-kv2", run+"-role", run
	for mount, version := range map[string]string{kv1: "1", kv2: "2"} {
		if err := root.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Sys().Unmount(mount) })
	}
	password := "pw-" + run
	if _, err := root.KVv2(kv2).Put(ctx, "app/db", map[string]any{"password": password, "username": "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2(kv2).Put(ctx, "other/db", map[string]any{"password": "other-" + run}); err != nil {
		t.Fatal(err)
	}
	if err := root.KVv1(kv1).Put(ctx, "app/cfg", map[string]any{"key": "k-" + run}); err != nil {
		t.Fatal(err)
	}
	web := stack + "_web"
	rules := fmt.Sprintf("path %q { capabilities = [\"read\"] }\npath %q { capabilities = [\"read\"] }\n", kv2+"/data/app/*", kv1+"/app/*")
	for name, r := range map[string]string{web: rules, stack + "_norole": rules,
		run + "-plugin": fmt.Sprintf("path %q { capabilities = [\"update\"] }\n", "auth/token/create/"+role)} {
		if err := root.Sys().PutPolicy(name, r); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Sys().DeletePolicy(name) })
	}
	// The role gives web's policy, not norole's.
	if _, err := root.Logical().Write("auth/token/roles/"+role, map[string]any{
		"allowed_policies": []string{web}, "orphan": true, "token_type": "default-service",
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Logical().Delete("auth/token/roles/" + role) })
	// The operator runs the check with the plugin's rights, no more.
	operator, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{run + "-plugin"}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Auth().Token().RevokeOrphan(operator.Auth.ClientToken) })
	dir := t.TempDir()
	file := filepath.Join(dir, "stack.yml")
	if err := os.WriteFile(file, []byte(stackFile), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KV1", kv1)
	t.Setenv("KV2", kv2)
	t.Setenv("VAULT_TOKEN", operator.Auth.ClientToken)

	before := accessors(t, root)
	var out, errOut bytes.Buffer
	code := Main([]string{"--vault", "--stack", stack, "--token-role", role, "--format", "json", file}, strings.NewReader(""), &out, &errOut)
	if code != ExitProblem {
		t.Errorf("exit %d, want %d; stderr: %s", code, ExitProblem, errOut.String())
	}
	for _, leak := range []string{password, "k-" + run, "other-" + run, operator.Auth.ClientToken} {
		if strings.Contains(out.String()+errOut.String(), leak) {
			t.Errorf("the output holds a value or token read from Vault")
		}
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	ok := []string{"pw", "whole", "wrapped", "tok", "rd"}
	for _, s := range ok {
		if row := find(t, r.Results, s, web); row.Status != StatusOK {
			t.Errorf("%s: %+v", s, row)
		}
	}
	problems := map[[2]string]string{
		{"nofield", web}:           "secret " + stack + "_nofield: label vault.field=\"pasword\" names no field of Vault path " + kv2 + "/app/db (its fields: password, username)",
		{"missing", web}:           "secret " + stack + "_missing: no secret at Vault path " + kv2 + "/app/nope: check label vault.path",
		{"denied", web}:            "secret " + stack + "_denied: permission denied to read Vault path " + kv2 + "/other/db: the token's policies must grant read on " + kv2 + "/data/other/db",
		{"pinned", web}:            "secret " + stack + "_pinned: label vault.version=2 cannot apply to Vault path " + kv1 + "/app/cfg: mount " + kv1 + "/ is KV v1, which keeps no versions",
		{"wr", web}:                "secret " + stack + "_wr: policies " + web + " of service " + web + " do not grant create or update on Vault path " + kv2 + "/data/app/new (vault.type=write; the token may: read): add it to a policy POLICY_TEMPLATE gives the service",
		{"tok", stack + "_norole"}: "secret " + stack + "_tok: Vault refused a token with policies " + stack + "_norole for service " + stack + "_norole",
	}
	for key, want := range problems {
		row := find(t, r.Results, key[0], key[1])
		if row.Status != StatusProblem || !strings.HasPrefix(row.Problem, want) {
			t.Errorf("%s/%s:\n got %s: %s\nwant problem: %s", key[0], key[1], row.Status, row.Problem, want)
		}
	}
	if len(r.Results) != len(ok)+len(problems) {
		t.Errorf("%d rows, want %d", len(r.Results), len(ok)+len(problems))
	}
	// Every service token the check minted (token, read, write) is gone.
	// Other packages' tests may mint at the same time: only tokens whose
	// metadata names this stack's services count.
	for _, a := range accessors(t, root) {
		if slices.Contains(before, a) {
			continue
		}
		s, err := root.Auth().Token().LookupAccessor(a)
		if err != nil {
			continue // revoked or expired since the listing
		}
		if meta, _ := s.Data["meta"].(map[string]any); meta != nil && strings.HasPrefix(fmt.Sprint(meta["service"]), stack+"_") {
			t.Errorf("a token the check minted for %s is still alive", meta["service"])
		}
	}

	// A token that may not mint as the plugin does: the check cannot run.
	weak, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{web}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Auth().Token().RevokeOrphan(weak.Auth.ClientToken) })
	t.Setenv("VAULT_TOKEN", weak.Auth.ClientToken)
	out.Reset()
	errOut.Reset()
	code = Main([]string{"--vault", "--stack", stack, "--token-role", role, file}, strings.NewReader(""), &out, &errOut)
	if want := "the token may not create tokens on auth/token/create/" + role; code != ExitError || !strings.Contains(errOut.String(), want) {
		t.Errorf("weak token: exit %d, stderr %q; want %d and %q", code, errOut.String(), ExitError, want)
	}
}

func accessors(t *testing.T, root *api.Client) []string {
	t.Helper()
	s, err := root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if s != nil {
		for _, k := range s.Data["keys"].([]any) {
			out = append(out, k.(string))
		}
	}
	slices.Sort(out)
	return out
}
