package provider

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Identical concurrent requests for a vault.reuse=true secret share one
// Vault read, and its value serves the next ones for REUSE_CACHE_TTL.
func TestReuseReadsAreSharedAndKept(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{ReuseCacheTTL: DefaultReuseCacheTTL})
	reuse := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := reuse
			req.TaskID = "t" + string(rune('a'+i))
			if resp := p.GetSecret(context.Background(), req); resp.Err != "" || string(resp.Value) != "app" || resp.DoNotReuse {
				t.Errorf("Value %q Err %q DoNotReuse %v", resp.Value, resp.Err, resp.DoNotReuse)
			}
		}()
	}
	wg.Wait()
	// Concurrent ones may be in one read or, if the first has ended, served
	// from what it kept: either way one read.
	if n := vault.secretReads(); n != 1 {
		t.Errorf("16 requests for one reuse secret: %d Vault reads, want 1", n)
	}

	// Another policy set, another format: values of their own.
	other := reuse
	other.ServiceName = "other"
	json := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true", "vault.format": "json"})
	for _, req := range []Request{other, json} {
		if resp := p.GetSecret(context.Background(), req); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	if n := vault.secretReads(); n != 3 {
		t.Errorf("two other keys: %d reads, want 3", n)
	}
	if resp := p.GetSecret(context.Background(), json); string(resp.Value) != `"app"` {
		t.Errorf("vault.format=json from the cache: %q", resp.Value)
	}

	// Past REUSE_CACHE_TTL, Vault again.
	now := time.Now()
	p.reused.now = func() time.Time { return now.Add(DefaultReuseCacheTTL) }
	p.GetSecret(context.Background(), reuse)
	if n := vault.secretReads(); n != 4 {
		t.Errorf("after REUSE_CACHE_TTL: %d reads, want 4", n)
	}
	p.reused.now = time.Now

	// A rotation forgets the secret for every policy set.
	p.GetSecret(context.Background(), reuse)
	p.ForgetReused(other.SecretLabels)
	p.GetSecret(context.Background(), reuse)
	p.GetSecret(context.Background(), other)
	if n := vault.secretReads(); n != 6 {
		t.Errorf("after ForgetReused: %d reads, want 6", n)
	}
}

// Per-task values are never kept: each task reads Vault.
func TestTaskValuesAreNotKept(t *testing.T) {
	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	task := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username"})
	for i := range 3 {
		req := task
		req.TaskID = "t" + string(rune('a'+i))
		p.GetSecret(context.Background(), req)
	}
	n := vault.secretReads()
	if n != 3 || p.reused.len() != 0 {
		t.Errorf("three tasks: %d reads, %d values kept; want 3 and 0", n, p.reused.len())
	}
}

func TestReuseCache(t *testing.T) {
	ctx := context.Background()
	labels := map[string]string{"vault.path": "secret/a", "com.docker.stack.namespace": "x"}
	policies := []string{"p"}
	var calls atomic.Int32
	read := func(value string, err error) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) {
			calls.Add(1)
			return []byte(value), err
		}
	}

	t.Run("errors are not kept", func(t *testing.T) {
		c := newReuseCache(time.Minute)
		calls.Store(0)
		if _, err := c.readThrough(ctx, labels, policies, time.Second, read("", errors.New("sealed"))); err == nil {
			t.Fatal("no error")
		}
		if v, err := c.readThrough(ctx, labels, policies, time.Second, read("v", nil)); err != nil || string(v) != "v" || calls.Load() != 2 {
			t.Errorf("%q %v, %d reads", v, err, calls.Load())
		}
	})

	t.Run("disabled", func(t *testing.T) {
		c := newReuseCache(-1)
		calls.Store(0)
		c.readThrough(ctx, labels, policies, time.Second, read("v", nil))
		c.readThrough(ctx, labels, policies, time.Second, read("v", nil))
		if calls.Load() != 2 {
			t.Errorf("REUSE_CACHE_TTL=0: %d reads, want 2", calls.Load())
		}
	})

	t.Run("labels other than vault.* do not split the key", func(t *testing.T) {
		c := newReuseCache(time.Minute)
		calls.Store(0)
		c.readThrough(ctx, labels, policies, time.Second, read("v", nil))
		c.readThrough(ctx, map[string]string{"vault.path": "secret/a", "com.docker.stack.namespace": "y"}, policies, time.Second, read("v", nil))
		if calls.Load() != 1 {
			t.Errorf("%d reads, want 1", calls.Load())
		}
	})

	// A read that began before a forget may hold the old value: it is
	// not kept, and nobody joins it after the forget.
	t.Run("forget during a read", func(t *testing.T) {
		c := newReuseCache(time.Minute)
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan []byte)
		go func() {
			v, _ := c.readThrough(ctx, labels, policies, time.Second, func(context.Context) ([]byte, error) {
				close(started)
				<-release
				return []byte("old"), nil
			})
			done <- v
		}()
		<-started
		c.forget(labels)
		if v, _ := c.readThrough(ctx, labels, policies, time.Second, read("new", nil)); string(v) != "new" {
			t.Errorf("after the forget: %q, want new", v)
		}
		close(release)
		<-done
		if v, _ := c.readThrough(ctx, labels, policies, time.Second, read("newer", nil)); string(v) != "new" {
			t.Errorf("kept: %q, want new (the read begun before the forget must not be kept)", v)
		}
	})

	// A caller that gives up does not fail the read the others wait for.
	t.Run("a cancelled caller", func(t *testing.T) {
		c := newReuseCache(time.Minute)
		cctx, cancel := context.WithCancel(ctx)
		started, release := make(chan struct{}), make(chan struct{})
		first := make(chan error)
		go func() {
			_, err := c.readThrough(cctx, labels, policies, time.Second, func(rctx context.Context) ([]byte, error) {
				close(started)
				<-release
				return []byte("v"), rctx.Err()
			})
			first <- err
		}()
		<-started
		// The second joins the read, or finds what it kept: "v" either way.
		second := make(chan []byte)
		go func() {
			v, _ := c.readThrough(ctx, labels, policies, time.Second, read("unused", nil))
			second <- v
		}()
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("the cancelled caller: %v", err)
		}
		close(release)
		if v := <-second; string(v) != "v" {
			t.Errorf("the other caller: %q, want the shared read's v", v)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		c := newReuseCache(time.Minute)
		for i := range maxReused + 10 {
			c.readThrough(ctx, map[string]string{"vault.path": "secret/" + string(rune(0x100+i))}, policies, time.Second, read("v", nil))
		}
		if n := c.len(); n != maxReused {
			t.Errorf("%d values kept, want %d", n, maxReused)
		}
	})
}

// A kept vault.reuse value is given without asking the Tracker whether the
// task holds it already (a Docker call): giving it again costs nothing. A
// value not kept is admitted first, and a re-fetch refused as before.
func TestKeptReuseValueSkipsTheTracker(t *testing.T) {
	vault := newFakeVault(t)
	tr := &fakeTracker{refuse: map[string]bool{"running": true}}
	p, _ := newTestProvider(t, vault.URL, Options{Tracker: tr, ReuseCacheTTL: DefaultReuseCacheTTL})
	reuse := taskRequest(map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"})
	running := reuse
	running.TaskID = "running"
	if resp := p.GetSecret(context.Background(), running); resp.Err == "" {
		t.Errorf("a re-fetch with nothing kept was served")
	}
	for range 3 {
		if resp := p.GetSecret(context.Background(), reuse); resp.Err != "" {
			t.Fatal(resp.Err)
		}
	}
	if resp := p.GetSecret(context.Background(), running); resp.Err != "" {
		t.Errorf("the kept value, to a task that holds it: %s", resp.Err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.admitted) != 2 {
		t.Errorf("Tracker asked %d times, want 2 (the refused re-fetch, the first read)", len(tr.admitted))
	}
}

// Two secrets whose labels differ never share a kept value, whatever bytes
// their values hold: a NUL in vault.template once made these two one key,
// and the second secret was served the first's value.
func TestReuseKeysDoNotCollide(t *testing.T) {
	smuggled := map[string]string{"vault.path": "secret/app/db", "vault.reuse": "true", "vault.template": "{{.password}}\x00vault.version=3"}
	pinned := map[string]string{"vault.path": "secret/app/db", "vault.reuse": "true", "vault.template": "{{.password}}", "vault.version": "3"}
	if reuseKey(smuggled, []string{"app"}) == reuseKey(pinned, []string{"app"}) {
		t.Error("the two label sets share a key")
	}
	if policyKey([]string{"a,b"}, "x") == policyKey([]string{"a", "b"}, "x") || policyKey([]string{"a"}, "\x00b") == policyKey([]string{"a\x00"}, "b") {
		t.Error("two policy sets share a key")
	}

	vault := newFakeVault(t)
	p, _ := newTestProvider(t, vault.URL, Options{})
	if resp := p.GetSecret(context.Background(), taskRequest(smuggled)); resp.Err != "" || string(resp.Value) != testPassword+"\x00vault.version=3" {
		t.Fatalf("Value %q Err %q", resp.Value, resp.Err)
	}
	// The fake keeps version 1 only: read from Vault, the pinned secret fails.
	resp := p.GetSecret(context.Background(), taskRequest(pinned))
	if want := "secret db_pw: Vault path secret/app/db has no version 3: check labels vault.path and vault.version"; resp.Err != want {
		t.Errorf("the pinned secret: Value %q Err %q, want Err %q", resp.Value, resp.Err, want)
	}
}
