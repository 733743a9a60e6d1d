package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Wrapping happens at the source: the Vault call that makes the value (the
// token create, the KV read, the logical read or write) is answered
// response-wrapped, so the wrapping token's creation_path names that call
// (auth/token/create-orphan, secret/data/app/db, database/creds/app). A task
// can check it with sys/wrapping/lookup before unwrapping, as the plugin
// checks its own wrapped secret-id. A value wrapped afterwards through
// sys/wrapping/wrap carries that path instead, which anyone with a token can
// produce: the plugin does so only for what Vault never answered as such, a
// field, format or template cut out of its answer (Plan.WrapsSelection).

// wrapping returns a copy of client, acting as the same token, whose every
// call Vault answers response-wrapped with ttl.
func wrapping(client *api.Client, ttl time.Duration) (*api.Client, error) {
	c, err := client.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("failed to clone the Vault client: %w", err)
	}
	c.SetToken(client.Token())
	ttlText := ttl.String()
	c.SetWrappingLookupFunc(func(string, string) string { return ttlText })
	return c, nil
}

// wrapToken is the value of a wrapped answer: the single-use wrapping token.
func wrapToken(s *api.Secret, where string) ([]byte, error) {
	if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
		return nil, fmt.Errorf("Vault returned no wrapping token for %s", where)
	}
	return []byte(s.WrapInfo.Token), nil
}

func (p *Provider) wrapTTL(plan Plan) time.Duration {
	if plan.WrapTTL > 0 {
		return plan.WrapTTL
	}
	return p.opts.WrapTTL
}

// finish renders data as plan says, and wraps the rendered value when
// vault.wrap applies to a selection (Plan.WrapsSelection).
func (p *Provider) finish(ctx context.Context, data map[string]any, plan Plan) ([]byte, error) {
	value, err := render(data, plan)
	if err != nil || !plan.WrapsSelection() {
		return value, err
	}
	return p.wrapSelected(ctx, value, plan)
}

// wrapSelected wraps a value the plugin cut out of Vault's answer with
// sys/wrapping/wrap, as the plugin's own token: unwrapping gives
// {"value": <what the file would hold unwrapped>}. The plugin holds the
// value already; the wrapping token outlives the token that made it and
// unwraps once.
func (p *Provider) wrapSelected(ctx context.Context, value []byte, plan Plan) ([]byte, error) {
	wc, err := wrapping(p.vault, p.wrapTTL(plan))
	if err != nil {
		return nil, err
	}
	s, err := wc.Logical().WriteWithContext(ctx, wrapPath, map[string]any{"value": string(value)})
	if vaultkv.Forbidden(err) {
		return nil, classify(fmt.Errorf("the plugin's token may not wrap the value of %s: grant it update on %s (Vault's default policy does)", plan.where(), wrapPath), OutcomeDenied)
	}
	if err != nil {
		return nil, vaultErrorDoing(err, "write", wrapPath, wrapPath)
	}
	return wrapToken(s, plan.where())
}

// wrapPath is where the plugin wraps a selected value, and the creation
// path of its wrapping token.
const wrapPath = "sys/wrapping/wrap"
