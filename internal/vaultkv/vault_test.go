package vaultkv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
)

// call is one request the fake Vault was sent.
type call struct {
	Method, Path, Query string
	Body                map[string]any
}

func (c call) String() string { return c.Method + " " + c.Path }

// fakeVault answers each request with what answer returns for it, and
// keeps the requests.
type fakeVault struct {
	mu    sync.Mutex
	calls []call
}

func (f *fakeVault) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// newFakeVault starts an httptest Vault; answer gives the status and JSON
// body for each request.
func newFakeVault(t *testing.T, answer func(call) (int, string)) (*fakeVault, *api.Client) {
	t.Helper()
	f := &fakeVault{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &c.Body); err != nil {
				t.Errorf("%s: body is not JSON: %v", c, err)
			}
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		code, body := answer(c)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	cfg := api.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("test-token")
	return f, client
}

// vaultError is Vault's body for a refusal.
func vaultError(msgs ...string) string {
	b, _ := json.Marshal(map[string][]string{"errors": msgs})
	return string(b)
}

func paths(calls []call) string {
	s := make([]string, len(calls))
	for i, c := range calls {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}
