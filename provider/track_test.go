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
	// crossed refuses at Issued: another request recorded first.
	crossed bool

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
	if f.crossed {
		return fmt.Errorf("%w: task t1 was issued credentials for it by a request this one crossed", ErrRefetch)
	}
	return f.fail
}

// Two requests for one task that cross (a re-fetch served as leadership
// moved, when neither the engine nor STATE_PATH could tell): the one
// whose record comes second is refused by the Tracker, and what it minted
// is revoked, so that no credential is left that nothing follows.
func TestACrossedRequestRevokesWhatItMinted(t *testing.T) {
	for _, labels := range []map[string]string{
		{"vault.type": "token"},
		{"vault.type": "token", "vault.wrap": "true"},
		{"vault.type": "read", "vault.path": "database/creds/app"},
	} {
		vault := newFakeVault(t)
		p, _ := newTestProvider(t, vault.URL, Options{Tracker: &fakeTracker{crossed: true}})
		resp := p.GetSecret(context.Background(), taskRequest(labels))
		if !strings.Contains(resp.Err, "not issued again: task t1 was issued credentials for it by a request this one crossed") || len(resp.Value) != 0 {
			t.Errorf("%v: Err %q", labels, resp.Err)
		}
		if len(vault.revoked) != 1 || !strings.HasPrefix(vault.revoked[0], "acc-task-token-") {
			t.Errorf("%v: revoked %v, want the minted token", labels, vault.revoked)
		}
	}
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

// A vault.type=token secret whose value cannot be made leaves no live
// token: what can be known before the mint (a field the token's answer
// lacks, a template that fails on it) refuses it before, and a failure
// after the mint revokes the token. The Tracker is told only of a
// delivered token.
func TestATokenWhoseValueFailsIsNotLeftAlive(t *testing.T) {
	for _, tt := range []struct {
		name    string
		labels  map[string]string
		minted  int
		wantErr string
	}{
		{name: "a field a token has not", labels: map[string]string{"vault.type": "token", "vault.field": "tokne"},
			wantErr: `secret db_pw: label vault.field="tokne" names no field of a task token (its fields: accessor, policies, token, ttl)`},
		{name: "a template that fails on any token", labels: map[string]string{"vault.type": "token", "vault.template": "{{.tokne}}"},
			wantErr: `secret db_pw: label vault.template failed on a task token: template: vault.template:1:2: executing "vault.template" at <.tokne>: can't evaluate field tokne in type string`},
		// Vault grants 2h where 1h was asked: only the real answer fails.
		{name: "a template that fails on the token Vault gave", labels: map[string]string{"vault.type": "token", "vault.field": "ttl", "vault.template": "{{if gt . 3600}}{{.renewed}}{{else}}{{.}}{{end}}"},
			minted:  1,
			wantErr: `secret db_pw: label vault.template failed on a task token: it fails on the data (the cause is not shown, as it would quote the secret)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vault := newFakeVault(t)
			vault.grantTTL = 2 * time.Hour
			tr := &fakeTracker{}
			p, logs := newTestProvider(t, vault.URL, Options{Tracker: tr})
			resp := p.GetSecret(context.Background(), taskRequest(tt.labels))
			if resp.Err != tt.wantErr {
				t.Errorf("Err:\n got %q\nwant %q", resp.Err, tt.wantErr)
			}
			minted := vault.mintedTokens()
			vault.mu.Lock()
			revoked := vault.revoked
			vault.mu.Unlock()
			if len(minted) != tt.minted || len(revoked) != tt.minted || tt.minted == 1 && revoked[0] != "acc-task-token-0" {
				t.Errorf("minted %d, revoked %v; want %d minted and revoked", len(minted), revoked, tt.minted)
			}
			if len(tr.credentials) != 0 {
				t.Errorf("the tracker was told of %+v", tr.credentials)
			}
			if strings.Contains(strings.ReplaceAll(logs.String(), "acc-task-token-", ""), "task-token-") {
				t.Errorf("a token in the log:\n%s", logs)
			}
		})
	}
}
