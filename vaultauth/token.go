package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
)

// TokenAuth is the token auth method: the operator hands the plugin a Vault
// token, preferably as a file on the plugin's settable mount, because an env
// value shows in `docker plugin inspect` to anyone who may run it.
type TokenAuth struct {
	token string
	file  string

	mu   sync.Mutex
	last string // the token of the last login, to tell a changed file
}

var (
	_ api.AuthMethod = (*TokenAuth)(nil)
	_ Changer        = (*TokenAuth)(nil)
)

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
	a.mu.Lock()
	a.last = tok
	a.mu.Unlock()
	return TokenLogin(ctx, client, tok, a.source())
}

// Changed reports whether the token file now holds another token than the
// one last logged in with: the operator rotated it.
func (a *TokenAuth) Changed() bool {
	if a.file == "" {
		return false
	}
	tok, err := a.Token()
	a.mu.Lock()
	defer a.mu.Unlock()
	return err == nil && tok != a.last
}

func (a *TokenAuth) source() string {
	if a.file != "" {
		return "VAULT_TOKEN_FILE " + a.file
	}
	return "VAULT_TOKEN"
}
