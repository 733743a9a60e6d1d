package vaultauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// fakeMethod is an auth method whose logins hand out tok-1, tok-2, …; the
// first failFirst logins fail.
type fakeMethod struct {
	logins    atomic.Int32
	failFirst int32
	renewable bool
	ttl       int
	delay     time.Duration
}

func (f *fakeMethod) Login(ctx context.Context, _ *api.Client) (*api.Secret, error) {
	n := f.logins.Add(1)
	time.Sleep(f.delay)
	if n <= f.failFirst {
		return nil, errors.New("connection refused")
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: fmt.Sprintf("tok-%d", n), Renewable: f.renewable, LeaseDuration: f.ttl}}, nil
}

// renewVault answers renew-self: with ttl while renew returns true, 403 after.
func renewVault(t *testing.T, renew func(token string) bool) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/auth/token/renew-self" {
			http.NotFound(w, r)
			return
		}
		tok := r.Header.Get("X-Vault-Token")
		w.Header().Set("Content-Type", "application/json")
		if !renew(tok) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		fmt.Fprintf(w, `{"auth":{"client_token":%q,"renewable":true,"lease_duration":2}}`, tok)
	}))
	return clientFor(t, srv)
}

func quietLog() (*logrus.Logger, *lockedBuffer) {
	var b lockedBuffer
	l := logrus.New()
	l.SetOutput(&b)
	l.SetLevel(logrus.DebugLevel)
	return l, &b
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startManager(t *testing.T, client *api.Client, method api.AuthMethod) (*Manager, *lockedBuffer) {
	t.Helper()
	log, logs := quietLog()
	m := NewManager(client, method, log)
	m.MinBackoff, m.MaxBackoff, m.CheckInterval = 10*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, logs
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestManagerRenewsThenLogsInAgainWhenRenewalIsRefused(t *testing.T) {
	var renewals atomic.Int32
	client := renewVault(t, func(tok string) bool {
		// tok-1 is renewed once, then refused (revoked); tok-2 renews.
		return tok != "tok-1" || renewals.Add(1) <= 1
	})
	method := &fakeMethod{renewable: true, ttl: 2}
	startManager(t, client, method)
	waitUntil(t, "a second login after the refused renewal", func() bool { return client.Token() == "tok-2" })
	if n := renewals.Load(); n < 2 {
		t.Errorf("tok-1 renewed %d times before the re-login, want a renewal then a refusal", n)
	}
}

func TestManagerRetriesLoginWithBackoff(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &fakeMethod{failFirst: 3}
	_, logs := startManager(t, client, method)
	waitUntil(t, "a login after 3 failures", func() bool { return client.Token() == "tok-4" })
	if n := strings.Count(logs.String(), "Vault login failed"); n != 3 {
		t.Errorf("%d failed logins logged, want 3:\n%s", n, logs.String())
	}
}

func TestReauthIsOneLoginForConcurrentRequests(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &fakeMethod{delay: 20 * time.Millisecond} // not renewable: kept until Reauth
	m, _ := startManager(t, client, method)
	waitUntil(t, "the first login", func() bool { return client.Token() == "tok-1" })

	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Reauth(ctx, "tok-1"); err != nil {
				t.Errorf("Reauth: %v", err)
			}
		}()
	}
	wg.Wait()
	if client.Token() != "tok-2" || method.logins.Load() != 2 {
		t.Errorf("after 20 concurrent Reauth: token %s, %d logins; want tok-2 after 2 logins", client.Token(), method.logins.Load())
	}
	// A request that saw an old token does not cause another login.
	if err := m.Reauth(context.Background(), "tok-1"); err != nil || method.logins.Load() != 2 {
		t.Errorf("Reauth with a stale token: %v, %d logins", err, method.logins.Load())
	}
}

func TestReauthWaitsNoLongerThanTheRequestDeadline(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &fakeMethod{failFirst: 1 << 30}
	m, _ := startManager(t, client, method)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := m.Reauth(ctx, "")
	if took := time.Since(start); took > time.Second {
		t.Errorf("Reauth took %v with a 200ms deadline", took)
	}
	if err == nil || err.Error() != "the plugin cannot log in to Vault: unable to log in to auth method: connection refused" {
		t.Errorf("Reauth: %v", err)
	}
}

func TestManagerLogsInAgainWhenTheTokenFileChanges(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	lookups := map[string]bool{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lookups[r.Header.Get("X-Vault-Token")] = true
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"policies":["default"],"ttl":0,"renewable":false}}`))
	}))
	defer srv.Close()
	client.SetAddress(srv.URL)
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("first\n"), 0o600)
	a, err := NewTokenAuth("", file)
	if err != nil {
		t.Fatal(err)
	}
	startManager(t, client, a)
	waitUntil(t, "login with the first token", func() bool { return client.Token() == "first" })
	os.WriteFile(file, []byte("second\n"), 0o600)
	waitUntil(t, "login with the rotated token", func() bool { return client.Token() == "second" })
}

// switchMethod fails until ok is set.
type switchMethod struct {
	ok     atomic.Bool
	logins atomic.Int32
}

func (s *switchMethod) Login(context.Context, *api.Client) (*api.Secret, error) {
	s.logins.Add(1)
	if !s.ok.Load() {
		return nil, errors.New("HELPER_SERVICE helper has no running tasks")
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: "fresh"}}, nil
}

func TestWaitingRequestCutsTheBackoffShort(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &switchMethod{}
	log, _ := quietLog()
	m := NewManager(client, method, log)
	m.MinBackoff, m.MaxBackoff = 20*time.Millisecond, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	// Let the backoff grow well past a request's deadline.
	waitUntil(t, "8 failed logins", func() bool { return method.logins.Load() >= 8 })
	method.ok.Store(true)

	reqCtx, reqCancel := context.WithTimeout(context.Background(), time.Second)
	defer reqCancel()
	if err := m.Reauth(reqCtx, ""); err != nil {
		t.Fatalf("a request waiting for the login: %v", err)
	}
	if client.Token() != "fresh" {
		t.Errorf("token %q", client.Token())
	}
}

// hangingMethod's first login waits for its context to end, as a Docker or
// Vault call that never answers would; later logins succeed.
type hangingMethod struct{ logins atomic.Int32 }

func (h *hangingMethod) Login(ctx context.Context, _ *api.Client) (*api.Secret, error) {
	if h.logins.Add(1) == 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: "after-hang"}}, nil
}

func TestALoginThatHangsIsCutAtLoginTimeout(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &hangingMethod{}
	log, logs := quietLog()
	m := NewManager(client, method, log)
	m.MinBackoff, m.MaxBackoff, m.LoginTimeout = 10*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	waitUntil(t, "a login after the hung one", func() bool { return client.Token() == "after-hang" })
	if !strings.Contains(logs.String(), "no answer within 100ms (LoginTimeout)") {
		t.Errorf("the hung login is not named:\n%s", logs.String())
	}
}

// A token that cannot be renewed is replaced before it expires, not at the
// first request it fails.
func TestNonRenewableTokenIsReplacedAhead(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &fakeMethod{ttl: 1} // 1 s, not renewable
	startManager(t, client, method)
	start := time.Now()
	waitUntil(t, "a second login", func() bool { return client.Token() == "tok-2" })
	if took := time.Since(start); took >= time.Second {
		t.Errorf("replaced after %v, when the token had expired", took)
	}
}

// sameMethod hands out the same token at every login: a token file or a
// helper secret the operator has not rotated.
type sameMethod struct{ logins atomic.Int32 }

func (s *sameMethod) Login(context.Context, *api.Client) (*api.Secret, error) {
	s.logins.Add(1)
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: "same", LeaseDuration: 1}}, nil
}

// At the end of its life a token is not adopted again as if new: that
// would log in in a loop until it expired. The plugin says what to do.
func TestTheSameTokenIsNotAdoptedAgainAtItsEnd(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &sameMethod{}
	log, logs := quietLog()
	m := NewManager(client, method, log)
	m.MinBackoff, m.MaxBackoff, m.CheckInterval = 200*time.Millisecond, 400*time.Millisecond, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	waitUntil(t, "the token refused as the same again", func() bool { return strings.Contains(logs.String(), "the login gave the same token again") })
	time.Sleep(time.Second)
	if n := method.logins.Load(); n > 6 {
		t.Errorf("%d logins in about 2 s: a login loop", n)
	}
	if client.Token() != "same" {
		t.Errorf("the client dropped the token while it still works: %q", client.Token())
	}
}

// revokeVault records revoke-self calls by token.
func revokeVault(t *testing.T) (*api.Client, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var revoked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/auth/token/revoke-self" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		revoked = append(revoked, r.Header.Get("X-Vault-Token"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	return clientFor(t, srv), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), revoked...)
	}
}

// creatingMethod is fakeMethod for a method whose logins create tokens.
type creatingMethod struct {
	fakeMethod
	creates bool
}

func (c *creatingMethod) CreatesToken() bool { return c.creates }

// revoking runs a Manager over revokeVault, logged in as tok-1; stop ends
// Run and calls Logout, as main does at shutdown.
func revoking(t *testing.T, creates bool, delay time.Duration) (m *Manager, revoked func() []string, stop func()) {
	t.Helper()
	client, revoked := revokeVault(t)
	log, _ := quietLog()
	m = NewManager(client, &creatingMethod{creates: creates}, log)
	m.MinBackoff, m.RevokeDelay = 10*time.Millisecond, delay
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	waitUntil(t, "the first login", func() bool { return client.Token() == "tok-1" })
	return m, revoked, func() {
		cancel()
		<-done
		m.Logout()
	}
}

func TestTokensALoginCreatedAreRevokedWhenReplacedAndAtLogout(t *testing.T) {
	m, revoked, stop := revoking(t, true, 100*time.Millisecond)
	if err := m.Reauth(context.Background(), "tok-1"); err != nil {
		t.Fatal(err)
	}
	// The replaced token lives on for RevokeDelay: read tokens it made may
	// be in use.
	if got := revoked(); len(got) != 0 {
		t.Errorf("revoked at once: %v", got)
	}
	waitUntil(t, "tok-1 revoked", func() bool { return len(revoked()) == 1 })
	stop()
	if got := revoked(); !reflect.DeepEqual(got, []string{"tok-1", "tok-2"}) {
		t.Errorf("revoked %v, want tok-1 then tok-2", got)
	}
}

func TestLogoutRevokesAReplacedTokenAtOnce(t *testing.T) {
	m, revoked, stop := revoking(t, true, time.Hour)
	m.Reauth(context.Background(), "tok-1")
	stop()
	if got := revoked(); len(got) != 2 {
		t.Errorf("revoked %v, want tok-1 and tok-2 without waiting an hour", got)
	}
}

// A token handed to the plugin (the token method, a helper's token) may be
// every manager's: it is never revoked.
func TestATokenHandedToThePluginIsNeverRevoked(t *testing.T) {
	m, revoked, stop := revoking(t, false, 10*time.Millisecond)
	m.Reauth(context.Background(), "tok-1")
	time.Sleep(100 * time.Millisecond)
	stop()
	if got := revoked(); len(got) != 0 {
		t.Errorf("revoked %v", got)
	}
}

// One refusal is one login, however requests interleave with it: a second
// login would spend a secret-id with num_uses for nothing. Requests that saw
// the refused token keep arriving while the new login is under way.
func TestOneRefusalIsOneLogin(t *testing.T) {
	for round := range 20 {
		client := renewVault(t, func(string) bool { return true })
		method := &fakeMethod{delay: 2 * time.Millisecond}
		m, _ := startManager(t, client, method)
		waitUntil(t, "the first login", func() bool { return client.Token() == "tok-1" })
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i%10) * time.Millisecond / 2)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				m.Reauth(ctx, "tok-1")
			}()
		}
		wg.Wait()
		time.Sleep(20 * time.Millisecond)
		if n := method.logins.Load(); n != 2 {
			t.Fatalf("round %d: %d logins for one refusal, want 2 in all", round, n)
		}
	}
}

// /readyz and the metrics read the Manager: no token (and why), then a
// token's time left; each login attempt is told.
func TestReadinessAndLogins(t *testing.T) {
	client := renewVault(t, func(string) bool { return true })
	method := &fakeMethod{failFirst: 2, ttl: 3600} // not renewable: kept
	log, _ := quietLog()
	m := NewManager(client, method, log)
	m.MinBackoff, m.MaxBackoff = 30*time.Millisecond, 60*time.Millisecond
	var mu sync.Mutex
	var logins []bool
	m.Logins = func(ok bool) { mu.Lock(); logins = append(logins, ok); mu.Unlock() }
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "the first login is under way") || m.TTLLeft() != 0 {
		t.Errorf("before Run: %v, %v s left", err, m.TTLLeft())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "a failed login to show", func() bool {
		err := m.Ready()
		return err != nil && strings.Contains(err.Error(), "no Vault token: the login fails (unable to log in to auth method: connection refused)")
	})
	waitUntil(t, "the third login", func() bool { return client.Token() == "tok-3" })
	waitUntil(t, "readiness", func() bool { return m.Ready() == nil })
	if left := m.TTLLeft(); left < 3590 || left > 3600 {
		t.Errorf("%v s left, want about 3600", left)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(logins) != "[false false true]" {
		t.Errorf("logins told %v", logins)
	}
}
