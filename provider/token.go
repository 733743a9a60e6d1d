package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// tokenKind says what a minted token is for.
type tokenKind int

const (
	// readToken never leaves the plugin: it reads one secret for one task.
	// A batch token: Vault does not persist it, so minting is cheap, and its
	// short TTL ends it without a revoke call (batch tokens have none).
	readToken tokenKind = iota
	// taskToken is handed to the task. An orphan service token, so that it
	// outlives the plugin's own token (the seed proof-of-concept's tokens died
	// with it) and the task can renew it up to the operator's maximum.
	taskToken
)

// tokenMeta is the metadata every minted token carries. Vault's audit log
// records it with each request the token makes.
func tokenMeta(req Request) map[string]string {
	return map[string]string{
		"service":    req.ServiceName,
		"service_id": req.ServiceID,
		"task":       req.TaskName,
		"task_id":    req.TaskID,
		"node_id":    req.NodeID,
		"secret":     req.SecretName,
	}
}

// mint creates a token for one task with the plugin's own token, through
// TOKEN_ROLE when the operator set one.
func (p *Provider) mint(ctx context.Context, req Request, policies []string, kind tokenKind, ttl time.Duration) (*api.Secret, error) {
	tcr := &api.TokenCreateRequest{
		Policies:    policies,
		Metadata:    tokenMeta(req),
		TTL:         ttl.String(),
		DisplayName: req.TaskName,
	}
	if kind == readToken {
		tcr.Type = "batch"
	} else {
		tcr.ExplicitMaxTTL = p.opts.TokenMaxTTL.String()
	}
	create := func() (*api.Secret, error) {
		tokens := p.vault.Auth().Token()
		switch {
		case p.opts.TokenRole != "":
			return tokens.CreateWithRoleWithContext(ctx, tcr, p.opts.TokenRole)
		case kind == taskToken:
			return tokens.CreateOrphanWithContext(ctx, tcr)
		default:
			return tokens.CreateWithContext(ctx, tcr)
		}
	}
	used := p.vault.Token()
	s, err := create()
	if (invalidToken(err) || used == "" && isForbidden(err)) && p.opts.Reauth != nil {
		// The plugin's token died (revoked, expired, Vault restored from a
		// backup), or the first login is not done yet: one login, shared
		// with concurrent requests, then retry.
		if rerr := p.opts.Reauth.Reauth(ctx, used); rerr != nil {
			return nil, fmt.Errorf("Vault refused the plugin's token and %w", rerr)
		}
		s, err = create()
	}
	if err != nil {
		return nil, p.mintError(err, req, policies)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("Vault returned no token for service %s", req.ServiceName)
	}
	if kind == taskToken && !s.Auth.Orphan {
		// Handed out, it would die whenever the plugin's token does.
		p.revokeQuietly(s.Auth.Accessor)
		return nil, fmt.Errorf("TOKEN_ROLE %s makes child tokens, which die with the plugin's token: set orphan=true on the role", p.opts.TokenRole)
	}
	return s, nil
}

// tokenCache keeps read tokens of vault.reuse=true secrets, by policy set.
type tokenCache struct {
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	client *api.Client
	until  time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{now: time.Now, tokens: map[string]cachedToken{}}
}

func (c *tokenCache) get(key string) (*api.Client, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[key]
	if !ok || c.now().After(t.until) {
		delete(c.tokens, key)
		return nil, false
	}
	return t.client, true
}

func (c *tokenCache) put(key string, client *api.Client, life time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens[key] = cachedToken{client: client, until: c.now().Add(life)}
}

func (c *tokenCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tokens, key)
}

// invalidToken tells a refused token from a token that lacks a permission:
// Vault adds "invalid token" only for the former. Only then does a re-login
// help; for a missing permission it would be a login per request.
func invalidToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "invalid token") {
			return true
		}
	}
	return false
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

func (p *Provider) mintError(err error, req Request, policies []string) error {
	path := "auth/token/create"
	if p.opts.TokenRole != "" {
		path += "/" + p.opts.TokenRole
	}
	var re *api.ResponseError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("Vault did not answer in time to create a token for service %s: check Vault's health or raise VAULT_CLIENT_TIMEOUT", req.ServiceName)
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("the plugin's token may not create tokens for service %s: grant it update on %s (and sudo for create-orphan without TOKEN_ROLE)", req.ServiceName, path)
	case errors.As(err, &re):
		return fmt.Errorf("Vault refused a token with policies %s for service %s (HTTP %d: %s): check POLICY_TEMPLATE and TOKEN_ROLE", strings.Join(policies, ","), req.ServiceName, re.StatusCode, strings.Join(re.Errors, "; "))
	default:
		return fmt.Errorf("cannot reach Vault to create a token for service %s: %v; check VAULT_ADDR and that Vault is up", req.ServiceName, transportCause(err))
	}
}

// revokeQuietly revokes a token the plugin must not hand out. Its own
// deadline: the request's may be what failed.
func (p *Provider) revokeQuietly(accessor string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	if err := p.vault.Auth().Token().RevokeAccessorWithContext(ctx, accessor); err != nil {
		p.log.WithError(err).Warn("could not revoke a task token minted by a TOKEN_ROLE that is not orphan")
	}
}

// withToken returns a client that acts as token. It shares the plugin
// client's HTTP transport (and its idle connections) and headers.
func (p *Provider) withToken(token string) (*api.Client, error) {
	c, err := p.vault.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("failed to clone the Vault client: %w", err)
	}
	c.SetToken(token)
	return c, nil
}

// wrap response-wraps data with sys/wrapping/wrap and returns the single-use
// wrapping token. Unwrapping gives data back, as `vault unwrap` shows it.
func wrap(ctx context.Context, client *api.Client, data map[string]any, ttl time.Duration, where string) ([]byte, error) {
	c, err := client.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("failed to clone the Vault client: %w", err)
	}
	c.SetToken(client.Token())
	ttlText := ttl.String()
	c.SetWrappingLookupFunc(func(string, string) string { return ttlText })
	s, err := c.Logical().WriteWithContext(ctx, "sys/wrapping/wrap", data)
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("Vault refused to wrap %s (HTTP %d: %s): the task's policies need update on sys/wrapping/wrap (the default policy has it)", where, re.StatusCode, strings.Join(re.Errors, "; "))
		}
		return nil, fmt.Errorf("cannot wrap %s: %w", where, err)
	}
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		return nil, fmt.Errorf("Vault returned no wrapping token for %s", where)
	}
	return []byte(s.WrapInfo.Token), nil
}
