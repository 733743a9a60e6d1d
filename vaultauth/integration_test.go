//go:build integration

package vaultauth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// realVault returns a client for the dev Vault and its root token.
func realVault(t *testing.T) (*api.Client, string) {
	t.Helper()
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN_FILE") == "" {
		t.Fatal("VAULT_ADDR and VAULT_TOKEN_FILE must be set: run make test-integration")
	}
	b, err := os.ReadFile(os.Getenv("VAULT_TOKEN_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	client.ClearToken()
	return client, strings.TrimSpace(string(b))
}

func TestIntegrationTokenFileLogin(t *testing.T) {
	client, rootToken := realVault(t)
	root, _ := client.Clone()
	root.SetToken(rootToken)
	s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "5m"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(s.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := NewTokenAuth("", file)
	if err != nil {
		t.Fatal(err)
	}

	got, err := client.Auth().Login(context.Background(), auth)
	if err != nil {
		t.Fatal(err)
	}
	if client.Token() != s.Auth.ClientToken || got.Auth.LeaseDuration < 250 || got.Auth.LeaseDuration > 300 {
		t.Errorf("login: token set %v, TTL %d s", client.Token() == s.Auth.ClientToken, got.Auth.LeaseDuration)
	}

	// A revoked token is reported at login, naming where it came from.
	if err := root.Auth().Token().RevokeOrphan(s.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), auth)
	if err == nil || !strings.Contains(err.Error(), "Vault does not accept the plugin's token (VAULT_TOKEN_FILE "+file+")") {
		t.Errorf("login with a revoked token: %v", err)
	}
}
