package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// The login primitives the methods share: reading a credential file,
// telling and unwrapping a wrapped credential, an AppRole login, a token's
// check. They are exported for the helper method (package bootstrap), and
// none sends the client's token: it may be the dead one being replaced.

// anonymous returns a clone of client without a token, sharing its
// transport and headers. Logins and unwraps go through it: the shared
// client's token may be the dead one being replaced, and api's Unwrap sets
// the client's token as a side effect.
func anonymous(client *api.Client) (*api.Client, error) {
	c, err := client.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("failed to clone the Vault client: %w", err)
	}
	c.ClearToken()
	return c, nil
}

// ReadCredential reads the credential file at path, trimmed, failing with
// an error that names setting (VAULT_ROLE_ID_FILE, say) when the file
// cannot be read or is empty.
func ReadCredential(setting, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s cannot be read: %w", setting, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s %s is empty", setting, path)
	}
	return v, nil
}

// IsWrappingToken asks Vault whether v is a live wrapping token, and where
// it was created, so that a caller handed a credential can tell a wrapped
// one. sys/wrapping/lookup needs no token: it asks without client's.
func IsWrappingToken(ctx context.Context, client *api.Client, v string) (creationPath string, ok bool, err error) {
	c, err := anonymous(client)
	if err != nil {
		return "", false, err
	}
	s, err := c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": v})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return "", false, nil // "wrapping token is not valid or does not exist"
	}
	if e := notAnswered(c, "look up a wrapping token", err); e != nil {
		return "", false, e
	}
	if err != nil {
		return "", false, fmt.Errorf("cannot look up a wrapping token: %w", err)
	}
	if s == nil || s.Data == nil {
		return "", false, nil
	}
	p, _ := s.Data["creation_path"].(string)
	return p, true, nil
}

// UnwrapChecked unwraps a wrapping token after checking that it was made at
// a path allowed matches: a token wrapped elsewhere could hand the plugin a
// secret of an attacker's choosing (Vault's guidance for response-wrapped
// secret-ids). what names the wrapped credential in errors. Neither the
// lookup nor the unwrap sends client's token.
func UnwrapChecked(ctx context.Context, client *api.Client, wrapped string, allowed *regexp.Regexp, what string) (*api.Secret, error) {
	path, ok, err := IsWrappingToken(ctx, client, wrapped)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s is not a live wrapping token (already unwrapped, expired, or not a wrapping token)", what)
	}
	if !allowed.MatchString(path) {
		return nil, fmt.Errorf("%s was wrapped at %s, not at %s: refusing it", what, path, allowed)
	}
	// api's Unwrap sets the wrapping token on a client without one: unwrap
	// through a copy, so that the spent wrapping token is not sent along
	// with the login that follows.
	uc, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	s, err := uc.Logical().UnwrapWithContext(ctx, wrapped)
	if e := notAnswered(uc, "unwrap "+what, err); e != nil {
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("cannot unwrap %s: %w", what, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%s unwrapped to nothing", what)
	}
	return s, nil
}

// UnwrapSecretID unwraps a wrapped AppRole secret-id, checking that it was
// made by the AppRole mount (VAULT_AUTH_MOUNT as set: slashes trimmed,
// approle when empty) and that it holds a secret_id. what names it in
// errors.
func UnwrapSecretID(ctx context.Context, client *api.Client, wrapped, mount, what string) (string, error) {
	s, err := UnwrapChecked(ctx, client, wrapped, secretIDPath(mountPath(mount, "approle")), what)
	if err != nil {
		return "", err
	}
	secretID, _ := s.Data["secret_id"].(string)
	if secretID == "" {
		return "", fmt.Errorf("%s unwrapped to no secret_id", what)
	}
	return secretID, nil
}

// mountPath is VAULT_AUTH_MOUNT as a path segment (approle, not /approle/),
// or def when it is not set.
func mountPath(mount, def string) string {
	if m := strings.Trim(mount, "/"); m != "" {
		return m
	}
	return def
}

// secretIDPath matches where Vault creates secret-ids of an AppRole mount.
func secretIDPath(mount string) *regexp.Regexp {
	return regexp.MustCompile(`^auth/` + regexp.QuoteMeta(mount) + `/role/[^/]+/(custom-)?secret-id$`)
}

// AppRoleLogin logs in with Vault's own AppRole method at the mount
// (VAULT_AUTH_MOUNT as set: slashes trimmed, approle when empty). It logs in
// without client's token, which may be the dead one being replaced.
func AppRoleLogin(ctx context.Context, client *api.Client, roleID, secretID, mount string) (*api.Secret, error) {
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	mount = mountPath(mount, "approle")
	a, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID}, approle.WithMountPath(mount))
	if err != nil {
		return nil, err
	}
	s, err := a.Login(ctx, c)
	if e := notAnswered(c, "log in with AppRole at auth/"+mount, err); e != nil {
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("AppRole login at auth/%s failed: %w", mount, err)
	}
	return s, nil
}

// TokenLogin is the login of a method handed a token: it checks tok with
// lookup-self and returns it shaped like a login response, so that
// Auth().Login sets it and the Manager renews it like any other method's
// token. source names where tok came from, in errors.
func TokenLogin(ctx context.Context, client *api.Client, tok, source string) (*api.Secret, error) {
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	c.SetToken(tok)
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	var re *api.ResponseError
	switch e := notAnswered(c, "check the plugin's token", err); {
	case e != nil:
		return nil, e
	case refusesToken(err):
		return nil, fmt.Errorf("Vault does not accept the plugin's token (%s): %w", source, err)
	case errors.As(err, &re):
		return nil, fmt.Errorf("Vault could not check the plugin's token (%s): %w", source, err)
	case err != nil:
		return nil, fmt.Errorf("the answer to the check of the plugin's token (%s) is not Vault's (%v): check that VAULT_ADDR points at Vault", source, err)
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
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   tok,
		Policies:      policies,
		TokenPolicies: policies,
		LeaseDuration: int(ttl / time.Second),
		Renewable:     renewable,
	}}, nil
}
