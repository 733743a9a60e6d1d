package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// tokenKind says what a minted token is for.
type tokenKind int

const (
	// readToken never leaves the plugin: it reads the KV secrets of one
	// task. A batch token: Vault does not persist it, so minting is cheap,
	// and its short TTL ends it without a revoke call (batch tokens have
	// none).
	readToken tokenKind = iota
	// sharedReadToken is a readToken that reads vault.reuse=true secrets
	// (and rotation's checks) for every task of a policy set: its metadata
	// names no service or task.
	sharedReadToken
	// taskToken is handed to the task. An orphan service token, so that it
	// outlives the plugin's own token (a child dies with its parent, which
	// a new login replaces and an expiry ends) and the task can renew it up
	// to the operator's maximum.
	taskToken
)

// tokenMeta is the metadata a minted token carries: Vault's audit log
// records it with each request the token makes, next to the path. It names
// only what the token is for: a read token reads several secrets of its
// task. A shared one reads for every service and task of its policy set,
// so it names none: the first caller's name would have Vault's audit log
// attribute every other service's reads to that one.
func tokenMeta(req Request, kind tokenKind) map[string]string {
	if kind == sharedReadToken {
		return map[string]string{"purpose": "shared-read"}
	}
	m := map[string]string{"service": req.ServiceName, "service_id": req.ServiceID,
		"task": req.TaskName, "task_id": req.TaskID, "node_id": req.NodeID}
	if kind == taskToken {
		m["secret"] = req.SecretName
	}
	return m
}

// displayName is a minted token's display_name, which the audit log shows
// too: the task's name, or for a shared token one of its own.
func displayName(req Request, kind tokenKind) string {
	if kind == sharedReadToken {
		return "swarmvault-shared-read"
	}
	return req.TaskName
}

// mint creates a token for one task with the plugin's own token, through
// TOKEN_ROLE when the operator set one, and never with a policy the
// plugin's token holds (refuseOwnPolicies). With wrapTTL > 0 Vault answers the
// create response-wrapped: the plugin never sees the token, only the
// wrapping token and the wrapped token's accessor.
func (p *Provider) mint(ctx context.Context, req Request, policies []string, kind tokenKind, ttl, wrapTTL time.Duration) (*api.Secret, error) {
	tcr := &api.TokenCreateRequest{
		Policies:    policies,
		Metadata:    tokenMeta(req, kind),
		TTL:         ttl.String(),
		DisplayName: displayName(req, kind),
	}
	if kind != taskToken {
		tcr.Type = "batch"
	} else {
		tcr.ExplicitMaxTTL = p.opts.TokenMaxTTL.String()
	}
	create := func() (*api.Secret, error) {
		client := p.vault
		if wrapTTL > 0 {
			var err error
			if client, err = wrapping(p.vault, wrapTTL); err != nil {
				return nil, err
			}
		}
		tokens := client.Auth().Token()
		switch {
		case p.opts.TokenRole != "":
			return tokens.CreateWithRoleWithContext(ctx, tcr, p.opts.TokenRole)
		case kind == taskToken:
			return tokens.CreateOrphanWithContext(ctx, tcr)
		default:
			return tokens.CreateWithContext(ctx, tcr)
		}
	}
	// Each try asks first which policies the token it mints with holds:
	// a new login may bring a token with others.
	try := func() (*api.Secret, error) {
		if err := p.refuseOwnPolicies(ctx, req, policies); err != nil {
			return nil, err
		}
		return create()
	}
	used := p.vault.Token()
	s, err := try()
	if (vaultkv.InvalidToken(err) || used == "" && vaultkv.Forbidden(err)) && p.opts.Reauth != nil {
		// The plugin's token died (revoked, expired, Vault restored from a
		// backup), or the first login is not done yet: one login, shared
		// with concurrent requests, then retry.
		if rerr := p.opts.Reauth.Reauth(ctx, used); rerr != nil {
			return nil, fmt.Errorf("Vault refused the plugin's token and %w", rerr)
		}
		s, err = try()
	}
	switch {
	case errors.As(err, new(lookupSelfError)):
		return nil, p.lookupSelfFailure(err, req)
	case errors.As(err, new(classified)):
		// refuseOwnPolicies's own sentence: a policy the plugin holds, or an answer that is
		// not Vault's.
		return nil, err
	case err != nil:
		return nil, p.mintError(err, req, policies)
	}
	if wrapTTL > 0 {
		if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
			return nil, fmt.Errorf("Vault returned no wrapped token for service %s", req.ServiceName)
		}
		if kind == taskToken && p.opts.TokenRole != "" {
			return s, p.checkOrphan(ctx, s.WrapInfo.WrappedAccessor)
		}
		return s, nil
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("Vault returned no token for service %s", req.ServiceName)
	}
	if kind == taskToken && !s.Auth.Orphan {
		p.revokeQuietly(s.Auth.Accessor, "a task token minted by a TOKEN_ROLE that is not orphan")
		return nil, errNotOrphan(p.opts.TokenRole)
	}
	return s, nil
}

// errNotOrphan: a task token that is not an orphan would die whenever the
// plugin's token does.
func errNotOrphan(role string) error {
	return fmt.Errorf("TOKEN_ROLE %s makes child tokens, which die with the plugin's token: set orphan=true on the role", role)
}

// checkOrphan checks that a wrapped task token made through TOKEN_ROLE is an
// orphan: the plugin cannot see the token itself, only its accessor.
func (p *Provider) checkOrphan(ctx context.Context, accessor string) error {
	s, err := p.vault.Auth().Token().LookupAccessorWithContext(ctx, accessor)
	if err != nil {
		if vaultkv.Forbidden(err) {
			return fmt.Errorf("the plugin's token may not look up the accessor of a wrapped task token: grant it update on auth/token/lookup-accessor, needed with TOKEN_ROLE and vault.wrap to check the role makes orphans")
		}
		return fmt.Errorf("cannot look up a wrapped task token's accessor: %s", vaultkv.ErrorText(err))
	}
	if orphan, _ := s.Data["orphan"].(bool); !orphan {
		p.revokeQuietly(accessor, "a task token minted by a TOKEN_ROLE that is not orphan")
		return errNotOrphan(p.opts.TokenRole)
	}
	return nil
}

// maxCachedTokens bounds the read tokens a tokenCache keeps: a
// POLICY_TEMPLATE with .TaskID makes a policy set per task.
const maxCachedTokens = 256

// tokenCache keeps batch read tokens, each for half the TTL Vault granted
// it, by a key readKey gives: the Provider has one for the shared read
// tokens of vault.reuse=true secrets (by policy set), and one for each
// task's read token (by task and policy set), which a task's several
// secrets share.
type tokenCache = expiring[*api.Client]

func newTokenCache() *tokenCache { return newExpiring[*api.Client](maxCachedTokens) }

// makeRoom readies m, a cache of at most max entries that each expire at
// until, for an entry under key: if key is new and m is full, expired
// entries go, then, if still full, the one that would expire soonest.
func makeRoom[V any](m map[string]V, key string, max int, now time.Time, until func(V) time.Time) {
	if _, ok := m[key]; ok || len(m) < max {
		return
	}
	soonest := ""
	for k, v := range m {
		if !now.Before(until(v)) {
			delete(m, k)
		} else if soonest == "" || until(v).Before(until(m[soonest])) {
			soonest = k
		}
	}
	if len(m) >= max {
		delete(m, soonest)
	}
}

func (p *Provider) mintError(err error, req Request, policies []string) error {
	path := "auth/token/create"
	if p.opts.TokenRole != "" {
		path += "/" + p.opts.TokenRole
	}
	var re *api.ResponseError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return classify(fmt.Errorf("Vault did not answer in time to create a token for service %s: check Vault's health or raise VAULT_CLIENT_TIMEOUT", req.ServiceName), OutcomeUnavailable)
	case vaultkv.Forbidden(err):
		return classify(fmt.Errorf("the plugin's token may not create tokens for service %s: grant it update on %s (and sudo for create-orphan without TOKEN_ROLE)", req.ServiceName, path), OutcomeDenied)
	}
	if what, fix, ok := vaultkv.NotServing(err); ok {
		return classify(fmt.Errorf("%s, so the plugin cannot create a token for service %s: %s; swarm retries the task", what, req.ServiceName, fix), OutcomeUnavailable)
	}
	switch {
	case errors.As(err, &re) && re.StatusCode >= http.StatusInternalServerError:
		// Vault took the request and could not carry it out (its storage):
		// not a refusal of the policies.
		return fmt.Errorf("Vault failed to create a token for service %s (%s): fix what Vault names (its storage); swarm retries the task", req.ServiceName, vaultkv.ErrorText(re))
	case errors.As(err, &re):
		return fmt.Errorf("Vault refused a token with policies %s for service %s (%s): check POLICY_TEMPLATE and TOKEN_ROLE", strings.Join(policies, ","), req.ServiceName, vaultkv.ErrorText(re))
	default:
		return classify(fmt.Errorf("cannot reach Vault to create a token for service %s: %v; check VAULT_ADDR and that Vault is up", req.ServiceName, transportCause(err)), OutcomeUnavailable)
	}
}

// revokeQuietly revokes a token the plugin will not hand out (what says
// which). Its own deadline: the request's may be what failed.
func (p *Provider) revokeQuietly(accessor, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	if err := p.vault.Auth().Token().RevokeAccessorWithContext(ctx, accessor); err != nil {
		p.log.Warnf("could not revoke %s: %s", what, vaultkv.ErrorText(err))
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
