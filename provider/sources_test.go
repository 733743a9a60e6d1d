package provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// groupedCreds serves database/creds/grouped, a new user at every read, as
// Vault's database engine does, and counts the reads.
func groupedCreds(t *testing.T, vault *fakeVault) *atomic.Int32 {
	t.Helper()
	var reads atomic.Int32
	vault.mux.HandleFunc("/v1/database/creds/grouped", vault.asServiceTask(func(w http.ResponseWriter, r *http.Request) {
		n := reads.Add(1)
		writeJSON(w, http.StatusOK, fmt.Sprintf(`{"lease_id":"database/creds/grouped/%d","lease_duration":3600,"renewable":true,"data":{"username":"v-user-%d","password":"pw-%d"}}`, n, n, n))
	}))
	return &reads
}

// The secrets of one task that name the same dynamic source get one Vault
// read: the username in one file is the user whose password is in the
// other, and the lifecycle is told of one credential. Another task, or
// another vault.group, gets its own.
func TestATasksSecretsFromOneSourceShareOneCredential(t *testing.T) {
	vault := newFakeVault(t)
	reads := groupedCreds(t, vault)
	tr := &fakeTracker{}
	p, logs := newTestProvider(t, vault.URL, Options{Tracker: tr})
	get := func(taskID, secret string, labels map[string]string) string {
		t.Helper()
		req := taskRequest(labels)
		req.TaskID, req.SecretName = taskID, secret
		resp := p.GetSecret(context.Background(), req)
		if resp.Err != "" {
			t.Fatalf("%s %s: %s", taskID, secret, resp.Err)
		}
		return string(resp.Value)
	}
	creds := func(field string, more ...string) map[string]string {
		l := map[string]string{"vault.type": "read", "vault.path": "database/creds/grouped", "vault.field": field}
		for i := 0; i+1 < len(more); i += 2 {
			l[more[i]] = more[i+1]
		}
		return l
	}

	user, pw := get("t1", "db_user", creds("username")), get("t1", "db_password", creds("password"))
	env := get("t1", "db_env", map[string]string{"vault.type": "read", "vault.path": "database/creds/grouped", "vault.format": "env"})
	if user != "v-user-1" || pw != "pw-1" || !strings.Contains(env, "password=pw-1") || reads.Load() != 1 {
		t.Errorf("task t1: user %q, password %q, env %q from %d reads; want one user, one read", user, pw, env, reads.Load())
	}
	if n := len(vault.mintedTokens()); n != 1 {
		t.Errorf("%d task tokens minted for one source, want 1", n)
	}
	if len(tr.credentials) != 1 || tr.credentials[0].LeaseID != "database/creds/grouped/1" {
		t.Errorf("the lifecycle was told of %+v, want the one lease", tr.credentials)
	}

	// Another task: its own user.
	if user, pw := get("t2", "db_user", creds("username")), get("t2", "db_password", creds("password")); user != "v-user-2" || pw != "pw-2" {
		t.Errorf("task t2: %q, %q, want a user of its own", user, pw)
	}
	// A second credential from the same path in one task: vault.group.
	if user := get("t1", "db_admin", creds("username", "vault.group", "admin")); user != "v-user-3" {
		t.Errorf("vault.group=admin: %q, want a user of its own", user)
	}
	// Other parameters are another source.
	if user := get("t1", "db_other", creds("username", "vault.param.x", "1")); user != "v-user-4" {
		t.Errorf("other vault.param.*: %q, want a user of its own", user)
	}
	// The answer is kept for a moment only: the engine asks for a task's
	// secrets one after the other.
	later := time.Now().Add(ReadTokenTTL(p.opts.Timeout))
	p.sources.now = func() time.Time { return later }
	if user := get("t1", "db_late", creds("username")); user != "v-user-5" {
		t.Errorf("after the window: %q, want a new read", user)
	}
	if reads.Load() != 5 || len(tr.credentials) != 5 {
		t.Errorf("%d reads and %d credentials tracked, want 5 of each", reads.Load(), len(tr.credentials))
	}
	if strings.Contains(logs.String(), "pw-") {
		t.Error("a password is in the log")
	}
}

// Two vault.type=token secrets of one task with the same token labels are
// one token: the accessor in one file is the token's in the other.
func TestATasksTokenSecretsShareOneToken(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	token := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token"}))
	accessor := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.field": "accessor"}))
	m := vault.mintedTokens()
	if token.Err != "" || accessor.Err != "" || len(m) != 1 || string(token.Value) != "task-token-0" || string(accessor.Value) != "acc-task-token-0" {
		t.Errorf("token %q / %q, accessor %q / %q, %d minted: want one token and its accessor", token.Value, token.Err, accessor.Value, accessor.Err, len(m))
	}
	// Other token labels are another token.
	if resp := p.GetSecret(context.Background(), taskRequest(map[string]string{"vault.type": "token", "vault.token.ttl": "5m"})); resp.Err != "" || len(vault.mintedTokens()) != 2 {
		t.Errorf("vault.token.ttl=5m: %q, %d minted, want a token of its own", resp.Err, len(vault.mintedTokens()))
	}
}

// Nothing is shared that should not be: a value wrapped at its source
// (each file needs a wrapping token of its own), an answer whose secret
// was not delivered (refused by the tracker, or failing to render), and
// any answer across tasks.
func TestWhatIsNeverShared(t *testing.T) {
	vault := newFakeVault(t)
	reads := groupedCreds(t, vault)
	tr := &fakeTracker{}
	p, _ := newTestProvider(t, vault.URL, Options{Tracker: tr})
	wrapped := map[string]string{"vault.type": "read", "vault.path": "database/creds/grouped", "vault.wrap": "true"}
	a, b := p.GetSecret(context.Background(), taskRequest(wrapped)), p.GetSecret(context.Background(), taskRequest(wrapped))
	if a.Err != "" || b.Err != "" || string(a.Value) == string(b.Value) || reads.Load() != 2 {
		t.Errorf("wrapped at the source: %q and %q from %d reads, want two wrapping tokens", a.Value, b.Value, reads.Load())
	}

	// A first secret whose field is missing fails alone, and leaves
	// nothing for the next one, which reads anew.
	req := taskRequest(map[string]string{"vault.type": "read", "vault.path": "database/creds/grouped", "vault.field": "nope"})
	req.TaskID = "t2"
	if resp := p.GetSecret(context.Background(), req); resp.Err == "" {
		t.Fatal("a missing field was served")
	}
	req.SecretLabels = map[string]string{"vault.type": "read", "vault.path": "database/creds/grouped", "vault.field": "username"}
	if resp := p.GetSecret(context.Background(), req); resp.Err != "" || string(resp.Value) != "v-user-4" {
		t.Errorf("after a failed first secret: %q %q, want a read of its own", resp.Value, resp.Err)
	}

	// Likewise for a KV secret: the next one reads again.
	kv := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "nope"})
	kv.TaskID = "t4"
	p.GetSecret(context.Background(), kv)
	before := vault.secretReads()
	kv.SecretLabels = map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}
	if resp := p.GetSecret(context.Background(), kv); resp.Err != "" || vault.secretReads() != before+1 {
		t.Errorf("after a failed first KV secret: %q, %d reads, want a read of its own", resp.Err, vault.secretReads()-before)
	}

	// A delivery the tracker refuses leaves nothing either.
	tr.crossed = true
	req.TaskID = "t3"
	if resp := p.GetSecret(context.Background(), req); resp.Err == "" {
		t.Fatal("a crossed request was served")
	}
	tr.crossed = false
	if resp := p.GetSecret(context.Background(), req); resp.Err != "" || string(resp.Value) != "v-user-6" {
		t.Errorf("after a refused first secret: %q %q, want a read of its own", resp.Value, resp.Err)
	}
}
