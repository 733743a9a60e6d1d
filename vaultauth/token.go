// Package vaultauth owns the plugin's own Vault identity: the credentials it
// starts with and the login that turns them into the token on its Vault
// client. Each auth method implements Vault's api.AuthMethod.
package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// TokenAuth is the token auth method: the operator hands the plugin a Vault
// token, preferably as a file on the plugin's settable mount, because an env
// value shows in `docker plugin inspect` to anyone who may run it.
type TokenAuth struct {
	token string
	file  string
}

var _ api.AuthMethod = (*TokenAuth)(nil)

// NewTokenAuth validates the token settings: exactly one of a value
// (VAULT_TOKEN) or a file (VAULT_TOKEN_FILE), the file readable and not empty.
func NewTokenAuth(token, file string) (*TokenAuth, error) {
	switch {
	case token != "" && file != "":
		return nil, errors.New("VAULT_TOKEN and VAULT_TOKEN_FILE are both set: keep one (a file is safer: env values show in docker plugin inspect)")
	case token == "" && file == "":
		return nil, errors.New("no Vault token: set VAULT_TOKEN_FILE to a token file on the plugin's credentials mount, or VAULT_TOKEN")
	}
	a := &TokenAuth{token: strings.TrimSpace(token), file: file}
	if _, err := a.Token(); err != nil {
		return nil, err
	}
	return a, nil
}

// Token returns the token, reading the file each time so that a token
// rotated on disk is picked up at the next login.
func (a *TokenAuth) Token() (string, error) {
	if a.file == "" {
		return a.token, nil
	}
	b, err := os.ReadFile(a.file)
	if err != nil {
		return "", fmt.Errorf("VAULT_TOKEN_FILE cannot be read: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("VAULT_TOKEN_FILE %s is empty: write the plugin's Vault token into it", a.file)
	}
	return tok, nil
}

// Login implements api.AuthMethod. A token needs no login call, so it asks
// Vault about the token (auth/token/lookup-self) instead: a wrong or expired
// token is reported when the plugin starts, not at the first task.
func (a *TokenAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	tok, err := a.Token()
	if err != nil {
		return nil, err
	}
	c, err := client.Clone()
	if err != nil {
		return nil, fmt.Errorf("failed to clone the Vault client: %w", err)
	}
	c.SetToken(tok)
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("Vault does not accept the plugin's token (%s): %w", a.source(), err)
	}
	policies, err := self.TokenPolicies()
	if err != nil {
		return nil, fmt.Errorf("failed to read the token's policies: %w", err)
	}
	ttl, err := self.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("failed to read the token's TTL: %w", err)
	}
	renewable, _ := self.TokenIsRenewable()
	// Shaped like a login response, so that client.Auth().Login sets the
	// token and callers read policies and TTL the same way for every method.
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   tok,
		Policies:      policies,
		TokenPolicies: policies,
		LeaseDuration: int(ttl / time.Second),
		Renewable:     renewable,
	}}, nil
}

func (a *TokenAuth) source() string {
	if a.file != "" {
		return "VAULT_TOKEN_FILE " + a.file
	}
	return "VAULT_TOKEN"
}
