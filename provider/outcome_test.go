package provider

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// observed keeps what an Observer was told.
type observed struct {
	mu  sync.Mutex
	got []string
}

func (o *observed) Request(typ, outcome string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, typ+" "+outcome)
}

// Each way a request ends is told to the Observer once, with an outcome
// from the fixed list.
func TestRequestOutcomes(t *testing.T) {
	vault := newFakeVault(t)
	o := &observed{}
	tr := &fakeTracker{refuse: map[string]bool{"refetched": true}}
	p, _ := newTestProvider(t, vault.URL, Options{Observer: o, Tracker: tr, Timeout: 2 * time.Second})
	denied, _ := newTestProvider(t, vault.URL, Options{Observer: o, TokenRole: "forbidden-role", Timeout: 2 * time.Second})
	down, _ := newTestProvider(t, "http://127.0.0.1:1", Options{Observer: o, Timeout: 2 * time.Second})
	ctx := context.Background()
	ok := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"})
	refetched := taskRequest(map[string]string{"vault.path": "secret/app/db"})
	refetched.TaskID = "refetched"

	p.GetSecret(ctx, taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.feild": "x"}))
	p.GetSecret(ctx, refetched)
	denied.GetSecret(ctx, taskRequest(map[string]string{"vault.type": "token"})) // 403 on its TOKEN_ROLE
	down.GetSecret(ctx, ok)
	want := []string{" label_error", "kv refetch_refused", "token denied", "kv vault_unavailable"}
	if fmt.Sprint(o.got) != fmt.Sprint(want) {
		t.Errorf("outcomes %q, want %q", o.got, want)
	}
	o.got = nil
	if resp := p.GetSecret(ctx, ok); resp.Err != "" || fmt.Sprint(o.got) != "[kv ok]" {
		t.Errorf("a served request: %q, err %s", o.got, resp.Err)
	}
	for _, g := range o.got {
		if strings.Contains(g, "secret/") {
			t.Errorf("a path among the observed labels: %s", g)
		}
	}
}
