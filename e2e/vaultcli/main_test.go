package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeVault is an httptest Vault that records every request and answers
// from a route table ("METHOD /v1/path" → reply); anything else is a 404.
type fakeVault struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	routes map[string]reply
}

type reply struct {
	status int
	body   string
}

type recorded struct {
	method, path, query, body string
	header                    http.Header
}

func newFakeVault(t *testing.T, routes map[string]reply) *fakeVault {
	t.Helper()
	fv := &fakeVault{routes: routes}
	fv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fv.mu.Lock()
		fv.reqs = append(fv.reqs, recorded{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, body: string(b), header: r.Header.Clone()})
		fv.mu.Unlock()
		rep, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			rep = reply{404, `{"errors":[]}`}
		}
		if rep.status == 0 {
			rep.status = 200
		}
		if rep.status == 204 {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(fv.srv.Close)
	return fv
}

func (fv *fakeVault) requests() []recorded {
	fv.mu.Lock()
	defer fv.mu.Unlock()
	return append([]recorded(nil), fv.reqs...)
}

// env gives the stand-in a clean environment pointing at the fake.
func env(t *testing.T, fv *fakeVault) {
	t.Helper()
	for _, k := range []string{
		"VAULT_NAMESPACE", "VAULT_FORMAT", "VAULT_WRAP_TTL", "VAULT_CACERT", "VAULT_CAPATH",
		"VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME",
		"VAULT_MAX_RETRIES", "VAULT_AGENT_ADDR", "VAULT_HTTP_PROXY", "VAULT_PROXY_ADDR",
		"VAULT_CLIENT_TIMEOUT", "VAULT_SRV_LOOKUP", "VAULT_RATE_LIMIT", "VAULT_MFA",
		"VAULT_DISABLE_REDIRECTS", "VAULT_CONFIG_PATH",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("VAULT_ADDR", fv.srv.URL)
	t.Setenv("VAULT_TOKEN", "root")
	t.Setenv("HOME", t.TempDir())
}

func runCLI(stdin string, tty bool, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, noColor: !tty}
	code = c.run(args)
	return out.String(), errb.String(), code
}

// wantReq is one expected request; body is JSON compared by value ("" skips
// the check), header values must match exactly.
type wantReq struct {
	method, path, query, body string
	header                    map[string]string
}

const (
	tokenAuth = `{"auth":{"client_token":"hvs.tok","accessor":"acc1","policies":["a","default"],` +
		`"token_policies":["a","default"],"lease_duration":86400,"renewable":true}}`
	wrapped = `{"wrap_info":{"token":"hvs.wrap","accessor":"wacc","ttl":300,` +
		`"creation_time":"2024-01-01T00:00:00Z","creation_path":"auth/approle/role/r/secret-id"}}`
	kvV2Mount = `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`
	kvV1Mount = `{"data":{"path":"kv1/","type":"kv","options":{"version":"1"}}}`
	hcl       = "path \"secret/data/myapp/*\" {\n  capabilities = [\"read\"]\n}\n"
)

func tokenCreateBody(extra map[string]any) string {
	body := map[string]any{
		"ttl": "0s", "explicit_max_ttl": "0s", "period": "0s", "display_name": "",
		"num_uses": 0, "renewable": true, "type": "service", "entity_alias": "",
	}
	for k, v := range extra {
		if v == nil {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	b, _ := json.Marshal(body)
	return string(b)
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(policyFile, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	valueFile := filepath.Join(dir, "v.txt")
	if err := os.WriteFile(valueFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		stdin      string
		tty        bool
		env        map[string]string
		homeToken  string
		routes     map[string]reply
		want       []wantReq
		wantStdout string
		wantStderr string // exact, unless wantErrSub
		wantErrSub bool
		wantCode   int
	}{
		{
			name:       "policy write from stdin sends the HCL verbatim",
			args:       []string{"policy", "write", "svc-myapp", "-"},
			stdin:      hcl,
			routes:     map[string]reply{"PUT /v1/sys/policies/acl/svc-myapp": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/sys/policies/acl/svc-myapp", body: mustJSON(map[string]string{"policy": hcl})}},
			wantStdout: "Success! Uploaded policy: svc-myapp\n",
		},
		{
			name:       "policy write from a file, name lowercased with a warning",
			args:       []string{"policy", "write", "Svc-A", policyFile},
			routes:     map[string]reply{"PUT /v1/sys/policies/acl/svc-a": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/sys/policies/acl/svc-a", body: mustJSON(map[string]string{"policy": hcl})}},
			wantStdout: "Success! Uploaded policy: svc-a\n",
			wantStderr: "Policy name was converted from \"Svc-A\" to \"svc-a\"\n",
		},
		{
			name:       "policy delete",
			args:       []string{"policy", "delete", "svc-a"},
			routes:     map[string]reply{"DELETE /v1/sys/policies/acl/svc-a": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/policies/acl/svc-a"}},
			wantStdout: "Success! Deleted policy: svc-a\n",
		},
		{
			name:   "token create -field=token prints the token and nothing else",
			args:   []string{"token", "create", "-policy=swarmvault-plugin", "-period=24h", "-field=token"},
			routes: map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want: []wantReq{{method: "POST", path: "/v1/auth/token/create",
				body:   tokenCreateBody(map[string]any{"policies": []string{"swarmvault-plugin"}, "period": "24h0m0s"}),
				header: map[string]string{"X-Vault-Token": "root"}}},
			wantStdout: "hvs.tok",
		},
		{
			name:       "token create -field on a terminal ends with a newline",
			args:       []string{"token", "create", "--policy", "a", "--field=token"},
			tty:        true,
			routes:     map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create", body: tokenCreateBody(map[string]any{"policies": []string{"a"}})}},
			wantStdout: "hvs.tok\n",
		},
		{
			name:       "token create -field=token_accessor",
			args:       []string{"token", "create", "-field=token_accessor"},
			routes:     map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create", body: tokenCreateBody(nil)}},
			wantStdout: "acc1",
		},
		{
			name:       "token create -field=accessor is not a field, as in the real CLI",
			args:       []string{"token", "create", "-field=accessor"},
			routes:     map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create"}},
			wantStderr: "Field \"accessor\" not present in secret\n",
			wantCode:   1,
		},
		{
			name: "token create with every flag; -orphan is no_parent, two policies, metadata",
			args: []string{"token", "create", "-policy=a", "-policy=b", "-ttl=1h", "-explicit-max-ttl=48h",
				"-orphan", "-display-name=ci", "-renewable=false", "-no-default-policy",
				"-metadata=owner=ops", "-metadata=env=test", "-use-limit=3", "-field=token"},
			routes: map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want: []wantReq{{method: "POST", path: "/v1/auth/token/create", body: tokenCreateBody(map[string]any{
				"policies": []string{"a", "b"}, "ttl": "1h0m0s", "explicit_max_ttl": "48h0m0s", "no_parent": true,
				"display_name": "ci", "renewable": false, "no_default_policy": true,
				"meta": map[string]string{"owner": "ops", "env": "test"}, "num_uses": 3,
			})}},
			wantStdout: "hvs.tok",
		},
		{
			name:       "token create -role uses the role's endpoint",
			args:       []string{"token", "create", "-role=swarmvault", "-policy=svc-x", "-orphan", "-field=token"},
			routes:     map[string]reply{"POST /v1/auth/token/create/swarmvault": {200, tokenAuth}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create/swarmvault", body: tokenCreateBody(map[string]any{"policies": []string{"svc-x"}, "no_parent": true})}},
			wantStdout: "hvs.tok",
		},
		{
			name:   "token create table output",
			args:   []string{"token", "create", "-policy=a"},
			routes: map[string]reply{"POST /v1/auth/token/create": {200, tokenAuth}},
			want:   []wantReq{{method: "POST", path: "/v1/auth/token/create"}},
			wantStdout: "" +
				"Key                  Value\n" +
				"---                  -----\n" +
				"token                hvs.tok\n" +
				"token_accessor       acc1\n" +
				"token_duration       24h\n" +
				"token_renewable      true\n" +
				"token_policies       [\"a\" \"default\"]\n" +
				"identity_policies    []\n" +
				"policies             [\"a\" \"default\"]\n",
		},
		{
			name:       "token create -format=json prints the secret",
			args:       []string{"token", "create", "-format=json"},
			routes:     map[string]reply{"POST /v1/auth/token/create": {200, `{"request_id":"r1","auth":{"client_token":"hvs.tok"}}`}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create"}},
			wantStdout: "{\n  \"request_id\": \"r1\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": null,\n  \"warnings\": null,\n  \"auth\": {\n    \"client_token\": \"hvs.tok\",\n    \"accessor\": \"\",\n    \"policies\": null,\n    \"token_policies\": null,\n    \"identity_policies\": null,\n    \"metadata\": null,\n    \"orphan\": false,\n    \"entity_id\": \"\",\n    \"lease_duration\": 0,\n    \"renewable\": false,\n    \"mfa_requirement\": null\n  }\n}\n",
		},
		{
			name:       "write sends K=V params as strings",
			args:       []string{"write", "auth/token/roles/swarmvault", "allowed_policies_glob=svc-*", "disallowed_policies=swarmvault-plugin", "orphan=true", "token_period=24h"},
			routes:     map[string]reply{"PUT /v1/auth/token/roles/swarmvault": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/auth/token/roles/swarmvault", body: `{"allowed_policies_glob":"svc-*","disallowed_policies":"swarmvault-plugin","orphan":"true","token_period":"24h"}`}},
			wantStdout: "Success! Data written to: auth/token/roles/swarmvault\n",
		},
		{
			name:       "write: a repeated key is a list, @file and - read their content, a=b=c keeps b=c",
			args:       []string{"write", "/secret/x/", "p=a", "p=b", "f=@" + valueFile, "s=-", "e=x=y", `at=\@literal`},
			stdin:      "from-stdin",
			routes:     map[string]reply{"PUT /v1/secret/x": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/secret/x", body: `{"p":["a","b"],"f":"from-file\n","s":"from-stdin","e":"x=y","at":"@literal"}`}},
			wantStdout: "Success! Data written to: secret/x\n",
		},
		{
			name:       "write - reads a JSON object from stdin",
			args:       []string{"write", "secret/x", "-"},
			stdin:      `{"n": 3, "b": true}`,
			routes:     map[string]reply{"PUT /v1/secret/x": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/secret/x", body: `{"n":3,"b":true}`}},
			wantStdout: "Success! Data written to: secret/x\n",
		},
		{
			name:   "write -wrap-ttl -f sends X-Vault-Wrap-TTL and -field=wrapping_token prints it",
			args:   []string{"write", "-wrap-ttl=5m", "-field=wrapping_token", "-f", "auth/approle/role/r/secret-id"},
			routes: map[string]reply{"PUT /v1/auth/approle/role/r/secret-id": {200, wrapped}},
			want: []wantReq{{method: "PUT", path: "/v1/auth/approle/role/r/secret-id", body: "null",
				header: map[string]string{"X-Vault-Wrap-Ttl": "5m0s"}}},
			wantStdout: "hvs.wrap",
		},
		{
			name:   "write of a wrapped response, table",
			args:   []string{"write", "-wrap-ttl=300", "-force", "auth/approle/role/r/secret-id"},
			routes: map[string]reply{"PUT /v1/auth/approle/role/r/secret-id": {200, wrapped}},
			want:   []wantReq{{method: "PUT", path: "/v1/auth/approle/role/r/secret-id", header: map[string]string{"X-Vault-Wrap-Ttl": "5m0s"}}},
			wantStdout: "" +
				"Key                              Value\n" +
				"---                              -----\n" +
				"wrapping_token:                  hvs.wrap\n" +
				"wrapping_accessor:               wacc\n" +
				"wrapping_token_ttl:              5m\n" +
				"wrapping_token_creation_time:    2024-01-01 00:00:00 +0000 UTC\n" +
				"wrapping_token_creation_path:    auth/approle/role/r/secret-id\n",
		},
		{
			name:       "write -field looks in data",
			args:       []string{"write", "-field=secret_id", "-f", "auth/approle/role/r/secret-id"},
			routes:     map[string]reply{"PUT /v1/auth/approle/role/r/secret-id": {200, `{"data":{"secret_id":"sid","secret_id_accessor":"sacc","secret_id_ttl":0}}`}},
			want:       []wantReq{{method: "PUT", path: "/v1/auth/approle/role/r/secret-id"}},
			wantStdout: "sid",
		},
		{
			name:   "write with data in the response prints a table, durations humanised",
			args:   []string{"write", "sys/wrapping/lookup", "token=hvs.wrap"},
			routes: map[string]reply{"PUT /v1/sys/wrapping/lookup": {200, `{"data":{"creation_path":"sys/wrapping/wrap","creation_ttl":300,"creation_time":""}}`}},
			want:   []wantReq{{method: "PUT", path: "/v1/sys/wrapping/lookup", body: `{"token":"hvs.wrap"}`, header: map[string]string{"X-Vault-Wrap-Ttl": ""}}},
			wantStdout: "" +
				"Key              Value\n" +
				"---              -----\n" +
				"creation_path    sys/wrapping/wrap\n" +
				"creation_time    n/a\n" +
				"creation_ttl     5m\n",
		},
		{
			name:       "sys/wrapping/wrap is wrapped by default (5m), as by the api package",
			args:       []string{"write", "-field=wrapping_token", "sys/wrapping/wrap", "value=v"},
			routes:     map[string]reply{"PUT /v1/sys/wrapping/wrap": {200, wrapped}},
			want:       []wantReq{{method: "PUT", path: "/v1/sys/wrapping/wrap", body: `{"value":"v"}`, header: map[string]string{"X-Vault-Wrap-Ttl": "5m"}}},
			wantStdout: "hvs.wrap",
		},
		{
			name:       "write -format=json with no response body prints nothing",
			args:       []string{"write", "-format=json", "secret/x", "a=b"},
			routes:     map[string]reply{"PUT /v1/secret/x": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/secret/x"}},
			wantStdout: "",
		},
		{
			name:       "write without data needs -force",
			args:       []string{"write", "secret/x"},
			wantStderr: "Must supply data or use -force\n",
			wantCode:   1,
		},
		{
			name:       "write: a Vault error is printed like the real CLI, exit 2",
			args:       []string{"write", "secret/x", "a=b"},
			routes:     map[string]reply{"PUT /v1/secret/x": {403, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`}},
			want:       []wantReq{{method: "PUT", path: "/v1/secret/x"}},
			wantStderr: "Error writing data to secret/x: Error making API request.\n\nURL: PUT ",
			wantErrSub: true,
			wantCode:   2,
		},
		{
			name:       "read -field",
			args:       []string{"read", "-field=password", "database/creds/app"},
			routes:     map[string]reply{"GET /v1/database/creds/app": {200, `{"lease_id":"l1","lease_duration":3600,"data":{"username":"u","password":"pw"}}`}},
			want:       []wantReq{{method: "GET", path: "/v1/database/creds/app"}},
			wantStdout: "pw",
		},
		{
			name:   "read table with a lease",
			args:   []string{"read", "database/creds/app"},
			routes: map[string]reply{"GET /v1/database/creds/app": {200, `{"lease_id":"database/creds/app/l1","lease_duration":3600,"renewable":true,"data":{"username":"u","password":"pw"}}`}},
			want:   []wantReq{{method: "GET", path: "/v1/database/creds/app"}},
			wantStdout: "" +
				"Key                Value\n" +
				"---                -----\n" +
				"lease_id           database/creds/app/l1\n" +
				"lease_duration     1h\n" +
				"lease_renewable    true\n" +
				"password           pw\n" +
				"username           u\n",
		},
		{
			name:       "read -format=json, with query data",
			args:       []string{"read", "-format=json", "sys/x", "list=true"},
			routes:     map[string]reply{"GET /v1/sys/x": {200, `{"data":{"a":1}}`}},
			want:       []wantReq{{method: "GET", path: "/v1/sys/x", query: "list=true"}},
			wantStdout: "{\n  \"request_id\": \"\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"a\": 1\n  },\n  \"warnings\": null\n}\n",
		},
		{
			name:       "read of nothing",
			args:       []string{"read", "secret/none"},
			want:       []wantReq{{method: "GET", path: "/v1/secret/none"}},
			wantStderr: "No value found at secret/none\n",
			wantCode:   2,
		},
		{
			name:       "delete",
			args:       []string{"delete", "secret/x"},
			routes:     map[string]reply{"DELETE /v1/secret/x": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/secret/x"}},
			wantStdout: "Success! Data deleted (if it existed) at: secret/x\n",
		},
		{
			name:       "token revoke a token",
			args:       []string{"token", "revoke", "hvs.x"},
			routes:     map[string]reply{"PUT /v1/auth/token/revoke": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/auth/token/revoke", body: `{"token":"hvs.x"}`}},
			wantStdout: "Success! Revoked token (if it existed)\n",
		},
		{
			name:       "token revoke -accessor",
			args:       []string{"token", "revoke", "-accessor", "acc1"},
			routes:     map[string]reply{"POST /v1/auth/token/revoke-accessor": {204, ""}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/revoke-accessor", body: `{"accessor":"acc1"}`}},
			wantStdout: "Success! Revoked token (if it existed)\n",
		},
		{
			name:       "token revoke -self",
			args:       []string{"token", "revoke", "-self"},
			routes:     map[string]reply{"PUT /v1/auth/token/revoke-self": {204, ""}},
			want:       []wantReq{{method: "PUT", path: "/v1/auth/token/revoke-self"}},
			wantStdout: "Success! Revoked token (if it existed)\n",
		},
		{
			name:       "token revoke needs an argument",
			args:       []string{"token", "revoke"},
			wantStderr: "Not enough arguments (expected 1 or -self, got 0)\n",
			wantCode:   1,
		},
		{
			name:       "token lookup of the caller's token",
			args:       []string{"token", "lookup", "-format=json"},
			routes:     map[string]reply{"GET /v1/auth/token/lookup-self": {200, `{"data":{"policies":["root"]}}`}},
			want:       []wantReq{{method: "GET", path: "/v1/auth/token/lookup-self"}},
			wantStdout: "{\n  \"request_id\": \"\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"policies\": [\n      \"root\"\n    ]\n  },\n  \"warnings\": null\n}\n",
		},
		{
			name:   "token lookup -accessor",
			args:   []string{"token", "lookup", "-accessor", "acc1"},
			routes: map[string]reply{"POST /v1/auth/token/lookup-accessor": {200, `{"data":{"accessor":"acc1","display_name":"","period":86400}}`}},
			want:   []wantReq{{method: "POST", path: "/v1/auth/token/lookup-accessor", body: `{"accessor":"acc1"}`}},
			wantStdout: "" +
				"Key             Value\n" +
				"---             -----\n" +
				"accessor        acc1\n" +
				"display_name    n/a\n" +
				"period          24h\n",
		},
		{
			name:       "token lookup of a token",
			args:       []string{"token", "lookup", "hvs.x"},
			routes:     map[string]reply{"POST /v1/auth/token/lookup": {200, `{"data":{"id":"hvs.x"}}`}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/lookup", body: `{"token":"hvs.x"}`}},
			wantStdout: "Key    Value\n---    -----\nid     hvs.x\n",
		},
		{
			name:   "auth enable -path",
			args:   []string{"auth", "enable", "-path=ci", "approle"},
			routes: map[string]reply{"POST /v1/sys/auth/ci": {204, ""}},
			want: []wantReq{{method: "POST", path: "/v1/sys/auth/ci", body: `{"type":"approle","description":"","config":` +
				`{"options":null,"default_lease_ttl":"0s","max_lease_ttl":"0s","force_no_cache":false},"local":false,"seal_wrap":false,"external_entropy_access":false,"options":null}`}},
			wantStdout: "Success! Enabled approle auth method at: ci/\n",
		},
		{
			name:       "auth disable",
			args:       []string{"auth", "disable", "ci"},
			routes:     map[string]reply{"DELETE /v1/sys/auth/ci": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/auth/ci"}},
			wantStdout: "Success! Disabled the auth method (if it existed) at: ci/\n",
		},
		{
			name:   "secrets enable -path -version=2 kv",
			args:   []string{"secrets", "enable", "-path=secret", "-version=2", "kv"},
			routes: map[string]reply{"POST /v1/sys/mounts/secret": {204, ""}},
			want: []wantReq{{method: "POST", path: "/v1/sys/mounts/secret", body: `{"type":"kv","description":"","config":` +
				`{"options":null,"default_lease_ttl":"0s","max_lease_ttl":"0s","force_no_cache":false},"local":false,"seal_wrap":false,` +
				`"external_entropy_access":false,"options":{"version":"2"}}`}},
			wantStdout: "Success! Enabled the kv secrets engine at: secret/\n",
		},
		{
			name:       "secrets enable kv-v2 sends the type as is",
			args:       []string{"secrets", "enable", "kv-v2"},
			routes:     map[string]reply{"POST /v1/sys/mounts/kv-v2": {204, ""}},
			want:       []wantReq{{method: "POST", path: "/v1/sys/mounts/kv-v2"}},
			wantStdout: "Success! Enabled the kv-v2 secrets engine at: kv-v2/\n",
		},
		{
			name:       "secrets disable",
			args:       []string{"secrets", "disable", "secret/"},
			routes:     map[string]reply{"DELETE /v1/sys/mounts/secret": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/mounts/secret"}},
			wantStdout: "Success! Disabled the secrets engine (if it existed) at: secret/\n",
		},
		{
			name:       "secrets tune -max-lease-ttl",
			args:       []string{"secrets", "tune", "-max-lease-ttl=720h", "pki"},
			routes:     map[string]reply{"POST /v1/sys/mounts/pki/tune": {204, ""}},
			want:       []wantReq{{method: "POST", path: "/v1/sys/mounts/pki/tune", body: `{"options":null,"default_lease_ttl":"","max_lease_ttl":"720h0m0s","force_no_cache":false}`}},
			wantStdout: "Success! Tuned the secrets engine at: pki/\n",
		},
		{
			name: "kv put on a v2 mount writes data/ with {data, options}",
			args: []string{"kv", "put", "secret/myapp/db", "password=s3cret", "user=app"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret/myapp/db": {200, kvV2Mount},
				"PUT /v1/secret/data/myapp/db":                   {200, `{"data":{"created_time":"2024-01-01T00:00:00Z","deletion_time":"","destroyed":false,"version":1}}`},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret/myapp/db"},
				{method: "PUT", path: "/v1/secret/data/myapp/db", body: `{"data":{"password":"s3cret","user":"app"},"options":{}}`},
			},
			wantStdout: "" +
				"==== Secret Path ====\n" +
				"secret/data/myapp/db\n" +
				"\n" +
				"====== Metadata ======\n" +
				"Key              Value\n" +
				"---              -----\n" +
				"created_time     2024-01-01T00:00:00Z\n" +
				"deletion_time    n/a\n" +
				"destroyed        false\n" +
				"version          1\n",
		},
		{
			name: "kv put -mount on a v2 mount, -cas",
			args: []string{"kv", "put", "-mount=secret", "-cas=0", "-format=json", "myapp/db", "k=v"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret": {200, kvV2Mount},
				"PUT /v1/secret/data/myapp/db":          {204, ""},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret"},
				{method: "PUT", path: "/v1/secret/data/myapp/db", body: `{"data":{"k":"v"},"options":{"cas":0}}`},
			},
		},
		{
			name: "kv put on a v1 mount writes the path as is",
			args: []string{"kv", "put", "kv1/app", "k=v"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/kv1/app": {200, kvV1Mount},
				"PUT /v1/kv1/app":                        {204, ""},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/kv1/app"},
				{method: "PUT", path: "/v1/kv1/app", body: `{"k":"v"}`},
			},
			wantStdout: "Success! Data written to: kv1/app\n",
		},
		{
			name: "kv put where the preflight is a 404 (old Vault) is KV v1",
			args: []string{"kv", "put", "old/app", "k=v"},
			routes: map[string]reply{
				"PUT /v1/old/app": {204, ""},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/old/app"},
				{method: "PUT", path: "/v1/old/app", body: `{"k":"v"}`},
			},
			wantStdout: "Success! Data written to: old/app\n",
		},
		{
			name: "kv get -field on v2 reads data.data",
			args: []string{"kv", "get", "-field=password", "secret/myapp/db"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret/myapp/db": {200, kvV2Mount},
				"GET /v1/secret/data/myapp/db":                   {200, `{"data":{"data":{"password":"s3cret"},"metadata":{"version":1}}}`},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret/myapp/db"},
				{method: "GET", path: "/v1/secret/data/myapp/db"},
			},
			wantStdout: "s3cret",
		},
		{
			name: "kv get -mount -version, table",
			args: []string{"kv", "get", "-mount=secret", "-version=2", "myapp/db"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret": {200, kvV2Mount},
				"GET /v1/secret/data/myapp/db":          {200, `{"data":{"data":{"password":"s3cret"},"metadata":{"version":2}}}`},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret"},
				{method: "GET", path: "/v1/secret/data/myapp/db", query: "version=2"},
			},
			wantStdout: "" +
				"==== Secret Path ====\n" +
				"secret/data/myapp/db\n" +
				"\n" +
				"=== Metadata ===\n" +
				"Key        Value\n" +
				"---        -----\n" +
				"version    2\n" +
				"\n" +
				"====== Data ======\n" +
				"Key         Value\n" +
				"---         -----\n" +
				"password    s3cret\n",
		},
		{
			name: "kv get of nothing",
			args: []string{"kv", "get", "secret/none"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret/none": {200, kvV2Mount},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret/none"},
				{method: "GET", path: "/v1/secret/data/none"},
			},
			wantStderr: "No value found at secret/data/none\n",
			wantCode:   2,
		},
		{
			name: "kv metadata delete on v2",
			args: []string{"kv", "metadata", "delete", "secret/myapp/db"},
			routes: map[string]reply{
				"GET /v1/sys/internal/ui/mounts/secret/myapp/db": {200, kvV2Mount},
				"DELETE /v1/secret/metadata/myapp/db":            {204, ""},
			},
			want: []wantReq{
				{method: "GET", path: "/v1/sys/internal/ui/mounts/secret/myapp/db"},
				{method: "DELETE", path: "/v1/secret/metadata/myapp/db"},
			},
			wantStdout: "Success! Data deleted (if it existed) at: secret/metadata/myapp/db\n",
		},
		{
			name:       "unwrap a token, -field",
			args:       []string{"unwrap", "-field=value", "hvs.wrap"},
			routes:     map[string]reply{"PUT /v1/sys/wrapping/unwrap": {200, `{"data":{"value":"the secret"}}`}},
			want:       []wantReq{{method: "PUT", path: "/v1/sys/wrapping/unwrap", body: `{"token":"hvs.wrap"}`, header: map[string]string{"X-Vault-Token": "root"}}},
			wantStdout: "the secret",
		},
		{
			name:       "unwrap without an argument unwraps VAULT_TOKEN",
			args:       []string{"unwrap", "-format=json"},
			env:        map[string]string{"VAULT_TOKEN": "hvs.wrap"},
			routes:     map[string]reply{"PUT /v1/sys/wrapping/unwrap": {200, `{"data":{"value":"v"}}`}},
			want:       []wantReq{{method: "PUT", path: "/v1/sys/wrapping/unwrap", body: "null", header: map[string]string{"X-Vault-Token": "hvs.wrap"}}},
			wantStdout: "{\n  \"request_id\": \"\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"value\": \"v\"\n  },\n  \"warnings\": null\n}\n",
		},
		{
			name:       "the token comes from ~/.vault-token without VAULT_TOKEN",
			args:       []string{"policy", "delete", "p"},
			env:        map[string]string{"VAULT_TOKEN": ""},
			homeToken:  "hvs.fromfile\n",
			routes:     map[string]reply{"DELETE /v1/sys/policies/acl/p": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/policies/acl/p", header: map[string]string{"X-Vault-Token": "hvs.fromfile"}}},
			wantStdout: "Success! Deleted policy: p\n",
		},
		{
			name:       "VAULT_NAMESPACE is sent, canonicalised",
			args:       []string{"policy", "delete", "p"},
			env:        map[string]string{"VAULT_NAMESPACE": "team1"},
			routes:     map[string]reply{"DELETE /v1/sys/policies/acl/p": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/policies/acl/p", header: map[string]string{"X-Vault-Namespace": "team1/"}}},
			wantStdout: "Success! Deleted policy: p\n",
		},
		{
			name:       "-namespace overrides VAULT_NAMESPACE",
			args:       []string{"policy", "delete", "-namespace=team2", "p"},
			env:        map[string]string{"VAULT_NAMESPACE": "team1"},
			routes:     map[string]reply{"DELETE /v1/sys/policies/acl/p": {204, ""}},
			want:       []wantReq{{method: "DELETE", path: "/v1/sys/policies/acl/p", header: map[string]string{"X-Vault-Namespace": "team2/"}}},
			wantStdout: "Success! Deleted policy: p\n",
		},
		{
			name:       "VAULT_FORMAT=json is the default -format",
			args:       []string{"write", "-f", "auth/approle/role/r/secret-id"},
			env:        map[string]string{"VAULT_FORMAT": "JSON"},
			routes:     map[string]reply{"PUT /v1/auth/approle/role/r/secret-id": {200, `{"data":{"secret_id":"sid"}}`}},
			want:       []wantReq{{method: "PUT", path: "/v1/auth/approle/role/r/secret-id"}},
			wantStdout: "{\n  \"request_id\": \"\",\n  \"lease_id\": \"\",\n  \"lease_duration\": 0,\n  \"renewable\": false,\n  \"data\": {\n    \"secret_id\": \"sid\"\n  },\n  \"warnings\": null\n}\n",
		},
		{
			name:       "a Vault error on token create",
			args:       []string{"token", "create", "-role=nope"},
			routes:     map[string]reply{"POST /v1/auth/token/create/nope": {400, `{"errors":["unknown role nope"]}`}},
			want:       []wantReq{{method: "POST", path: "/v1/auth/token/create/nope"}},
			wantStderr: "Error creating token: Error making API request.\n\nURL: POST " + "%ADDR%" + "/v1/auth/token/create/nope\nCode: 400. Errors:\n\n* unknown role nope\n",
			wantCode:   2,
		},
		{
			name:       "a bad duration is a usage error, as in the real CLI",
			args:       []string{"token", "create", "-period=soon"},
			wantStderr: "invalid value \"soon\" for flag -period: time: invalid duration \"soon\"\n",
			wantCode:   1,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := newFakeVault(t, tt.routes)
			env(t, fv)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.homeToken != "" {
				if err := os.WriteFile(filepath.Join(os.Getenv("HOME"), ".vault-token"), []byte(tt.homeToken), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			stdout, stderr, code := runCLI(tt.stdin, tt.tty, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if stdout != tt.wantStdout {
				t.Errorf("stdout =\n%q\nwant\n%q", stdout, tt.wantStdout)
			}
			wantStderr := strings.ReplaceAll(tt.wantStderr, "%ADDR%", fv.srv.URL)
			if tt.wantErrSub {
				if !strings.HasPrefix(stderr, wantStderr) {
					t.Errorf("stderr = %q, want it to begin with %q", stderr, wantStderr)
				}
			} else if stderr != wantStderr {
				t.Errorf("stderr = %q, want %q", stderr, wantStderr)
			}
			checkRequests(t, fv.requests(), tt.want)
		})
	}
}

func checkRequests(t *testing.T, got []recorded, want []wantReq) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d requests, want %d:", len(got), len(want))
		for _, r := range got {
			t.Errorf("  %s %s?%s %s", r.method, r.path, r.query, r.body)
		}
		return
	}
	for i, w := range want {
		g := got[i]
		if g.method != w.method || g.path != w.path || g.query != w.query {
			t.Errorf("request %d = %s %s?%s, want %s %s?%s", i, g.method, g.path, g.query, w.method, w.path, w.query)
		}
		if w.body != "" && !jsonEqual(t, g.body, w.body) {
			t.Errorf("request %d body = %s, want %s", i, g.body, w.body)
		}
		for k, v := range w.header {
			if got := g.header.Get(k); got != v {
				t.Errorf("request %d header %s = %q, want %q", i, k, got, v)
			}
		}
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var av, bv any
	if err := json.Unmarshal([]byte(a), &av); err != nil {
		t.Errorf("body %q is not JSON: %v", a, err)
		return false
	}
	if err := json.Unmarshal([]byte(b), &bv); err != nil {
		t.Fatalf("want %q is not JSON: %v", b, err)
	}
	return reflect.DeepEqual(av, bv)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestNotImplemented: anything outside the subset exits 2 with the stand-in's
// message and sends nothing to Vault.
func TestNotImplemented(t *testing.T) {
	const suffix = " is not implemented: implement it in e2e/vaultcli or keep the docs to what it implements\n"
	const prefix = "vault (the docs test's stand-in): "
	tests := []struct {
		args []string
		what string
	}{
		{[]string{"list", "secret/"}, `"vault list"`},
		{[]string{"kv", "delete", "secret/x"}, `"vault kv delete"`},
		{[]string{"kv", "metadata", "get", "secret/x"}, `"vault kv metadata get"`},
		{[]string{"token", "renew"}, `"vault token renew"`},
		{[]string{"policy"}, `"vault policy"`},
		{nil, "vault with no command"},
		{[]string{"-version"}, `"vault -version"`},
		{[]string{"write", "-bogus", "secret/x", "a=b"}, `the flag -bogus of "vault write"`},
		{[]string{"token", "create", "--id=x"}, `the flag -id of "vault token create"`},
		{[]string{"policy", "write", "-format=json", "p", "-"}, `the flag -format of "vault policy write"`},
		{[]string{"read", "-h"}, `help (-h, -help) of "vault read"`},
		{[]string{"read", "-format=yaml", "secret/x"}, `-format=yaml of "vault read"`},
		{[]string{"read", "secret/x", "-format=json"}, `a flag after the positional arguments (-format=json) of "vault read" (the real CLI would not parse it as a flag)`},
		{[]string{"write", "secret/x", "a=b", "-f"}, `a flag after the positional arguments (-f) of "vault write" (the real CLI would not parse it as a flag)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fv := newFakeVault(t, nil)
			env(t, fv)
			stdout, stderr, code := runCLI("", false, tt.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if want := prefix + tt.what + suffix; stderr != want {
				t.Errorf("stderr = %q, want %q", stderr, want)
			}
			if reqs := fv.requests(); len(reqs) != 0 {
				t.Errorf("%d requests sent, want none", len(reqs))
			}
		})
	}
}

func TestAddPrefixToKVPath(t *testing.T) {
	// The cases of hashicorp/vault command/kv_helpers_test.go.
	tests := []struct {
		path, mount, prefix string
		skip                bool
		want                string
	}{
		{"kv-v2/foo", "kv-v2/", "data", false, "kv-v2/data/foo"},
		{"my/kv-v2/mount/path/foo/bar/baz", "my/kv-v2/mount/path", "metadata", false, "my/kv-v2/mount/path/metadata/foo/bar/baz"},
		{"my/kv-v2/mount/path/foo/bar/baz", "my/ns1/my/kv-v2/mount/path", "metadata", false, "my/kv-v2/mount/path/metadata/foo/bar/baz"},
		{"kv-v2/data/foo", "kv-v2/", "data", true, "kv-v2/data/foo"},
		{"kv-v2/data/foo", "kv-v2", "data", false, "kv-v2/data/data/foo"},
		{"my/kv-v2/mount/path/metadata/foo/bar/baz", "my/ns1/my/kv-v2/mount/path", "metadata", true, "my/kv-v2/mount/path/metadata/foo/bar/baz"},
		{"secret", "secret/", "data", false, "secret/data"},
	}
	for _, tt := range tests {
		if got := addPrefixToKVPath(tt.path, tt.mount, tt.prefix, tt.skip); got != tt.want {
			t.Errorf("addPrefixToKVPath(%q, %q, %q, %v) = %q, want %q", tt.path, tt.mount, tt.prefix, tt.skip, got, tt.want)
		}
	}
}

func TestArgChecks(t *testing.T) {
	tests := []struct {
		name  string
		check argCheck
		args  []string
		want  string // "" for no error
	}{
		{"exactArgs(1) none", exactArgs(1), nil, "Not enough arguments (expected 1, got 0)"},
		{"exactArgs(1) one", exactArgs(1), []string{"a"}, ""},
		{"exactArgs(1) two", exactArgs(1), []string{"a", "b"}, "Too many arguments (expected 1, got 2)"},
		{"exactArgs(0) none", exactArgs(0), nil, ""},
		{"exactArgs(0) one", exactArgs(0), []string{"a"}, "Too many arguments (expected 0, got 1)"},
		{"exactArgs(2) one", exactArgs(2), []string{"a"}, "Not enough arguments (expected 2, got 1)"},
		{"atLeastOne none", atLeastOne("at least 1"), nil, "Not enough arguments (expected at least 1, got 0)"},
		{"atLeastOne three", atLeastOne(">1"), []string{"a", "b", "c"}, ""},
		{"atMostOne none", atMostOne, nil, ""},
		{"atMostOne one", atMostOne, []string{"a"}, ""},
		{"atMostOne two", atMostOne, []string{"a", "b"}, "Too many arguments (expected 0-1, got 2)"},
	}
	for _, tt := range tests {
		got := ""
		if err := tt.check(tt.args); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := firstArg(nil); got != "" {
		t.Errorf("firstArg(nil) = %q, want empty", got)
	}
	if got := firstArg([]string{" tok ", "x"}); got != "tok" {
		t.Errorf("firstArg = %q, want %q", got, "tok")
	}
}

// TestKVFullPath: the API path the kv commands resolve from PATH and -mount,
// with the preflight request that tells KV v1 from v2.
func TestKVFullPath(t *testing.T) {
	fv := newFakeVault(t, map[string]reply{
		"GET /v1/sys/internal/ui/mounts/secret/foo":  {200, kvV2Mount},
		"GET /v1/sys/internal/ui/mounts/secret/foo/": {200, kvV2Mount},
		"GET /v1/sys/internal/ui/mounts/secret":      {200, kvV2Mount},
		"GET /v1/sys/internal/ui/mounts/kv1/foo":     {200, kvV1Mount},
		"GET /v1/sys/internal/ui/mounts/kv1":         {200, kvV1Mount},
		"GET /v1/sys/internal/ui/mounts/broken/x":    {500, `{"errors":["boom"]}`},
	})
	env(t, fv)
	c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	client, err := c.newFlags("test", 0).client()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arg, mount string
		sanitize   bool
		prefix     string
		want       string
		wantV2     bool
	}{
		{"secret/foo", "", true, "data", "secret/data/foo", true},
		{"/secret/foo/", "", true, "metadata", "secret/metadata/foo", true},
		{"/secret/foo/", "", false, "data", "secret/data/foo", true},
		{"foo", "secret", true, "data", "secret/data/foo", true},
		{"kv1/foo", "", true, "data", "kv1/foo", false},
		{"foo", "/kv1/", false, "data", "kv1/foo", false},
		{"plain/x", "", true, "data", "plain/x", false}, // no preflight endpoint (404): v1
	}
	for _, tt := range tests {
		got, v2, err := kvFullPath(client, tt.arg, tt.mount, tt.sanitize, tt.prefix)
		if err != nil || got != tt.want || v2 != tt.wantV2 {
			t.Errorf("kvFullPath(%q, %q, %v, %q) = %q, %v, %v; want %q, %v, nil",
				tt.arg, tt.mount, tt.sanitize, tt.prefix, got, v2, err, tt.want, tt.wantV2)
		}
	}
	if _, _, err := kvFullPath(client, "broken/x", "", true, "data"); err == nil {
		t.Error("kvFullPath with a failing preflight: no error")
	}
}
