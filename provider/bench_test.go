package provider

import (
	"context"
	"io"
	"testing"

	"github.com/sirupsen/logrus"
)

// BenchmarkGetSecret measures the plugin's own work per request (plan,
// policy template, token mint, mount cache, read, render, log) against an
// in-process fake Vault, whose cost is small and constant:
//
//	go test -run '^$' -bench GetSecret -benchmem -cpuprofile cpu.out ./provider/
func BenchmarkGetSecret(b *testing.B) {
	vault := newFakeVault(&testing.T{})
	defer vault.Close()
	for _, tt := range []struct {
		name   string
		labels map[string]string
	}{
		{"task", map[string]string{"vault.path": "secret/app/db", "vault.field": "username"}},
		{"reuse", map[string]string{"vault.path": "secret/app/db", "vault.field": "username", "vault.reuse": "true"}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			p, _ := newTestProvider(&testing.T{}, vault.URL, Options{ReuseCacheTTL: DefaultReuseCacheTTL})
			log := logrus.New()
			log.SetOutput(io.Discard)
			log.SetLevel(logrus.WarnLevel)
			p.log = log
			req := taskRequest(tt.labels)
			b.ReportAllocs()
			for b.Loop() {
				if resp := p.GetSecret(context.Background(), req); resp.Err != "" {
					b.Fatal(resp.Err)
				}
			}
		})
	}
}
