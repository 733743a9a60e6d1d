//go:build integration

package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/api"
)

// BenchmarkReadToken compares the two ways a token that never leaves the
// plugin can be had for one KV read, against the real dev Vault:
//
//	batch:          create a batch token, read (the token expires by itself)
//	service+revoke: create a service token, read, revoke it
//
// go test -tags integration -run '^$' -bench ReadToken -count 6 ./provider/
func BenchmarkReadToken(b *testing.B) {
	f := newTokenFixture(b)
	ctx := context.Background()
	policies := []string{f.role + "-app"}
	read := func(b *testing.B, tokenType string, revoke bool) {
		for b.Loop() {
			s, err := f.plugin.Auth().Token().CreateWithRoleWithContext(ctx, &api.TokenCreateRequest{
				Policies: policies, TTL: "20s", Type: tokenType, Metadata: map[string]string{"task_id": "bench"},
			}, f.role)
			if err != nil {
				b.Fatal(err)
			}
			c, _ := f.plugin.CloneWithHeaders()
			c.SetToken(s.Auth.ClientToken)
			if _, err := c.KVv2(f.kv2).Get(ctx, "app/db"); err != nil {
				b.Fatal(err)
			}
			if revoke {
				if err := c.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("batch", func(b *testing.B) { read(b, "batch", false) })
	b.Run("service+revoke", func(b *testing.B) { read(b, "service", true) })
}
