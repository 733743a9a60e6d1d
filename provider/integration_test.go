//go:build integration

// Integration tests against a real Vault (make test-integration starts the
// dev server): VAULT_ADDR, and a root token in VAULT_TOKEN_FILE or VAULT_TOKEN.
// Each run mounts its own KV engines and removes them afterwards.

package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/vaulttest"
)

// kvFixture mounts a KV v1 and a KV v2 engine under names unique to this run
// and fills them; the mounts are removed when the test ends.
type kvFixture struct {
	root     *api.Client
	kv1, kv2 string // mount paths without slash
}

func newKVFixture(t testing.TB) *kvFixture {
	t.Helper()
	root := vaulttest.RootClient(t)
	ctx := context.Background()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	f := &kvFixture{root: root, kv1: "it-kv1-" + run, kv2: "it-kv2-" + run}
	for mount, version := range map[string]string{f.kv1: "1", f.kv2: "2"} {
		if err := root.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
			t.Fatalf("mount %s: %v", mount, err)
		}
		t.Cleanup(func() { root.Sys().Unmount(mount) })
	}
	// A fresh KV v2 mount upgrades in the background; writes fail until then.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := root.KVv2(f.kv2).Put(ctx, "app/db", map[string]any{"password": "v1-pw", "username": "app"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write to new KV v2 mount: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	put := func(data map[string]any) {
		if _, err := root.KVv2(f.kv2).Put(ctx, "app/db", data); err != nil {
			t.Fatal(err)
		}
	}
	put(map[string]any{"password": "v2-pw", "username": "app"})
	put(map[string]any{"password": "v3-pw", "username": "app"})
	put(map[string]any{"password": "v4-pw\nzweite Zeile ✓", "username": "app", "port": 5432})
	if err := root.KVv2(f.kv2).DeleteVersions(ctx, "app/db", []int{2}); err != nil {
		t.Fatal(err)
	}
	if err := root.KVv2(f.kv2).Destroy(ctx, "app/db", []int{3}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.KVv2(f.kv2).Put(ctx, "gone", map[string]any{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := root.KVv2(f.kv2).Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := root.KVv1(f.kv1).Put(ctx, "app/db", map[string]any{"password": "kv1-pw"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// readerProvider returns a Provider whose task tokens get one policy that
// may read only the given paths. The plugin's own token is root here, so
// that any policy may be given; the token-role set-up an operator would use
// is in token_integration_test.go.
func (f *kvFixture) readerProvider(t *testing.T, readable ...string) *Provider {
	t.Helper()
	name := "it-reader-" + f.kv2 + fmt.Sprint(len(readable))
	var rules strings.Builder
	for _, p := range readable {
		fmt.Fprintf(&rules, "path %q { capabilities = [\"read\"] }\n", p)
	}
	if err := f.root.Sys().PutPolicy(name, rules.String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().DeletePolicy(name) })
	return New(f.root, logrus.New(), Options{Policies: mustPolicies(t, name)})
}

func TestIntegrationKV(t *testing.T) {
	f := newKVFixture(t)
	p := f.readerProvider(t, f.kv1+"/*", f.kv2+"/data/*")
	tests := []struct {
		name    string
		labels  map[string]string
		want    string
		wantErr string
	}{
		{name: "KV v2 latest", labels: map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "password"}, want: "v4-pw\nzweite Zeile ✓"},
		{name: "KV v2 pinned version", labels: map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "password", "vault.version": "1"}, want: "v1-pw"},
		{name: "KV v2 whole secret as env", labels: map[string]string{"vault.path": f.kv2 + "/app/db", "vault.version": "1", "vault.format": "env"}, want: "password=v1-pw\nusername=app\n"},
		{name: "KV v2 number field", labels: map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "port"}, want: "5432"},
		{name: "KV v1", labels: map[string]string{"vault.path": f.kv1 + "/app/db", "vault.field": "password"}, want: "kv1-pw"},
		{name: "KV v1 as JSON", labels: map[string]string{"vault.path": f.kv1 + "/app/db", "vault.format": "json"}, want: `{"password":"kv1-pw"}`},
		{
			name:    "deleted version",
			labels:  map[string]string{"vault.path": f.kv2 + "/app/db", "vault.version": "2"},
			wantErr: "secret db_pw: version 2 of Vault path " + f.kv2 + "/app/db is deleted: undelete it (vault kv undelete) or set label vault.version to a live version",
		},
		{
			name:    "destroyed version",
			labels:  map[string]string{"vault.path": f.kv2 + "/app/db", "vault.version": "3"},
			wantErr: "secret db_pw: version 3 of Vault path " + f.kv2 + "/app/db is destroyed: set label vault.version to a live version or write a new one",
		},
		{
			name:    "version that never existed",
			labels:  map[string]string{"vault.path": f.kv2 + "/app/db", "vault.version": "9"},
			wantErr: "secret db_pw: Vault path " + f.kv2 + "/app/db has no version 9: check labels vault.path and vault.version",
		},
		{
			name:    "latest version deleted",
			labels:  map[string]string{"vault.path": f.kv2 + "/gone"},
			wantErr: "secret db_pw: version 1 of Vault path " + f.kv2 + "/gone is deleted: undelete it (vault kv undelete) or set label vault.version to a live version",
		},
		{
			name:    "missing KV v2 path",
			labels:  map[string]string{"vault.path": f.kv2 + "/app/nope"},
			wantErr: "secret db_pw: no secret at Vault path " + f.kv2 + "/app/nope: check label vault.path",
		},
		{
			name:    "missing KV v1 path",
			labels:  map[string]string{"vault.path": f.kv1 + "/app/nope"},
			wantErr: "secret db_pw: no secret at Vault path " + f.kv1 + "/app/nope: check label vault.path",
		},
		{
			name:    "missing field",
			labels:  map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "pasword"},
			wantErr: "secret db_pw: label vault.field=\"pasword\" names no field of Vault path " + f.kv2 + "/app/db (its fields: password, port, username)",
		},
		{
			name:    "version on KV v1",
			labels:  map[string]string{"vault.path": f.kv1 + "/app/db", "vault.version": "1"},
			wantErr: "secret db_pw: label vault.version=1 cannot apply to Vault path " + f.kv1 + "/app/db: mount " + f.kv1 + "/ is KV v1, which keeps no versions",
		},
		{
			name:    "no such mount",
			labels:  map[string]string{"vault.path": "no-such-mount-" + f.kv2 + "/x"},
			wantErr: "secret db_pw: Vault path no-such-mount-" + f.kv2 + "/x is on no mount the token may read: check label vault.path (its first segment is the mount, e.g. secret/) and that the token's policies grant read on the path",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := p.GetSecret(context.Background(), request(tt.labels))
			if resp.Err != tt.wantErr {
				t.Fatalf("Err:\n got %q\nwant %q", resp.Err, tt.wantErr)
			}
			if string(resp.Value) != tt.want {
				t.Errorf("Value = %q, want %q", resp.Value, tt.want)
			}
		})
	}
}

func TestIntegrationPermissionDenied(t *testing.T) {
	f := newKVFixture(t)
	p := f.readerProvider(t, f.kv2+"/data/app/db")

	resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": f.kv2 + "/app/db", "vault.field": "username"}))
	if resp.Err != "" || string(resp.Value) != "app" {
		t.Fatalf("allowed read: Value %q, Err %q", resp.Value, resp.Err)
	}

	tests := []struct{ path, want string }{
		{
			// Same mount (its version known), path outside the policy.
			path: f.kv2 + "/other",
			want: "secret db_pw: permission denied to read Vault path " + f.kv2 + "/other: the token's policies must grant read on " + f.kv2 + "/data/other",
		},
		{
			// A mount the token may not use at all: Vault refuses the look-up.
			path: f.kv1 + "/app/db",
			want: "secret db_pw: Vault path " + f.kv1 + "/app/db is on no mount the token may read: check label vault.path (its first segment is the mount, e.g. secret/) and that the token's policies grant read on the path",
		},
	}
	for _, tt := range tests {
		resp := p.GetSecret(context.Background(), request(map[string]string{"vault.path": tt.path}))
		if resp.Err != tt.want {
			t.Errorf("Err:\n got %q\nwant %q", resp.Err, tt.want)
		}
	}
}

// A KV v1 secret's fingerprint changes with its value and with the key,
// and never shows the value.
func TestIntegrationFingerprint(t *testing.T) {
	f := newKVFixture(t)
	p := f.readerProvider(t, f.kv1+"/*", f.kv2+"/data/*", "sys/internal/ui/mounts/*")
	ctx := context.Background()
	req := taskRequest(map[string]string{"vault.path": f.kv1 + "/app/db", "vault.field": "password", "vault.rotate": "true"})
	key, other := []byte("k1"), []byte("k2")
	fp := func(key []byte) string {
		t.Helper()
		s, err := p.Fingerprint(ctx, req, key)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, "kv1-pw") || len(s) != 64 {
			t.Fatalf("fingerprint %q", s)
		}
		return s
	}
	first := fp(key)
	if again := fp(key); again != first {
		t.Errorf("one value, two fingerprints: %s %s", first, again)
	}
	if fp(other) == first {
		t.Errorf("two keys, one fingerprint")
	}
	if err := f.root.KVv1(f.kv1).Put(ctx, "app/db", map[string]any{"password": "kv1-pw-2"}); err != nil {
		t.Fatal(err)
	}
	if fp(key) == first {
		t.Errorf("a new value kept the fingerprint")
	}
	req.SecretLabels["vault.path"] = f.kv2 + "/app/db"
	if _, err := p.Fingerprint(ctx, req, key); err == nil {
		t.Errorf("a fingerprint of a KV v2 secret")
	}
	// A static value read through the generic API: a new KV v2 version
	// is a new fingerprint.
	req.SecretLabels = map[string]string{"vault.type": "read", "vault.path": f.kv2 + "/data/app/db", "vault.rotate": "true"}
	read := fp(key)
	if again := fp(key); again != read {
		t.Errorf("vault.type=read: one value, two fingerprints")
	}
	if _, err := f.root.KVv2(f.kv2).Put(ctx, "app/db", map[string]any{"password": "v5-pw"}); err != nil {
		t.Fatal(err)
	}
	if fp(key) == read {
		t.Errorf("vault.type=read: a new version kept the fingerprint")
	}
}
