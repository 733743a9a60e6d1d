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

// readFile reads a credential file named by setting, trimmed.
func readFile(setting, path string) (string, error) {
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

// isWrappingToken asks Vault whether v is a live wrapping token, and where
// it was created. sys/wrapping/lookup needs no token of its own.
func isWrappingToken(ctx context.Context, c *api.Client, v string) (creationPath string, ok bool, err error) {
	s, err := c.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": v})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return "", false, nil // "wrapping token is not valid or does not exist"
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

// unwrapChecked unwraps a wrapping token after checking where it was made: a
// token wrapped elsewhere could hand the plugin a secret of an attacker's
// choosing (Vault's guidance for response-wrapped secret-ids).
func unwrapChecked(ctx context.Context, c *api.Client, wrapped string, allowed *regexp.Regexp, what string) (*api.Secret, error) {
	path, ok, err := isWrappingToken(ctx, c, wrapped)
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
	uc, err := anonymous(c)
	if err != nil {
		return nil, err
	}
	s, err := uc.Logical().UnwrapWithContext(ctx, wrapped)
	if err != nil {
		return nil, fmt.Errorf("cannot unwrap %s: %w", what, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%s unwrapped to nothing", what)
	}
	return s, nil
}

// unwrapSecretID unwraps a wrapped AppRole secret-id, checking it was made by
// the AppRole mount, and that it holds a secret_id.
func unwrapSecretID(ctx context.Context, c *api.Client, wrapped, mount, what string) (string, error) {
	s, err := unwrapChecked(ctx, c, wrapped, secretIDPath(mount), what)
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

// appRoleLogin logs in with Vault's own AppRole method.
func appRoleLogin(ctx context.Context, c *api.Client, roleID, secretID, mount string) (*api.Secret, error) {
	a, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: secretID}, approle.WithMountPath(mount))
	if err != nil {
		return nil, err
	}
	s, err := a.Login(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("AppRole login at auth/%s failed: %w", mount, err)
	}
	return s, nil
}

// tokenSecret checks tok with lookup-self and returns it shaped like a
// login response, so that Auth().Login sets it and the Manager renews it
// like any other method's token.
func tokenSecret(ctx context.Context, client *api.Client, tok, source string) (*api.Secret, error) {
	c, err := anonymous(client)
	if err != nil {
		return nil, err
	}
	c.SetToken(tok)
	self, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("Vault does not accept the plugin's token (%s): %w", source, err)
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
