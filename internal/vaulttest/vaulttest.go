// Package vaulttest gives integration tests the real test Vault that make
// test-integration starts. Only tests import it.
package vaulttest

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// RootClient returns a client with the test Vault's root token, from
// VAULT_ADDR and VAULT_TOKEN_FILE or VAULT_TOKEN. Missing settings fail the
// test: a skipped integration test proves nothing.
func RootClient(t testing.TB) *api.Client {
	t.Helper()
	if os.Getenv("VAULT_ADDR") == "" {
		t.Fatal("VAULT_ADDR is not set: run make test-integration, which starts the dev Vault")
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv("VAULT_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		client.SetToken(strings.TrimSpace(string(b)))
	}
	if client.Token() == "" {
		t.Fatal("no root token: set VAULT_TOKEN_FILE or VAULT_TOKEN")
	}
	return client
}
