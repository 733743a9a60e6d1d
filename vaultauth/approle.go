package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/vault/api"
)

// AppRoleAuth logs in with AppRole, the role-id and secret-id read from files
// on the plugin's credentials mount (env values show in docker plugin
// inspect). The secret-id may be response-wrapped: it is then unwrapped
// once, after checking the wrapping token was made by this AppRole mount.
type AppRoleAuth struct {
	roleIDFile, secretIDFile, mount string
	wrapped, remove                 bool

	mu sync.Mutex
	// file and secretID remember the last secret-id file content and what
	// it gave: a wrapping token unwraps once, and a removed file is gone, so
	// a later login reuses the secret-id until the file holds a new one.
	file, secretID string
}

var (
	_ api.AuthMethod = (*AppRoleAuth)(nil)
	_ TokenCreator   = (*AppRoleAuth)(nil)
)

// CreatesToken implements TokenCreator: each login makes a new token.
func (a *AppRoleAuth) CreatesToken() bool { return true }

// NewAppRoleAuth validates the AppRole settings: VAULT_ROLE_ID_FILE and
// VAULT_SECRET_ID_FILE readable, the mount (VAULT_AUTH_MOUNT) named.
func NewAppRoleAuth(roleIDFile, secretIDFile, mount string, wrapped, remove bool) (*AppRoleAuth, error) {
	switch {
	case roleIDFile == "":
		return nil, errors.New("VAULT_ROLE_ID_FILE is not set: VAULT_AUTH_METHOD=approle needs the role-id in a file on the plugin's credentials mount")
	case secretIDFile == "":
		return nil, errors.New("VAULT_SECRET_ID_FILE is not set: VAULT_AUTH_METHOD=approle needs a secret-id (or a wrapped one) in a file on the plugin's credentials mount")
	}
	mount = mountPath(mount, "approle")
	if _, err := ReadCredential("VAULT_ROLE_ID_FILE", roleIDFile); err != nil {
		return nil, err
	}
	// A secret-id file the plugin removes once read is gone after every
	// restart until the operator writes a new one: the plugin starts
	// anyway, and its logins say what is missing until the file is back
	// (a plugin that exits at start stays down, and Docker 20.10's manager
	// panics at boot over a secret driver it cannot enable).
	if _, err := ReadCredential("VAULT_SECRET_ID_FILE", secretIDFile); err != nil && !(remove && errors.Is(err, os.ErrNotExist)) {
		return nil, err
	}
	return &AppRoleAuth{roleIDFile: roleIDFile, secretIDFile: secretIDFile, mount: mount, wrapped: wrapped, remove: remove}, nil
}

// Login implements api.AuthMethod.
func (a *AppRoleAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	roleID, err := ReadCredential("VAULT_ROLE_ID_FILE", a.roleIDFile)
	if err != nil {
		return nil, err
	}
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	secretID, err := a.currentSecretID(ctx, c)
	if err != nil {
		return nil, err
	}
	return AppRoleLogin(ctx, c, roleID, secretID, a.mount)
}

func (a *AppRoleAuth) currentSecretID(ctx context.Context, c *api.Client) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, err := ReadCredential("VAULT_SECRET_ID_FILE", a.secretIDFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && a.secretID != "":
		return a.secretID, nil // removed after reading, as asked
	case errors.Is(err, os.ErrNotExist) && a.remove:
		return "", fmt.Errorf("%w: the plugin removed the secret-id it read before it restarted (VAULT_SECRET_ID_REMOVE=true); write a new (wrapped) secret-id into the file", err)
	case err != nil:
		return "", err
	case v == a.file && a.secretID != "":
		return a.secretID, nil // the same wrapping token cannot unwrap twice
	}
	secretID := v
	if a.wrapped {
		var err error
		if secretID, err = UnwrapSecretID(ctx, c, v, a.mount, "the wrapped secret-id in VAULT_SECRET_ID_FILE"); err != nil {
			return "", err
		}
	}
	a.file, a.secretID = v, secretID
	if a.remove {
		if err := os.Remove(a.secretIDFile); err != nil {
			return "", fmt.Errorf("VAULT_SECRET_ID_REMOVE: cannot remove %s (is the credentials mount writable?): %w", a.secretIDFile, err)
		}
	}
	return secretID, nil
}
