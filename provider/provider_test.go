package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
	"github.com/swarmvault/swarmvault/internal/vaulttest"
)

const (
	testPassword = "s3cr3t-välue\nline2"
	pluginToken  = "plugin-token-value"
)

// fakeVault is an httptest Vault: one handler per API path, plus a count of
// mount look-ups to check the cache.
type fakeVault struct {
	*httptest.Server
	mux         *http.ServeMux
	mountLookup atomic.Int32

	mu      sync.Mutex
	minted  map[string]mintedToken // by token
	dead    map[string]bool        // plugin tokens Vault calls invalid
	wrapped []wrapCall
	// wrapDenied: sys/wrapping/wrap refuses the plugin's token.
	wrapDenied bool
	revoked    []string
	// grantTTL, when set, is the TTL granted to every token, whatever asked.
	grantTTL time.Duration
	// kvReads counts the reads a task token made (asTask).
	kvReads int
	// pluginPolicies and identityPolicies are what lookup-self says the
	// plugin's token holds (newFakeVault: default and swarmvault-plugin);
	// selfLookups counts the look-ups, by token; selfRefused, when set, is
	// lookup-self's status for every token.
	pluginPolicies, identityPolicies []string
	selfLookups                      map[string]int
	selfRefused                      int
}

// mintedToken is a token the fake made, with the request that made it.
type mintedToken struct {
	path string // auth/token/create, create-orphan or create/<role>
	req  api.TokenCreateRequest
}

// wrapCall is a call Vault answered response-wrapped.
type wrapCall struct {
	token, ttl, path, query string
	data                    map[string]any // what unwrapping gives
}

// wrapAtSource answers a request that carries X-Vault-Wrap-TTL as Vault
// does: the handler's 200 answer is kept for the unwrap, and the client gets
// wrap_info naming the path as creation_path (and, for a token, its
// accessor as wrapped_accessor).
func (f *fakeVault) wrapAtSource(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ttl := r.Header.Get("X-Vault-Wrap-TTL")
		if ttl == "" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		var answer map[string]any
		json.Unmarshal(rec.Body.Bytes(), &answer)
		accessor := ""
		if auth, ok := answer["auth"].(map[string]any); ok {
			accessor, _ = auth["accessor"].(string)
		}
		path := strings.TrimPrefix(r.URL.Path, "/v1/")
		f.mu.Lock()
		f.wrapped = append(f.wrapped, wrapCall{token: r.Header.Get("X-Vault-Token"), ttl: ttl, path: path, query: r.URL.RawQuery, data: answer})
		n := len(f.wrapped)
		f.mu.Unlock()
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"wrap_info":{"token":"wrapping-token-%d","ttl":300,"creation_path":%q,"wrapped_accessor":%q}}`, n, path, accessor))
	})
}

// secretReads counts the reads of secret data by task tokens: every read,
// less the mount look-ups (made once, then cached).
func (f *fakeVault) secretReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kvReads - int(f.mountLookup.Load())
}

// killMinted makes Vault call every token minted so far invalid, as when
// the plugin's token, their parent, is revoked.
func (f *fakeVault) killMinted() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = map[string]bool{}
	for tok := range f.minted {
		f.dead[tok] = true
	}
}

func (f *fakeVault) mintedTokens() []mintedToken {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mintedToken
	for _, m := range f.minted {
		out = append(out, m)
	}
	return out
}

// handleTokens serves token creation (roles named orphan-* make orphans),
// revocation and sys/wrapping/wrap.
func (f *fakeVault) handleTokens() {
	create := func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		tok := r.Header.Get("X-Vault-Token")
		dead := f.dead[tok]
		f.mu.Unlock()
		switch {
		case dead:
			vaultErrorResponse(w, http.StatusForbidden, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")
			return
		case tok != pluginToken && !strings.HasPrefix(tok, "plugin-token-"):
			vaultErrorResponse(w, http.StatusForbidden, "permission denied")
			return
		}
		var req api.TokenCreateRequest
		json.NewDecoder(r.Body).Decode(&req)
		path := strings.TrimPrefix(r.URL.Path, "/v1/")
		if strings.HasSuffix(path, "/create/forbidden-role") {
			vaultErrorResponse(w, http.StatusForbidden, "permission denied")
			return
		}
		if strings.HasSuffix(path, "/create/sealed-role") {
			vaultErrorResponse(w, http.StatusServiceUnavailable, "Vault is sealed")
			return
		}
		if strings.HasSuffix(path, "/create/broken-role") {
			vaultErrorResponse(w, http.StatusInternalServerError, "failed to persist token: storage is full")
			return
		}
		if slices.Contains(req.Policies, "admin") {
			vaultErrorResponse(w, http.StatusBadRequest, "2 errors occurred:\n\t* token policies ([\"admin\"]) must be subset of the parent token's policies\n\t* one more cause\n\n")
			return
		}
		f.mu.Lock()
		minted := fmt.Sprintf("task-token-%d", len(f.minted))
		if f.minted == nil {
			f.minted = map[string]mintedToken{}
		}
		f.minted[minted] = mintedToken{path: path, req: req}
		f.mu.Unlock()
		orphan := strings.HasSuffix(path, "create-orphan") || strings.Contains(path, "/create/orphan-")
		ttl, _ := time.ParseDuration(req.TTL)
		if f.grantTTL > 0 {
			ttl = f.grantTTL
		}
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"auth":{"client_token":%q,"accessor":"acc-%s","policies":%s,"lease_duration":%d,"renewable":%v,"orphan":%v}}`,
			minted, minted, mustJSON(req.Policies), int(ttl.Seconds()), req.Type != "batch", orphan))
	}
	f.mux.HandleFunc("/v1/auth/token/lookup-self", func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Vault-Token")
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.selfLookups == nil {
			f.selfLookups = map[string]int{}
		}
		f.selfLookups[tok]++
		switch {
		case f.selfRefused != 0:
			vaultErrorResponse(w, f.selfRefused, "permission denied")
		case f.dead[tok]:
			vaultErrorResponse(w, http.StatusForbidden, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")
		case tok != pluginToken && !strings.HasPrefix(tok, "plugin-token-"):
			vaultErrorResponse(w, http.StatusForbidden, "permission denied")
		default:
			writeJSON(w, http.StatusOK, fmt.Sprintf(`{"data":{"id":%q,"policies":%s,"identity_policies":%s}}`, tok, mustJSON(f.pluginPolicies), mustJSON(f.identityPolicies)))
		}
	})
	f.mux.HandleFunc("/v1/auth/token/create", create)
	f.mux.HandleFunc("/v1/auth/token/create-orphan", create)
	f.mux.HandleFunc("/v1/auth/token/create/", create)
	// sys/wrapping/wrap answers its body as data; wrapAtSource wraps it.
	f.mux.HandleFunc("/v1/sys/wrapping/wrap", func(w http.ResponseWriter, r *http.Request) {
		if f.wrapDenied {
			writeJSON(w, http.StatusForbidden, `{"errors":["permission denied"]}`)
			return
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		b, _ := json.Marshal(map[string]any{"data": body})
		writeJSON(w, http.StatusOK, string(b))
	})
	f.mux.HandleFunc("/v1/auth/token/revoke-accessor", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Accessor string }
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.revoked = append(f.revoked, body.Accessor)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	f.mux.HandleFunc("/v1/auth/token/lookup-accessor", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Accessor string }
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		m, ok := f.minted[strings.TrimPrefix(body.Accessor, "acc-")]
		f.mu.Unlock()
		if !ok {
			vaultErrorResponse(w, http.StatusBadRequest, "invalid accessor")
			return
		}
		orphan := strings.HasSuffix(m.path, "create-orphan") || strings.Contains(m.path, "/create/orphan-")
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"data":{"accessor":%q,"orphan":%v}}`, body.Accessor, orphan))
	})
}

// asTask guards a secret-reading handler: only a batch token minted for a
// task may read; the plugin's own token, or anything else, gets 403.
func (f *fakeVault) asTask(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		m, ok := f.minted[r.Header.Get("X-Vault-Token")]
		dead := f.dead[r.Header.Get("X-Vault-Token")]
		f.mu.Unlock()
		if dead {
			vaultErrorResponse(w, http.StatusForbidden, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")
			return
		}
		if !ok || m.req.Type != "batch" {
			vaultErrorResponse(w, http.StatusForbidden, "permission denied")
			return
		}
		f.mu.Lock()
		f.kvReads++
		f.mu.Unlock()
		h(w, r)
	}
}

// asServiceTask guards a read/write endpoint: only an orphan service token
// minted for a task may call it (a batch token's leases would die with it).
func (f *fakeVault) asServiceTask(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		m, ok := f.minted[r.Header.Get("X-Vault-Token")]
		f.mu.Unlock()
		if !ok || m.req.Type == "batch" || m.path != "auth/token/create-orphan" {
			vaultErrorResponse(w, http.StatusForbidden, "permission denied")
			return
		}
		h(w, r)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newFakeVault(t *testing.T) *fakeVault {
	t.Helper()
	f := &fakeVault{mux: http.NewServeMux(), pluginPolicies: []string{"default", "swarmvault-plugin"}}
	mounts := map[string]string{"secret/": `{"path":"secret/","type":"kv","options":{"version":"2"}}`,
		"kv1/":    `{"path":"kv1/","type":"kv","options":{"version":"1"}}`,
		"legacy/": `{"path":"legacy/","type":"generic","options":null}`,
		"pki/":    `{"path":"pki/","type":"pki","options":null}`}
	f.handleTokens()
	f.mux.HandleFunc("/v1/sys/internal/ui/mounts/", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		f.mountLookup.Add(1)
		p := strings.TrimPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/")
		if strings.HasPrefix(p, "denied/") {
			vaultErrorResponse(w, http.StatusForbidden, "preflight capability check returned 403, please ensure client's policies grant access to path \"denied/x/\"")
			return
		}
		for prefix, body := range mounts {
			if strings.HasPrefix(p+"/", prefix) {
				writeJSON(w, http.StatusOK, `{"data":`+body+`}`)
				return
			}
		}
		vaultErrorResponse(w, http.StatusForbidden, "preflight capability check returned 403")
	}))
	// Vault answers an unknown path with 404 and an empty error list.
	f.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, `{"errors":[]}`)
	})
	f.mux.HandleFunc("/v1/secret/data/garbage", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `<html>proxy error</html>`)
	}))
	f.handleKVv2("app/db", 1, `{"username":"app","password":`+jsonString(testPassword)+`}`)
	f.mux.HandleFunc("/v1/kv1/app/db", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"data":{"password":`+jsonString(testPassword)+`}}`)
	}))
	f.mux.HandleFunc("/v1/legacy/app/db", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"data":{"password":`+jsonString(testPassword)+`}}`)
	}))
	f.mux.HandleFunc("/v1/secret/data/deleted", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, `{"data":{"data":null,"metadata":{"created_time":"2026-01-01T00:00:00Z","deletion_time":"2026-01-02T00:00:00Z","destroyed":false,"version":2}}}`)
	}))
	f.mux.HandleFunc("/v1/secret/data/destroyed", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, `{"data":{"data":null,"metadata":{"created_time":"2026-01-01T00:00:00Z","deletion_time":"","destroyed":true,"version":4}}}`)
	}))
	f.mux.HandleFunc("/v1/secret/data/forbidden", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		vaultErrorResponse(w, http.StatusForbidden, "1 error occurred:\n\t* permission denied\n\n")
	}))
	f.mux.HandleFunc("/v1/secret/data/sealed", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		vaultErrorResponse(w, http.StatusServiceUnavailable, "Vault is sealed")
	}))
	f.mux.HandleFunc("/v1/secret/data/limited", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		vaultErrorResponse(w, http.StatusTooManyRequests, `request path "secret/data/limited": rate limit quota exceeded`)
	}))
	f.mux.HandleFunc("/v1/secret/data/backend", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		vaultErrorResponse(w, http.StatusInternalServerError, "1 error occurred:\n\t* failed to verify connection: dial tcp 127.0.0.1:5433: connect: connection refused\n\n")
	}))
	f.mux.HandleFunc("/v1/secret/data/teapot", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		vaultErrorResponse(w, http.StatusTeapot, "I'm a teapot")
	}))
	f.mux.HandleFunc("/v1/secret/data/slow", f.asTask(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	f.mux.HandleFunc("/v1/database/creds/app", f.asServiceTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"lease_id":"database/creds/app/x","lease_duration":3600,"data":{"username":"v-app-`+r.URL.Query().Get("suffix")+`","password":"dyn-pw"}}`)
	}))
	f.mux.HandleFunc("/v1/pki/issue/web", f.asServiceTask(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			vaultErrorResponse(w, http.StatusMethodNotAllowed, "unsupported operation")
			return
		}
		writeJSON(w, http.StatusOK, `{"data":{"certificate":"CERT for `+body["common_name"]+`","private_key":"KEY"}}`)
	}))
	f.Server = httptest.NewServer(f.wrapAtSource(f.mux))
	t.Cleanup(f.Close)
	return f
}

// handleKVv2 serves secret/data/<path> with the given data at version
// latest, and 404 for any other ?version=.
func (f *fakeVault) handleKVv2(path string, latest int, data string) {
	f.mux.HandleFunc("/v1/secret/data/"+path, f.asTask(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("version")
		if v != "" && v != "1" {
			writeJSON(w, http.StatusNotFound, `{"errors":[]}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"data":{"data":`+data+`,"metadata":{"version":1,"deletion_time":"","destroyed":false}}}`)
	}))
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

func vaultErrorResponse(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, `{"errors":[`+jsonString(msg)+`]}`)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func newTestProvider(t *testing.T, addr string, opts Options) (*Provider, *bytes.Buffer) {
	t.Helper()
	log, logs := vaulttest.Logger()
	return New(vaulttest.Client(t, addr, pluginToken), log, opts), logs
}

func request(labels map[string]string) Request {
	return Request{
		Request: secrets.Request{SecretName: "db_pw", SecretLabels: labels, ServiceName: "app", TaskID: "task1"},
		NodeID:  "node1",
	}
}

func TestGetSecret(t *testing.T) {
	vault := newFakeVault(t)
	tests := []struct {
		name      string
		labels    map[string]string
		want      string
		wantReuse bool
		wantErr   string
	}{
		{name: "KV v2 field", labels: map[string]string{"vault.path": "secret/app/db", "vault.field": "password"}, want: testPassword},
		{name: "KV v2 pinned version", labels: map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.version": "1"}, want: "app"},
		{name: "KV v1 field", labels: map[string]string{"vault.path": "kv1/app/db", "vault.field": "password"}, want: testPassword},
		{name: "pre-0.10 generic mount reads as KV v1", labels: map[string]string{"vault.path": "legacy/app/db", "vault.field": "password"}, want: testPassword},
		{name: "reuse on request", labels: map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"}, want: "app", wantReuse: true},
		{
			name:    "bad label fails before Vault",
			labels:  map[string]string{"vault.path": "secret/app/db", "vault.format": "xml"},
			wantErr: "secret db_pw: label vault.format=\"xml\" is not a format: use raw, json, env or template (Vault path secret/app/db)",
		},
		{
			name:    "missing KV v2 path",
			labels:  map[string]string{"vault.path": "secret/app/nope"},
			wantErr: "secret db_pw: no secret at Vault path secret/app/nope: check label vault.path",
		},
		{
			name:    "missing KV v2 version",
			labels:  map[string]string{"vault.path": "secret/app/db", "vault.version": "7"},
			wantErr: "secret db_pw: Vault path secret/app/db has no version 7: check labels vault.path and vault.version",
		},
		{
			name:    "missing KV v1 path",
			labels:  map[string]string{"vault.path": "kv1/app/nope"},
			wantErr: "secret db_pw: no secret at Vault path kv1/app/nope: check label vault.path",
		},
		{
			name:    "version on KV v1",
			labels:  map[string]string{"vault.path": "kv1/app/db", "vault.version": "2"},
			wantErr: "secret db_pw: label vault.version=2 cannot apply to Vault path kv1/app/db: mount kv1/ is KV v1, which keeps no versions",
		},
		{
			name:    "deleted version",
			labels:  map[string]string{"vault.path": "secret/deleted"},
			wantErr: "secret db_pw: version 2 of Vault path secret/deleted is deleted: undelete it (vault kv undelete) or set label vault.version to a live version",
		},
		{
			name:    "destroyed version",
			labels:  map[string]string{"vault.path": "secret/destroyed"},
			wantErr: "secret db_pw: version 4 of Vault path secret/destroyed is destroyed: set label vault.version to a live version or write a new one",
		},
		{
			name:    "permission denied on the read",
			labels:  map[string]string{"vault.path": "secret/forbidden"},
			wantErr: "secret db_pw: permission denied to read Vault path secret/forbidden: the token's policies must grant read on secret/data/forbidden",
		},
		{
			name:    "permission denied on the mount look-up",
			labels:  map[string]string{"vault.path": "denied/x"},
			wantErr: "secret db_pw: Vault path denied/x is on no mount the token may read: check label vault.path (its first segment is the mount, e.g. secret/) and that the token's policies grant read on the path",
		},
		{
			name:    "a sealed Vault is named, not the path or the policies",
			labels:  map[string]string{"vault.path": "secret/sealed"},
			wantErr: "secret db_pw: Vault is sealed, so the plugin cannot read path secret/sealed: unseal it (vault operator unseal); swarm retries the task",
		},
		{
			name:    "a rate limit quota",
			labels:  map[string]string{"vault.path": "secret/limited"},
			wantErr: "secret db_pw: Vault's rate limit quota refused the call (HTTP 429: request path \"secret/data/limited\": rate limit quota exceeded), so the plugin cannot read path secret/limited: raise the quota (vault read sys/quotas/rate-limit/<name>) or start fewer tasks at once; swarm retries the task",
		},
		{
			name:    "a failure of Vault's or its backend's is not a refusal: Vault's cause is the news",
			labels:  map[string]string{"vault.path": "secret/backend"},
			wantErr: "secret db_pw: Vault failed to read path secret/backend (HTTP 500: failed to verify connection: dial tcp 127.0.0.1:5433: connect: connection refused): fix what Vault names (its storage, or the database or CA behind the path); swarm retries the task",
		},
		{
			name:    "other Vault errors keep Vault's words on one line",
			labels:  map[string]string{"vault.path": "secret/teapot"},
			wantErr: "secret db_pw: Vault refused to read path secret/teapot (HTTP 418: I'm a teapot)",
		},
		{
			name:    "an answer that is not Vault's",
			labels:  map[string]string{"vault.path": "secret/garbage"},
			wantErr: "secret db_pw: Vault's answer for path secret/garbage cannot be read (error encountered while reading secret at secret/data/garbage: invalid character '<' looking for beginning of value): check that VAULT_ADDR points at Vault",
		},
		{
			name:    "not a KV mount",
			labels:  map[string]string{"vault.path": "pki/issue/web"},
			wantErr: "secret db_pw: Vault path pki/issue/web is on a pki mount (pki/), not a KV mount: check label vault.path",
		},
		{
			name:    "the mount itself",
			labels:  map[string]string{"vault.path": "secret"},
			wantErr: "secret db_pw: label vault.path=secret names the mount itself: add the secret's path below it, e.g. secret/something",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, logs := newTestProvider(t, vault.URL, Options{})
			resp := p.GetSecret(context.Background(), request(tt.labels))
			if tt.wantErr != "" {
				if resp.Err != tt.wantErr {
					t.Fatalf("Err:\n got %q\nwant %q", resp.Err, tt.wantErr)
				}
				if resp.Value != nil || !resp.DoNotReuse {
					t.Errorf("a failed response carries Value %q, DoNotReuse %v", resp.Value, resp.DoNotReuse)
				}
				// The operator's only view of the failure is the plugin log.
				if !strings.Contains(logs.String(), "level=error") || !strings.Contains(logs.String(), logQuoted(tt.wantErr)) {
					t.Errorf("the log lacks the error line; log:\n%s", logs.String())
				}
			} else {
				if resp.Err != "" {
					t.Fatalf("unexpected Err: %s", resp.Err)
				}
				if string(resp.Value) != tt.want {
					t.Errorf("Value = %q, want %q", resp.Value, tt.want)
				}
				if resp.DoNotReuse == tt.wantReuse {
					t.Errorf("DoNotReuse = %v, want %v", resp.DoNotReuse, !tt.wantReuse)
				}
			}
			for _, leak := range []string{"s3cr3t", "plugin-token-value"} {
				if strings.Contains(logs.String(), leak) || strings.Contains(resp.Err, leak) {
					t.Errorf("log or Err contains %q:\n%s", leak, logs.String())
				}
			}
		})
	}
}

// logQuoted is how logrus's text formatter writes a message that needs
// quoting (%q), so the test can find the exact error text in the log.
func logQuoted(s string) string {
	return strings.Trim(strconv.Quote(s), `"`)
}

func TestGetSecretLogsFieldsOfTheRequest(t *testing.T) {
	vault := newFakeVault(t)
	p, logs := newTestProvider(t, vault.URL, Options{})
	p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}))
	for _, want := range []string{"msg=\"secret delivered\"", "secret=db_pw", "service=app", "task_id=task1", "node_id=node1", "path=secret/app/db", "format=raw"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestMountVersionIsCached(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	now := time.Now()
	p.mounts = vaultkv.NewCache(DefaultMountCacheTTL, func() time.Time { return now })
	p.sources = newSourceCache(0) // each request reads
	for range 3 {
		if resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/app/db"})); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	if n := vault.mountLookup.Load(); n != 1 {
		t.Errorf("mount looked up %d times for 3 reads, want 1", n)
	}

	// Expired entries are looked up again: a mount may be upgraded to KV v2.
	now = now.Add(DefaultMountCacheTTL + time.Second)
	p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/app/db"}))
	if n := vault.mountLookup.Load(); n != 2 {
		t.Errorf("mount looked up %d times after expiry, want 2", n)
	}
}

func TestGetSecretDeadline(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{Timeout: 200 * time.Millisecond})
	start := time.Now()
	resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/slow"}))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("request took %v despite a 200ms deadline", took)
	}
	want := "secret db_pw: Vault did not answer in time to read path secret/slow: check Vault's health or raise VAULT_CLIENT_TIMEOUT"
	if resp.Err != want {
		t.Errorf("Err:\n got %q\nwant %q", resp.Err, want)
	}
}

func TestGetSecretVaultDown(t *testing.T) {
	vault := newFakeVault(t)
	addr := vault.URL
	vault.Close()
	p, _ := newTestProvider(t, addr, Options{})
	resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/app/db"}))
	wantPrefix := "secret db_pw: cannot reach Vault to create a token for service app: dial tcp " + strings.TrimPrefix(addr, "http://") + ": connect: connection refused; check VAULT_ADDR"
	if !strings.HasPrefix(resp.Err, wantPrefix) {
		t.Errorf("Err:\n got %q\nwant prefix %q", resp.Err, wantPrefix)
	}
}

func TestGetSecretRecoversFromPanic(t *testing.T) {
	vault := newFakeVault(t)
	p, logs := newTestProvider(t, vault.URL, Options{})
	p.mounts = nil // any use panics
	resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": "secret/app/db"}))
	if want := "swarmvault internal error serving secret db_pw: see the plugin log"; resp.Err != want {
		t.Errorf("Err = %q, want %q", resp.Err, want)
	}
	if !strings.Contains(logs.String(), "internal error") {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}

// Rotation reads a secret's current version as the service's tasks would,
// one read token per policy set however many checks.
func TestCurrentVersion(t *testing.T) {
	vault := newFakeVault(t)
	vault.mux.HandleFunc("/v1/secret/data/app/rotating", vault.asTask(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"data":{"data":{"pw":"rot-value-9f3"},"metadata":{"version":7,"created_time":"2026-11-26T10:00:00.5Z"}}}`)
	}))
	p, logs := newTestProvider(t, vault.URL, Options{})
	req := taskRequest(map[string]string{"vault.path": "secret/app/rotating", "vault.rotate": "true"})
	req.TaskID, req.TaskName = "", ""
	for range 3 {
		v, err := p.CurrentVersion(context.Background(), req)
		if err != nil || v.Number != 7 || !v.Created.Equal(time.Date(2026, 11, 26, 10, 0, 0, 5e8, time.UTC)) {
			t.Fatalf("CurrentVersion: %+v %v", v, err)
		}
	}
	// Shared by every service of the policy set, it names none of them.
	if m := vault.mintedTokens(); len(m) != 1 || m[0].req.Type != "batch" || !reflect.DeepEqual(m[0].req.Metadata, map[string]string{"purpose": "shared-read"}) {
		t.Errorf("minted %+v, want one batch token that names no service", m)
	}
	_, err := p.CurrentVersion(context.Background(), taskRequest(map[string]string{"vault.path": "kv1/app/db", "vault.rotate": "true"}))
	if !errors.Is(err, ErrNotVersioned) {
		t.Errorf("KV v1: %v", err)
	}
	if strings.Contains(logs.String(), "rot-value-9f3") {
		t.Errorf("a value reached the log: %s", logs)
	}
}

// Services whose tokens get the same policies read a secret once a round.
func TestReadScope(t *testing.T) {
	policies, _ := ParsePolicyTemplate(`team-{{serviceLabel "team"}}`)
	p, _ := newTestProvider(t, "http://127.0.0.1:1", Options{Policies: policies})
	scope := func(service, team, path string) string {
		req := taskRequest(map[string]string{"vault.path": path, "vault.rotate": "true"})
		req.ServiceName, req.ServiceLabels = service, map[string]string{"team": team}
		s, err := p.ReadScope(req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if a, b := scope("app", "pay", "secret/db"), scope("batch", "pay", "secret/db"); a != b {
		t.Errorf("two services of one policy set: scopes %q and %q", a, b)
	}
	if a, b := scope("app", "pay", "secret/db"), scope("app", "ops", "secret/db"); a == b {
		t.Errorf("two policy sets share scope %q", a)
	}
	if a, b := scope("app", "pay", "secret/db"), scope("app", "pay", "secret/api"); a == b {
		t.Errorf("two paths share scope %q", a)
	}
}
