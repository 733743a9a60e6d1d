package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Whoever deploys a service picks its name and its deploy.labels, and so
// the policies POLICY_TEMPLATE renders from them: with the default
// {{.ServiceName}}, a service named after the plugin's own policy would be
// handed that policy (without TOKEN_ROLE, Vault does not even bound a
// sudo token's children). So no token minted for a request carries a
// policy the plugin's own token holds, other than default, whatever the
// template renders; the plugin learns its policies from Vault.

// ownPoliciesTTL is how long the plugin's policies are trusted for one
// token value. A token's own policies never change, but its identity
// policies (its entity's and groups') may be widened while it lives.
const ownPoliciesTTL = 5 * time.Minute

// ownPolicyCache keeps the policies of the plugin's token, for one token
// value at a time: a new login gives a new token, which is asked again.
type ownPolicyCache struct {
	now   func() time.Time
	group singleflight.Group

	mu    sync.Mutex
	token string // the token they are of; never logged
	names []string
	until time.Time
}

func newOwnPolicyCache() *ownPolicyCache { return &ownPolicyCache{now: time.Now} }

func (h *ownPolicyCache) get(token string) ([]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.token != token || !h.now().Before(h.until) {
		return nil, false
	}
	return h.names, true
}

func (h *ownPolicyCache) put(token string, names []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.token, h.names, h.until = token, names, h.now().Add(ownPoliciesTTL)
}

// lookupSelfError is a failed auth/token/lookup-self. It keeps Vault's
// error, so that mint can tell a dead plugin token (log in again) from a
// missing permission.
type lookupSelfError struct{ err error }

func (e lookupSelfError) Error() string { return e.err.Error() }
func (e lookupSelfError) Unwrap() error { return e.err }

// ownPolicies returns the policies the plugin's current token holds
// (policies and identity_policies, lowercased as Vault keeps them): asked
// once per token value and ownPoliciesTTL, concurrent requests sharing one
// lookup with a deadline of its own. A failed call is a lookupSelfError;
// an answer that is not Vault's, a classified error.
func (p *Provider) ownPolicies(ctx context.Context) ([]string, error) {
	token := p.vault.Token()
	if names, ok := p.own.get(token); ok {
		return names, nil
	}
	names, err := sharedCall(ctx, &p.own.group, token, p.opts.Timeout, func(ctx context.Context) ([]string, error) {
		// A client of its own: the plugin's may log in again meanwhile,
		// and the answer must be kept under the token it is about.
		client, err := p.withToken(token)
		if err != nil {
			return nil, classify(err, OutcomeInternal)
		}
		s, err := client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, lookupSelfError{err}
		}
		names, err := lookupSelfPolicies(s)
		if err != nil {
			return nil, classify(err, OutcomeVault)
		}
		p.own.put(token, names)
		return names, nil
	})
	if err != nil && err == ctx.Err() {
		return nil, lookupSelfError{err}
	}
	return names, err
}

// lookupSelfPolicies reads a lookup-self answer's policies and
// identity_policies.
func lookupSelfPolicies(s *api.Secret) ([]string, error) {
	if s == nil || s.Data == nil {
		return nil, errors.New("Vault's answer to auth/token/lookup-self holds no data: check that VAULT_ADDR points at Vault")
	}
	var names []string
	for _, key := range []string{"policies", "identity_policies"} {
		v, ok := s.Data[key]
		if !ok || v == nil {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("Vault's answer to auth/token/lookup-self has %s that are not a list: check that VAULT_ADDR points at Vault", key)
		}
		for _, e := range list {
			name, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("Vault's answer to auth/token/lookup-self has %s that are not names: check that VAULT_ADDR points at Vault", key)
			}
			names = append(names, strings.ToLower(name))
		}
	}
	return names, nil
}

// refuseOwnPolicies fails a mint whose policies include one the plugin's token
// holds (default aside: every token has it).
func (p *Provider) refuseOwnPolicies(ctx context.Context, req Request, policies []string) error {
	own, err := p.ownPolicies(ctx)
	if err != nil {
		return err
	}
	for _, pol := range policies {
		// Vault lowercases policy names: Swarmvault-Plugin is swarmvault-plugin.
		if lower := strings.ToLower(pol); lower != "default" && slices.Contains(own, lower) {
			return classify(fmt.Errorf("POLICY_TEMPLATE %s gives service %s policy %s, which the plugin's own token holds: swarmvault never hands a task its own policies; rename the service or change POLICY_TEMPLATE",
				p.opts.Policies.text, req.ServiceName, pol), OutcomeConfig)
		}
	}
	return nil
}

// lookupSelfFailure is the request's error when the plugin could not learn
// its own policies (err a lookupSelfError): nothing is minted without them.
func (p *Provider) lookupSelfFailure(err error, req Request) error {
	var re *api.ResponseError
	switch {
	case vaultkv.Forbidden(err):
		return classify(errors.New("the plugin's token may not look up its own policies, which no task token may carry: grant it read on auth/token/lookup-self (Vault's default policy has it)"), OutcomeDenied)
	case errors.As(err, &re):
		return fmt.Errorf("Vault refused to tell the plugin's token its own policies, which no task token may carry (%s): check that the plugin's token may read auth/token/lookup-self", vaultkv.ErrorText(re))
	}
	// Out of time or out of reach: said as for the token it was asked for.
	return p.mintError(errors.Unwrap(err), req, nil)
}
