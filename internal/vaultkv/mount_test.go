package vaultkv

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       int
		want       Mount
		wantErr    func(error) bool
	}{
		{name: "kv v1", code: 200, body: `{"data":{"path":"secret/","type":"kv","options":{"version":"1"}}}`,
			want: Mount{Path: "secret/", Version: 1}},
		{name: "kv v2", code: 200, body: `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`,
			want: Mount{Path: "secret/", Version: 2}},
		{name: "generic", code: 200, body: `{"data":{"path":"secret/","type":"generic","options":null}}`,
			want: Mount{Path: "secret/", Version: 1}},
		{name: "not kv", code: 200, body: `{"data":{"path":"secret/","type":"pki","options":null}}`,
			wantErr: func(err error) bool {
				var nk *NotKVError
				return errors.As(err, &nk) && *nk == NotKVError{Path: "secret/app/db", Mount: "secret/", Type: "pki"} &&
					err.Error() == "Vault path secret/app/db is on a pki mount (secret/), not a KV mount"
			}},
		{name: "no data", code: 200, body: `{"data":null}`,
			wantErr: func(err error) bool { return errors.Is(err, ErrNoMount) }},
		{name: "no answer", code: 404, body: `{"errors":[]}`,
			wantErr: func(err error) bool { return errors.Is(err, ErrNoMount) }},
		{name: "no path", code: 200, body: `{"data":{"type":"kv"}}`,
			wantErr: func(err error) bool { return errors.Is(err, ErrNoMount) }},
		{name: "forbidden", code: 403, body: vaultError("preflight capability check returned 403"),
			wantErr: func(err error) bool {
				var re *api.ResponseError
				return Forbidden(err) && errors.As(err, &re) && re.StatusCode == http.StatusForbidden
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, func(call) (int, string) { return tc.code, tc.body })
			m, err := Lookup(context.Background(), client, "secret/app/db")
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Errorf("err = %v (%T), not the one expected", err, err)
				}
			} else if err != nil || m != tc.want {
				t.Errorf("Lookup = %+v, %v; want %+v", m, err, tc.want)
			}
			if got := paths(f.Calls()); got != "GET /v1/sys/internal/ui/mounts/secret/app/db" {
				t.Errorf("calls: %s", got)
			}
		})
	}
}

func TestCache(t *testing.T) {
	f, client := newFakeVault(t, func(c call) (int, string) {
		if c.Path == "/v1/sys/internal/ui/mounts/denied/x" {
			return 403, vaultError("permission denied")
		}
		return 200, `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`
	})
	now := time.Now()
	c := NewCache(time.Minute, func() time.Time { return now })
	ctx := context.Background()
	lookups := func() int {
		n := 0
		for _, c := range f.Calls() {
			if c.Path != "/v1/sys/internal/ui/mounts/denied/x" {
				n++
			}
		}
		return n
	}

	for _, path := range []string{"secret/a", "secret/a", "secret/b/c", "secret"} {
		if m, err := c.Lookup(ctx, client, path); err != nil || m != (Mount{Path: "secret/", Version: 2}) {
			t.Fatalf("Lookup(%s) = %+v, %v", path, m, err)
		}
	}
	if n := lookups(); n != 1 {
		t.Errorf("%d lookups for four paths on one mount, want 1", n)
	}

	// A path that only starts with a mount's name is not on it.
	c.Lookup(ctx, client, "secretx/a")
	if n := lookups(); n != 2 {
		t.Errorf("%d lookups after secretx/a, want 2", n)
	}

	now = now.Add(time.Minute - time.Nanosecond)
	c.Lookup(ctx, client, "secret/a")
	if n := lookups(); n != 2 {
		t.Errorf("%d lookups just before the TTL ends, want 2", n)
	}
	now = now.Add(time.Nanosecond)
	c.Lookup(ctx, client, "secret/a")
	if n := lookups(); n != 3 {
		t.Errorf("%d lookups once the TTL ended, want 3", n)
	}

	// A failure is not kept.
	for range 2 {
		if _, err := c.Lookup(ctx, client, "denied/x"); !Forbidden(err) {
			t.Errorf("Lookup(denied/x) = %v, want a 403", err)
		}
	}
	if n := len(f.Calls()) - lookups(); n != 2 {
		t.Errorf("denied/x looked up %d times for two calls, want 2", n)
	}
}

// Vault refuses a mount under another; still, of two cached mounts a path
// is on, the longest is its mount.
func TestCacheLongestMount(t *testing.T) {
	_, client := newFakeVault(t, func(c call) (int, string) {
		if strings.HasPrefix(c.Path, "/v1/sys/internal/ui/mounts/secret/nested/") {
			return 200, `{"data":{"path":"secret/nested/","type":"kv","options":{"version":"1"}}}`
		}
		return 200, `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`
	})
	now := time.Now()
	c := NewCache(time.Minute, func() time.Time { return now })
	ctx := context.Background()
	// secret/ cached first, so that a map in insertion order lists it first;
	// then, once it expired, secret/nested/ (looked up only then), and
	// secret/ again.
	c.Lookup(ctx, client, "secret/a")
	now = now.Add(time.Minute)
	c.Lookup(ctx, client, "secret/nested/a")
	c.Lookup(ctx, client, "secret/a")
	for range 10 { // map order varies
		if m, err := c.Lookup(ctx, client, "secret/nested/b"); err != nil || m.Path != "secret/nested/" {
			t.Fatalf("Lookup(secret/nested/b) = %+v, %v; want mount secret/nested/", m, err)
		}
		if m, err := c.Lookup(ctx, client, "secret/b"); err != nil || m.Path != "secret/" {
			t.Fatalf("Lookup(secret/b) = %+v, %v; want mount secret/", m, err)
		}
	}
}
