package bootstrap

import (
	"context"
	"errors"
	"regexp"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/vaultauth"
)

// Settings are the plugin settings of the helper method.
type Settings struct {
	// Service and Secret are HELPER_SERVICE and HELPER_SECRET: the helper
	// service, and its secret's file name in /run/secrets/.
	Service, Secret string
	// RoleIDFile is VAULT_ROLE_ID_FILE: set, the helper's secret is an
	// AppRole secret-id (maybe wrapped) of the role-id in this file; unset,
	// it is a Vault token (maybe wrapped).
	RoleIDFile string
	// Mount is VAULT_AUTH_MOUNT, the AppRole mount (default: approle).
	Mount string
}

// Auth is the helper method: it logs in with the secret of the helper
// service, read at every login, so that rotating it (docker service update
// --secret-rm/--secret-add) gives the plugin a new identity the next time
// its token dies.
type Auth struct {
	reader     *Reader
	roleIDFile string
	mount      string
}

var (
	_ api.AuthMethod         = (*Auth)(nil)
	_ vaultauth.TokenCreator = (*Auth)(nil)
)

// New returns the helper method, reading through docker (this node's
// engine), its settings validated: HELPER_SERVICE and HELPER_SECRET set,
// VAULT_ROLE_ID_FILE readable when set.
func New(docker Docker, s Settings) (*Auth, error) {
	r, err := NewReader(docker, s.Service, s.Secret)
	if err != nil {
		return nil, err
	}
	if s.RoleIDFile != "" {
		if _, err := vaultauth.ReadCredential("VAULT_ROLE_ID_FILE", s.RoleIDFile); err != nil {
			return nil, err
		}
	}
	return &Auth{reader: r, roleIDFile: s.RoleIDFile, mount: s.Mount}, nil
}

// CreatesToken implements vaultauth.TokenCreator: with VAULT_ROLE_ID_FILE
// each login makes a new token; a token the helper hands over is not the
// plugin's.
func (a *Auth) CreatesToken() bool { return a.roleIDFile != "" }

// tokenCreatePath matches where Vault creates tokens: a wrapped token made
// anywhere else is refused.
var tokenCreatePath = regexp.MustCompile(`^auth/token/create(-orphan|/[^/]+)?$`)

// Login implements api.AuthMethod.
func (a *Auth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	raw, err := a.reader.Read(ctx)
	if err != nil {
		return nil, err
	}
	v := string(raw)
	_, wrapped, err := vaultauth.IsWrappingToken(ctx, client, v)
	if err != nil {
		return nil, err
	}

	if a.roleIDFile != "" {
		roleID, err := vaultauth.ReadCredential("VAULT_ROLE_ID_FILE", a.roleIDFile)
		if err != nil {
			return nil, err
		}
		secretID := v
		if wrapped {
			if secretID, err = vaultauth.UnwrapSecretID(ctx, client, v, a.mount, "the helper's wrapped secret-id"); err != nil {
				return nil, err
			}
		}
		return vaultauth.AppRoleLogin(ctx, client, roleID, secretID, a.mount)
	}

	tok := v
	if wrapped {
		s, err := vaultauth.UnwrapChecked(ctx, client, v, tokenCreatePath, "the helper's wrapped token")
		if err != nil {
			return nil, err
		}
		if s.Auth == nil || s.Auth.ClientToken == "" {
			return nil, errors.New("the helper's wrapped secret holds no token")
		}
		tok = s.Auth.ClientToken
	}
	return vaultauth.TokenLogin(ctx, client, tok, "the helper service's secret")
}
