package vaultauth

import (
	"fmt"

	"github.com/hashicorp/vault/api"
)

// Settings are the plugin settings of its own Vault login.
type Settings struct {
	// Method is VAULT_AUTH_METHOD: token (default), approle, cert or helper.
	Method string
	// Addr is VAULT_ADDR, checked by the cert method.
	Addr string
	// Token and TokenFile are VAULT_TOKEN and VAULT_TOKEN_FILE.
	Token, TokenFile string
	// RoleIDFile, SecretIDFile, SecretIDWrapped and SecretIDRemove are
	// VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, VAULT_SECRET_ID_WRAPPED and
	// VAULT_SECRET_ID_REMOVE.
	RoleIDFile, SecretIDFile        string
	SecretIDWrapped, SecretIDRemove bool
	// Mount is VAULT_AUTH_MOUNT, the auth method's mount path (default:
	// approle or cert).
	Mount string
	// ClientCert, ClientKey and CertRole are VAULT_CLIENT_CERT,
	// VAULT_CLIENT_KEY and VAULT_CERT_ROLE.
	ClientCert, ClientKey, CertRole string
}

// New returns the auth method the settings name, each validated with an
// error that names the setting to fix. helper makes the helper method
// (package bootstrap, which reads its credential through the Docker API);
// it is called only for that method, so that the Docker socket is touched
// only then.
func New(s Settings, helper func() (api.AuthMethod, error)) (api.AuthMethod, error) {
	switch s.Method {
	case "", "token":
		return NewTokenAuth(s.Token, s.TokenFile)
	case "approle":
		return NewAppRoleAuth(s.RoleIDFile, s.SecretIDFile, s.Mount, s.SecretIDWrapped, s.SecretIDRemove)
	case "cert":
		return NewCertAuth(s.Addr, s.ClientCert, s.ClientKey, s.Mount, s.CertRole)
	case "helper":
		m, err := helper()
		if err != nil {
			return nil, err // not m: a nil *T in an interface is not nil
		}
		return m, nil
	default:
		return nil, fmt.Errorf("VAULT_AUTH_METHOD=%s is not a method: use token, approle, cert or helper", s.Method)
	}
}
