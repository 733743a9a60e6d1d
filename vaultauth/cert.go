package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

// CertAuth logs in with Vault's TLS certificate auth method: the client
// certificate (VAULT_CLIENT_CERT and VAULT_CLIENT_KEY, configured on the
// client's TLS transport) is the credential.
type CertAuth struct {
	mount, role string
}

var (
	_ api.AuthMethod = (*CertAuth)(nil)
	_ TokenCreator   = (*CertAuth)(nil)
)

// NewCertAuth validates the cert method's settings: a client certificate
// and key, and an https VAULT_ADDR (the certificate travels in the TLS
// handshake).
func NewCertAuth(addr, clientCert, clientKey, mount, role string) (*CertAuth, error) {
	switch {
	case clientCert == "" || clientKey == "":
		return nil, errors.New("VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must both be set for VAULT_AUTH_METHOD=cert: files on the plugin's credentials mount")
	case !strings.HasPrefix(addr, "https://"):
		return nil, fmt.Errorf("VAULT_ADDR=%s is not https: VAULT_AUTH_METHOD=cert presents its certificate in the TLS handshake", addr)
	}
	return &CertAuth{mount: mountPath(mount, "cert"), role: role}, nil
}

// CreatesToken implements TokenCreator: each login makes a new token.
func (a *CertAuth) CreatesToken() bool { return true }

// Login implements api.AuthMethod.
func (a *CertAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if a.role != "" {
		body["name"] = a.role
	}
	s, err := c.Logical().WriteWithContext(ctx, "auth/"+a.mount+"/login", body)
	if e := notAnswered(c, "log in with the client certificate at auth/"+a.mount, err); e != nil {
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("certificate login at auth/%s failed: %w", a.mount, err)
	}
	return s, nil
}
