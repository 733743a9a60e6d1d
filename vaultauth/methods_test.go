package vaultauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
)

// loginVault is an httptest Vault for the login methods: wrapping tokens
// (single use, with a creation path), AppRole and cert logins.
type loginVault struct {
	mu       sync.Mutex
	wrapped  map[string]wrappedValue // by wrapping token
	secretID string                  // the AppRole secret-id that logs in
	logins   []map[string]any        // login bodies
	headers  []http.Header
	paths    []string // of each request, as headers
}

// tokensSentTo returns the X-Vault-Token of each request to path.
func (v *loginVault) tokensSentTo(path string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for i, p := range v.paths {
		if p == path {
			out = append(out, v.headers[i].Get("X-Vault-Token"))
		}
	}
	return out
}

type wrappedValue struct {
	creationPath string
	response     string // what unwrap answers
}

func newLoginVault(t *testing.T) (*loginVault, *api.Client) {
	t.Helper()
	v := &loginVault{wrapped: map[string]wrappedValue{}}
	c := clientFor(t, httptest.NewServer(http.HandlerFunc(v.serve)))
	c.SetToken("dead-old-token") // logins must not send it
	return v, c
}

// clientFor returns a Vault client of srv, without token or retries, and
// closes srv when the test ends.
func clientFor(t *testing.T, srv *httptest.Server) *api.Client {
	t.Helper()
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

func (v *loginVault) serve(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	v.headers = append(v.headers, r.Header.Clone())
	v.paths = append(v.paths, r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	fail := func(code int, msg string) {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[%q]}`, msg)
	}
	switch r.URL.Path {
	case "/v1/sys/wrapping/lookup":
		tok, _ := body["token"].(string)
		wv, ok := v.wrapped[tok]
		if !ok {
			fail(http.StatusBadRequest, "wrapping token is not valid or does not exist")
			return
		}
		fmt.Fprintf(w, `{"data":{"creation_path":%q,"creation_ttl":300}}`, wv.creationPath)
	case "/v1/sys/wrapping/unwrap":
		tok := r.Header.Get("X-Vault-Token")
		if t, _ := body["token"].(string); t != "" {
			tok = t
		}
		wv, ok := v.wrapped[tok]
		if !ok {
			fail(http.StatusBadRequest, "wrapping token is not valid or does not exist")
			return
		}
		delete(v.wrapped, tok)
		w.Write([]byte(wv.response))
	case "/v1/auth/approle/login", "/v1/auth/other/login":
		v.logins = append(v.logins, body)
		if body["secret_id"] != v.secretID || body["role_id"] != "role-1" {
			fail(http.StatusBadRequest, "invalid role or secret ID")
			return
		}
		w.Write([]byte(`{"auth":{"client_token":"approle-token","policies":["swarmvault"],"lease_duration":20,"renewable":true}}`))
	case "/v1/auth/cert/login":
		v.logins = append(v.logins, body)
		w.Write([]byte(`{"auth":{"client_token":"cert-token","policies":["swarmvault"],"lease_duration":60,"renewable":true}}`))
	default:
		fail(http.StatusNotFound, "")
	}
}

func writeCred(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAppRoleLogin(t *testing.T) {
	v, client := newLoginVault(t)
	v.secretID = "secret-1"
	dir := t.TempDir()
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), writeCred(t, dir, "secret-id", "secret-1"), "", false, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.Auth().Login(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if s.Auth.ClientToken != "approle-token" || client.Token() != "approle-token" {
		t.Errorf("login gave %+v", s.Auth)
	}
	if h := v.headers[0].Get("X-Vault-Token"); h != "" {
		t.Errorf("the login sent the old token %q", h)
	}
}

func TestAppRoleWrappedSecretIDUnwrapsOnceAndIsRemoved(t *testing.T) {
	v, client := newLoginVault(t)
	v.secretID = "secret-from-wrap"
	v.wrapped["wrap-1"] = wrappedValue{creationPath: "auth/approle/role/swarmvault/secret-id", response: `{"data":{"secret_id":"secret-from-wrap"}}`}
	dir := t.TempDir()
	secretFile := writeCred(t, dir, "secret-id", "wrap-1")
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), secretFile, "", true, true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second login reuses the unwrapped secret-id
		if _, err := client.Auth().Login(context.Background(), a); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(secretFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VAULT_SECRET_ID_REMOVE: the file is still there (%v)", err)
	}
	if len(v.logins) != 2 || v.logins[1]["secret_id"] != "secret-from-wrap" {
		t.Errorf("logins %v", v.logins)
	}
	// api's Unwrap sets the wrapping token on a client without one: the
	// login must not carry the spent wrapping token along.
	if sent := v.tokensSentTo("/v1/auth/approle/login"); len(sent) != 2 || sent[0] != "" || sent[1] != "" {
		t.Errorf("the logins sent tokens %q, want none", sent)
	}
}

// After a restart, the secret-id file VAULT_SECRET_ID_REMOVE took away is
// missing: the plugin starts, its logins say what to write, and the first
// login after the operator writes a new wrapped secret-id succeeds.
func TestAppRoleStartsWithoutTheSecretIDItRemoved(t *testing.T) {
	v, client := newLoginVault(t)
	v.secretID = "secret-from-wrap"
	v.wrapped["wrap-2"] = wrappedValue{creationPath: "auth/approle/role/swarmvault/secret-id", response: `{"data":{"secret_id":"secret-from-wrap"}}`}
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret-id")
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), secretFile, "", true, true)
	if err != nil {
		t.Fatalf("the plugin would not start: %v", err)
	}
	_, err = client.Auth().Login(context.Background(), a)
	if want := "write a new (wrapped) secret-id into the file"; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "VAULT_SECRET_ID_FILE cannot be read") {
		t.Errorf("login without the file: %v, want it to say %q", err, want)
	}
	writeCred(t, dir, "secret-id", "wrap-2")
	if _, err := client.Auth().Login(context.Background(), a); err != nil {
		t.Fatalf("login once the file is back: %v", err)
	}
	// Without VAULT_SECRET_ID_REMOVE a missing file is a mistake in the
	// settings, refused at start.
	if _, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), filepath.Join(dir, "nothing"), "", true, false); err == nil {
		t.Error("a missing secret-id file without VAULT_SECRET_ID_REMOVE was accepted at start")
	}
}

// A wrapped secret-id that unwraps to no secret_id is refused (the helper
// method's twin is in package bootstrap).
func TestWrappedSecretIDWithoutSecretID(t *testing.T) {
	v, client := newLoginVault(t)
	v.wrapped["wrap-empty"] = wrappedValue{creationPath: "auth/approle/role/x/secret-id", response: `{"data":{"secret_id":""}}`}
	dir := t.TempDir()
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), writeCred(t, dir, "secret-id", "wrap-empty"), "", true, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), a)
	if want := "the wrapped secret-id in VAULT_SECRET_ID_FILE unwrapped to no secret_id"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	if len(v.logins) != 0 {
		t.Errorf("logged in with an empty secret-id: %v", v.logins)
	}
}

// VAULT_AUTH_MOUNT=/approle/ is the mount approle, not auth//approle//login.
func TestAuthMountSlashesAreTrimmed(t *testing.T) {
	v, client := newLoginVault(t)
	v.secretID = "secret-1"
	dir := t.TempDir()
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), writeCred(t, dir, "secret-id", "secret-1"), "/approle/", false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Auth().Login(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	c, err := NewCertAuth("https://vault:8200", "/c.pem", "/k.pem", "cert/", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Auth().Login(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if n := len(v.tokensSentTo("/v1/auth/approle/login")) + len(v.tokensSentTo("/v1/auth/cert/login")); n != 2 {
		t.Errorf("requests went to %v", v.paths)
	}
}

// Only a token a login made is the plugin's to revoke.
func TestCreatesToken(t *testing.T) {
	dir := t.TempDir()
	role := writeCred(t, dir, "role-id", "r")
	tok, _ := NewTokenAuth("t", "")
	ar, _ := NewAppRoleAuth(role, writeCred(t, dir, "secret-id", "s"), "", false, false)
	cert, _ := NewCertAuth("https://vault:8200", "/c", "/k", "", "")
	for _, tt := range []struct {
		m    api.AuthMethod
		want bool
	}{{tok, false}, {ar, true}, {cert, true}} {
		c, ok := tt.m.(TokenCreator)
		if got := ok && c.CreatesToken(); got != tt.want {
			t.Errorf("%T: creates token %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestAppRoleRefusesASecretIDWrappedElsewhere(t *testing.T) {
	v, client := newLoginVault(t)
	// A wrapping token made by anyone with sys/wrapping/wrap: its content is
	// the wrapper's choice.
	v.wrapped["wrap-evil"] = wrappedValue{creationPath: "sys/wrapping/wrap", response: `{"data":{"secret_id":"attacker"}}`}
	dir := t.TempDir()
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", "role-1"), writeCred(t, dir, "secret-id", "wrap-evil"), "", true, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), a)
	want := "the wrapped secret-id in VAULT_SECRET_ID_FILE was wrapped at sys/wrapping/wrap, not at ^auth/approle/role/[^/]+/(custom-)?secret-id$: refusing it"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v", err)
	}
	if _, still := v.wrapped["wrap-evil"]; !still {
		t.Error("the refused wrapping token was unwrapped")
	}
}

func TestAppRoleSettings(t *testing.T) {
	dir := t.TempDir()
	role := writeCred(t, dir, "role-id", "r")
	for _, tt := range []struct{ role, secret, want string }{
		{"", "/x", "VAULT_ROLE_ID_FILE is not set: VAULT_AUTH_METHOD=approle needs the role-id in a file on the plugin's credentials mount"},
		{role, "", "VAULT_SECRET_ID_FILE is not set: VAULT_AUTH_METHOD=approle needs a secret-id (or a wrapped one) in a file on the plugin's credentials mount"},
		{role, filepath.Join(dir, "nope"), "VAULT_SECRET_ID_FILE cannot be read: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
	} {
		if _, err := NewAppRoleAuth(tt.role, tt.secret, "", false, false); err == nil || err.Error() != tt.want {
			t.Errorf("error %v\nwant %s", err, tt.want)
		}
	}
}

func TestCertLogin(t *testing.T) {
	v, client := newLoginVault(t)
	a, err := NewCertAuth("https://vault:8200", "/c.pem", "/k.pem", "", "swarmvault")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Auth().Login(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if client.Token() != "cert-token" || v.logins[0]["name"] != "swarmvault" {
		t.Errorf("token %s, login %v", client.Token(), v.logins)
	}
	for _, tt := range []struct{ addr, cert, key, want string }{
		{"https://vault:8200", "", "/k", "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must both be set for VAULT_AUTH_METHOD=cert: files on the plugin's credentials mount"},
		{"http://vault:8200", "/c", "/k", "VAULT_ADDR=http://vault:8200 is not https: VAULT_AUTH_METHOD=cert presents its certificate in the TLS handshake"},
	} {
		if _, err := NewCertAuth(tt.addr, tt.cert, tt.key, "", ""); err == nil || err.Error() != tt.want {
			t.Errorf("error %v\nwant %s", err, tt.want)
		}
	}
}

func TestNewPicksTheMethod(t *testing.T) {
	dir := t.TempDir()
	tok := writeCred(t, dir, "token", "t")
	if m, err := New(Settings{TokenFile: tok}, nil); err != nil || fmt.Sprintf("%T", m) != "*vaultauth.TokenAuth" {
		t.Errorf("default: %T %v", m, err)
	}
	if _, err := New(Settings{Method: "kerberos"}, nil); err == nil || err.Error() != "VAULT_AUTH_METHOD=kerberos is not a method: use token, approle, cert or helper" {
		t.Errorf("unknown method: %v", err)
	}
	called := false
	_, err := New(Settings{Method: "helper"}, func() (api.AuthMethod, error) {
		called = true
		return nil, errors.New("VAULT_AUTH_METHOD=helper needs the Docker socket")
	})
	if !called || err == nil {
		t.Errorf("helper: called %v, err %v", called, err)
	}
	helper, _ := NewTokenAuth("t", "")
	if m, err := New(Settings{Method: "helper"}, func() (api.AuthMethod, error) { return helper, nil }); m != helper || err != nil {
		t.Errorf("helper: New gave %v, %v, not the method the helper factory made", m, err)
	}
}
