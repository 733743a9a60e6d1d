package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestMetricsAndProbes(t *testing.T) {
	m := New()
	m.Request("kv", "ok", 20*time.Millisecond)
	m.Request("kv", "denied", time.Millisecond)
	m.Login("approle", false)
	m.Leading(true)
	m.Rollout("started")
	m.Tracked(7)
	m.Renewal(true)
	m.Revocation(false)
	m.TokenTTL(func() float64 { return 3599 })

	// A Vault that answers 403 to a secret path, and one that is down.
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer vault.Close()
	c := &http.Client{Transport: m.Transport(http.DefaultTransport)}
	if resp, err := c.Get(vault.URL + "/v1/secret/data/team-a/db-password"); err == nil {
		resp.Body.Close()
	}
	c.Post(vault.URL+"/v1/auth/token/create/swarmvault", "application/json", nil)
	if _, err := c.Get("http://127.0.0.1:1/v1/sys/internal/ui/mounts/secret/x"); err == nil {
		t.Fatal("a request to port 1 was answered")
	}

	ready := errors.New("no Vault token yet: the first login has not succeeded (see the plugin's log)")
	h := m.Handler(func() error { return ready })
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`swarmvault_requests_total{outcome="ok",type="kv"} 1`,
		`swarmvault_requests_total{outcome="denied",type="kv"} 1`,
		`swarmvault_request_duration_seconds_count{type="kv"} 2`,
		`swarmvault_logins_total{method="approle",outcome="failed"} 1`,
		`swarmvault_leader 1`,
		`swarmvault_rollouts_total{outcome="started"} 1`,
		`swarmvault_tracked_credentials 7`,
		`swarmvault_renewals_total{outcome="ok"} 1`,
		`swarmvault_revocations_total{outcome="failed"} 1`,
		`swarmvault_vault_requests_total{operation="read",status="403"} 1`,
		`swarmvault_vault_requests_total{operation="token_create",status="403"} 1`,
		`swarmvault_vault_requests_total{operation="mount_lookup",status="error"} 1`,
		`swarmvault_token_ttl_seconds 3599`,
		`go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Bounded labels: no path reaches a series.
	if strings.Contains(body, "team-a") || strings.Contains(body, "db-password") {
		t.Errorf("a secret path in /metrics")
	}
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: no Vault token yet") {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	ready = nil
	if code, body := get(t, h, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
}

func TestOperation(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/v1/auth/token/create", "token_create"},
		{"POST", "/v1/auth/token/create-orphan", "token_create"},
		{"PUT", "/v1/auth/token/create/swarmvault-tasks", "token_create"},
		{"PUT", "/v1/auth/token/renew-accessor", "token_renew"},
		{"PUT", "/v1/auth/token/revoke-accessor", "token_revoke"},
		{"PUT", "/v1/auth/token/renew-self", "own_token"},
		{"GET", "/v1/auth/token/lookup-self", "own_token"},
		{"PUT", "/v1/auth/approle/login", "login"},
		{"PUT", "/v1/auth/cert/login", "login"},
		{"PUT", "/v1/sys/leases/renew", "lease_renew"},
		{"GET", "/v1/sys/internal/ui/mounts/secret/app/db", "mount_lookup"},
		{"POST", "/v1/sys/capabilities-self", "capabilities"},
		{"PUT", "/v1/sys/wrapping/unwrap", "wrapping"},
		{"GET", "/v1/secret/data/app/db", "read"},
		{"LIST", "/v1/secret/metadata/swarmvault/state", "list"},
		{"DELETE", "/v1/secret/metadata/swarmvault/state/x", "delete"},
		{"PUT", "/v1/database/creds/app", "write"},
	} {
		if got := Operation(c.method, c.path); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
}

// Without METRICS_ADDR the plugin still has its Metrics, and Serve serves
// nothing: it returns at once, before its context ends.
func TestServeWithoutAddrServesNothing(t *testing.T) {
	done := make(chan error, 1)
	go func() { done <- New().Serve(t.Context(), "", func() error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve with no address is still serving")
	}
}
