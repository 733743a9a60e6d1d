package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTracker refuses the tasks in refuse and keeps what it is told.
type fakeTracker struct {
	refuse map[string]bool
	fail   error

	mu          sync.Mutex
	admitted    []bool // the credentials argument of each Admit
	credentials []Credentials
}

func (f *fakeTracker) Admit(_ context.Context, req Request, credentials bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.admitted = append(f.admitted, credentials)
	if f.refuse[req.TaskID] {
		return fmt.Errorf("%w: task %s is running", ErrRefetch, req.TaskID)
	}
	return nil
}

func (f *fakeTracker) Issued(_ context.Context, _ Request, c Credentials) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.credentials = append(f.credentials, c)
	return f.fail
}

// A refused re-fetch makes no Vault call and is logged below error level:
// it is expected at every failover.
func TestARefetchIsRefusedBeforeAnyVaultCall(t *testing.T) {
	vault := newFakeVault(t)
	tr := &fakeTracker{refuse: map[string]bool{"t1": true}}
	p, logs := newTestProvider(t, vault.URL, Options{Tracker: tr})
	for _, labels := range []map[string]string{
		{"vault.path": "secret/app/db", "vault.field": "password"},
		{"vault.type": "token"},
	} {
		resp := p.GetSecret(context.Background(), taskRequest(labels))
		if !strings.Contains(resp.Err, "not issued again: task t1 is running") || !resp.DoNotReuse {
			t.Errorf("Err %q", resp.Err)
		}
	}
	if m := vault.mintedTokens(); len(m) != 0 || vault.mountLookup.Load() != 0 {
		t.Errorf("a refused re-fetch called Vault: %d mints, %d mount look-ups", len(m), vault.mountLookup.Load())
	}
	if strings.Contains(logs.String(), "level=error") || strings.Count(logs.String(), "level=info") != 2 {
		t.Errorf("want two info lines, no error:\n%s", logs)
	}
	if fmt.Sprint(tr.admitted) != "[false true]" {
		t.Errorf("Admit told credentials %v, want [false true] (kv, token)", tr.admitted)
	}
}

// What renews and revokes a task's credentials is recorded: a token's
// accessor, a wrapped token's accessor, a dynamic secret's lease with the
// token that read it. A KV read records nothing.
func TestIssuedCredentialsAreRecorded(t *testing.T) {
	vault := newFakeVault(t)
	tr := &fakeTracker{}
	p, _ := newTestProvider(t, vault.URL, Options{Tracker: tr, TokenTTL: 2 * time.Hour})
	for _, labels := range []map[string]string{
		{"vault.path": "secret/app/db", "vault.field": "password"},
		{"vault.type": "token"},
		{"vault.type": "token", "vault.wrap": "true", "vault.token.ttl": "30m"},
		{"vault.type": "read", "vault.path": "database/creds/app"},
	} {
		if resp := p.GetSecret(context.Background(), taskRequest(labels)); resp.Err != "" {
			t.Fatalf("%v: %s", labels, resp.Err)
		}
	}
	if len(tr.credentials) != 3 {
		t.Fatalf("recorded %+v, want 3", tr.credentials)
	}
	for i, want := range []Credentials{
		{TokenTTL: 2 * time.Hour},
		{TokenTTL: 30 * time.Minute},
		{TokenTTL: 2 * time.Hour, LeaseID: "database/creds/app/x", LeaseTTL: time.Hour},
	} {
		got := tr.credentials[i]
		if !strings.HasPrefix(got.Accessor, "acc-task-token-") {
			t.Errorf("credentials %d: accessor %q", i, got.Accessor)
		}
		got.Accessor = ""
		if got != want {
			t.Errorf("credentials %d: %+v, want %+v", i, got, want)
		}
	}
}

// Credentials that could not be recorded are delivered all the same, with
// a warning: the task must not fail because the lifecycle cannot follow it.
func TestUnrecordedCredentialsAreDeliveredWithAWarning(t *testing.T) {
	vault := newFakeVault(t)
	tr := &fakeTracker{fail: errors.New("the plugin's token may not write under STATE_PATH=secret/state")}
	p, logs := newTestProvider(t, vault.URL, Options{Tracker: tr})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.field": "token"}))
	if resp.Err != "" || len(resp.Value) == 0 {
		t.Fatalf("Err %q", resp.Err)
	}
	if !strings.Contains(logs.String(), `level=warning msg="credentials issued but not recorded, so they live for their TTL whatever happens to the task: the plugin's token may not write under STATE_PATH=secret/state"`) {
		t.Errorf("log:\n%s", logs)
	}
}

// A read that fails after its token was minted revokes that token: nothing
// will use it, and nothing would revoke it.
func TestAFailedReadRevokesItsToken(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "read", "vault.path": "database/creds/nope"}))
	if resp.Err == "" {
		t.Fatal("no error")
	}
	m := vault.mintedTokens()
	if len(m) != 1 || len(vault.revoked) != 1 || !strings.HasPrefix(vault.revoked[0], "acc-task-token-") {
		t.Errorf("minted %d, revoked %v", len(m), vault.revoked)
	}
}
