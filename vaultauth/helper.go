package vaultauth

import (
	"context"
	"errors"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"
)

// SecretSource gives the helper service's secret; bootstrap.HelperReader is
// one, reading it through the Docker API.
type SecretSource interface {
	Read(ctx context.Context) ([]byte, error)
}

// HelperAuth logs in with the secret of a helper service (the seed
// proof-of-concept's bootstrap, done properly): a Vault token, a wrapped
// token, or, with VAULT_ROLE_ID_FILE set, an AppRole secret-id (wrapped or
// not). The helper is read at every login, so rotating its secret
// (docker service update --secret-rm/--secret-add) gives the plugin a new
// identity the next time its token dies.
type HelperAuth struct {
	source     SecretSource
	roleIDFile string
	mount      string
}

var (
	_ api.AuthMethod = (*HelperAuth)(nil)
	_ TokenCreator   = (*HelperAuth)(nil)
)

// NewHelperAuth returns the helper method; source is validated by its own
// constructor (HELPER_SERVICE, HELPER_SECRET).
func NewHelperAuth(source SecretSource, roleIDFile, mount string) (*HelperAuth, error) {
	if roleIDFile != "" {
		if _, err := readFile("VAULT_ROLE_ID_FILE", roleIDFile); err != nil {
			return nil, err
		}
	}
	return &HelperAuth{source: source, roleIDFile: roleIDFile, mount: mountPath(mount, "approle")}, nil
}

// CreatesToken implements TokenCreator: with VAULT_ROLE_ID_FILE each login
// makes a new token; a token the helper hands over is not the plugin's.
func (a *HelperAuth) CreatesToken() bool { return a.roleIDFile != "" }

// tokenCreatePath matches where Vault creates tokens, for wrapped ones.
var tokenCreatePath = regexp.MustCompile(`^auth/token/create(-orphan|/[^/]+)?$`)

// Login implements api.AuthMethod.
func (a *HelperAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	raw, err := a.source.Read(ctx)
	if err != nil {
		return nil, err
	}
	v := strings.TrimSpace(string(raw))
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	_, wrapped, err := isWrappingToken(ctx, c, v)
	if err != nil {
		return nil, err
	}

	if a.roleIDFile != "" {
		roleID, err := readFile("VAULT_ROLE_ID_FILE", a.roleIDFile)
		if err != nil {
			return nil, err
		}
		secretID := v
		if wrapped {
			if secretID, err = unwrapSecretID(ctx, c, v, a.mount, "the helper's wrapped secret-id"); err != nil {
				return nil, err
			}
		}
		return appRoleLogin(ctx, c, roleID, secretID, a.mount)
	}

	tok := v
	if wrapped {
		s, err := unwrapChecked(ctx, c, v, tokenCreatePath, "the helper's wrapped token")
		if err != nil {
			return nil, err
		}
		if s.Auth == nil || s.Auth.ClientToken == "" {
			return nil, errors.New("the helper's wrapped secret holds no token")
		}
		tok = s.Auth.ClientToken
	}
	return tokenSecret(ctx, client, tok, "the helper service's secret")
}
