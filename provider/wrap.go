package provider

import (
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"
)

// Wrapping happens at the source: the Vault call that makes the value (the
// token create, the KV read, the logical read or write) is answered
// response-wrapped, so the wrapping token's creation_path names that call
// (auth/token/create-orphan, secret/data/app/db, database/creds/app). A task
// can check it with sys/wrapping/lookup before unwrapping, as the plugin
// checks its own wrapped secret-id. A value wrapped afterwards through
// sys/wrapping/wrap would carry that path instead, which anyone with a token
// can produce.

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
