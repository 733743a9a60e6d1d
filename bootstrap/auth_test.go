package bootstrap

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/vaultauth"
)

// vault is an httptest Vault for the helper's logins: wrapping tokens are
// single use and carry the path that made them, AppRole accepts role-1
// with secretID, lookup-self accepts tokens.
type vault struct {
	mu       sync.Mutex
	wrapped  map[string]wrapping // by wrapping token
	secretID string
	tokens   map[string]bool
	seen     []request
}

type wrapping struct{ creationPath, response string }

// request is one request the vault answered.
type request struct {
	path, token string
	body        map[string]string
}

// newVault returns the vault and a client of it holding a dead token, which
// no login may send.
func newVault(t *testing.T) (*vault, *api.Client) {
	t.Helper()
	v := &vault{wrapped: map[string]wrapping{}, tokens: map[string]bool{}}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = srv.URL, 0
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("dead-old-token")
	return v, c
}

func (v *vault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	req := request{path: r.URL.Path, token: r.Header.Get("X-Vault-Token")}
	json.NewDecoder(r.Body).Decode(&req.body)
	v.seen = append(v.seen, req)
	status, answer := v.answer(req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

func (v *vault) answer(r request) (int, string) {
	const invalid = `{"errors":["wrapping token is not valid or does not exist"]}`
	switch r.path {
	case "/v1/sys/wrapping/lookup":
		wv, ok := v.wrapped[r.body["token"]]
		if !ok {
			return http.StatusBadRequest, invalid
		}
		return http.StatusOK, fmt.Sprintf(`{"data":{"creation_path":%q}}`, wv.creationPath)
	case "/v1/sys/wrapping/unwrap":
		tok := cmp.Or(r.body["token"], r.token)
		wv, ok := v.wrapped[tok]
		if !ok {
			return http.StatusBadRequest, invalid
		}
		delete(v.wrapped, tok)
		return http.StatusOK, wv.response
	case "/v1/auth/approle/login":
		if r.body["role_id"] != "role-1" || r.body["secret_id"] != v.secretID {
			return http.StatusBadRequest, `{"errors":["invalid role or secret ID"]}`
		}
		return http.StatusOK, `{"auth":{"client_token":"approle-token","policies":["swarmvault"],"lease_duration":20,"renewable":true}}`
	case "/v1/auth/token/lookup-self":
		if !v.tokens[r.token] {
			return http.StatusForbidden, `{"errors":["permission denied"]}`
		}
		return http.StatusOK, `{"data":{"policies":["swarmvault"],"ttl":3600,"renewable":true}}`
	}
	return http.StatusNotFound, `{"errors":[]}`
}

// sent returns the requests to path.
func (v *vault) sent(path string) []request {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []request
	for _, r := range v.seen {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// roleIDFile writes the role-id role-1 to a file.
func roleIDFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "role-id")
	if err := os.WriteFile(p, []byte("role-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLogin(t *testing.T) {
	role := roleIDFile(t)
	tests := []struct {
		name      string
		helper    *fakeDocker
		roleID    string
		setup     func(v *vault)
		wantToken string
		wantErr   string
	}{
		{name: "a plain token", helper: helperHolding("plain-token\n"), setup: func(v *vault) { v.tokens["plain-token"] = true }, wantToken: "plain-token"},
		{name: "a wrapped token", helper: helperHolding("wrap-tok"), setup: func(v *vault) {
			v.tokens["unwrapped-token"] = true
			v.wrapped["wrap-tok"] = wrapping{creationPath: "auth/token/create/swarmvault", response: `{"auth":{"client_token":"unwrapped-token"}}`}
		}, wantToken: "unwrapped-token"},
		{name: "an AppRole secret-id", helper: helperHolding("secret-1"), roleID: role, setup: func(v *vault) { v.secretID = "secret-1" }, wantToken: "approle-token"},
		{name: "a wrapped AppRole secret-id", helper: helperHolding("wrap-sid"), roleID: role, setup: func(v *vault) {
			v.secretID = "secret-2"
			v.wrapped["wrap-sid"] = wrapping{creationPath: "auth/approle/role/x/secret-id", response: `{"data":{"secret_id":"secret-2"}}`}
		}, wantToken: "approle-token"},
		{name: "garbage", helper: helperHolding("not-a-token"), setup: func(*vault) {},
			wantErr: "Vault does not accept the plugin's token (the helper service's secret)"},
		{name: "helper gone", helper: &fakeDocker{node: "n"}, setup: func(*vault) {},
			wantErr: "HELPER_SERVICE helper has no running tasks"},
		{name: "a token wrapped elsewhere", helper: helperHolding("wrap-evil"), setup: func(v *vault) {
			v.tokens["attacker"] = true
			v.wrapped["wrap-evil"] = wrapping{creationPath: "sys/wrapping/wrap", response: `{"auth":{"client_token":"attacker"}}`}
		}, wantErr: "the helper's wrapped token was wrapped at sys/wrapping/wrap, not at ^auth/token/create(-orphan|/[^/]+)?$: refusing it"},
		{name: "a wrapped token that holds none", helper: helperHolding("wrap-data"), setup: func(v *vault) {
			v.wrapped["wrap-data"] = wrapping{creationPath: "auth/token/create", response: `{"data":{"x":"y"}}`}
		}, wantErr: "the helper's wrapped secret holds no token"},
		{name: "a wrapped token that is empty", helper: helperHolding("wrap-empty"), setup: func(v *vault) {
			v.wrapped["wrap-empty"] = wrapping{creationPath: "auth/token/create", response: `{"auth":{"client_token":""}}`}
		}, wantErr: "the helper's wrapped secret holds no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, client := newVault(t)
			tt.setup(v)
			a, err := New(tt.helper, Settings{Service: "helper", Secret: "token", RoleIDFile: tt.roleID})
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.Auth().Login(context.Background(), a)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "not-a-token") {
					t.Error("the error quotes the helper's secret")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if client.Token() != tt.wantToken {
				t.Errorf("token %q, want %q", client.Token(), tt.wantToken)
			}
			for _, r := range v.seen {
				if r.token == "dead-old-token" {
					t.Errorf("%s was sent the client's old token", r.path)
				}
			}
		})
	}
}

// A wrapped secret-id that unwraps to no secret_id is refused.
func TestWrappedSecretIDWithoutSecretID(t *testing.T) {
	v, client := newVault(t)
	v.wrapped["wrap-empty"] = wrapping{creationPath: "auth/approle/role/x/secret-id", response: `{"data":{"secret_id":""}}`}
	a, err := New(helperHolding("wrap-empty"), Settings{Service: "helper", Secret: "token", RoleIDFile: roleIDFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), a)
	if want := "the helper's wrapped secret-id unwrapped to no secret_id"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	if logins := v.sent("/v1/auth/approle/login"); len(logins) != 0 {
		t.Errorf("logged in with an empty secret-id: %v", logins)
	}
}

// VAULT_AUTH_MOUNT=//approle is the mount approle, not auth///approle/login.
func TestAuthMountSlashesAreTrimmed(t *testing.T) {
	v, client := newVault(t)
	v.secretID = "secret-1"
	a, err := New(helperHolding("secret-1"), Settings{Service: "helper", Secret: "token", RoleIDFile: roleIDFile(t), Mount: "//approle"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Auth().Login(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if n := len(v.sent("/v1/auth/approle/login")); n != 1 {
		t.Errorf("requests went to %v", v.seen)
	}
}

// Only a token a login made is the plugin's to revoke.
func TestCreatesToken(t *testing.T) {
	role := roleIDFile(t)
	helperToken, _ := New(&fakeDocker{}, Settings{Service: "h", Secret: "s"})
	helperAppRole, _ := New(&fakeDocker{}, Settings{Service: "h", Secret: "s", RoleIDFile: role})
	for _, tt := range []struct {
		m    api.AuthMethod
		want bool
	}{{helperToken, false}, {helperAppRole, true}} {
		c, ok := tt.m.(vaultauth.TokenCreator)
		if got := ok && c.CreatesToken(); got != tt.want {
			t.Errorf("%T: creates token %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tt := range []struct {
		s    Settings
		want string
	}{
		{Settings{Secret: "s"}, "HELPER_SERVICE is not set: name the swarm service that holds the plugin's bootstrap secret"},
		{Settings{Service: "h", Secret: "s", RoleIDFile: missing}, "VAULT_ROLE_ID_FILE cannot be read: open " + missing + ": no such file or directory"},
	} {
		if _, err := New(&fakeDocker{}, tt.s); err == nil || err.Error() != tt.want {
			t.Errorf("error %v\nwant %s", err, tt.want)
		}
	}
}
