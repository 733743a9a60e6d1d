package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Verify asks Vault whether a request would be served, the way GetSecret
// would serve it, and delivers nothing: swarmvault check --vault. The
// Provider's client carries the operator's token in place of the plugin's.
//
//   - kv: a read token is minted for the task's policies and reads the
//     secret, so the mount, the path, the version, the field and the
//     template are all checked by the code that serves them; the value is
//     dropped. A vault.wrap=true secret is read unwrapped (a wrapping token
//     nobody unwraps would be a credential left lying about).
//   - token: the task token is minted as the plugin mints it (TOKEN_ROLE,
//     TOKEN_TTL, vault.token.policies, orphan) and revoked at once.
//   - read, write: the task token a read or write is made with is minted,
//     asked for its capabilities on the path, and revoked. The read or write
//     itself is not made: it would issue credentials (a database user, a
//     certificate) to nobody.
//
// It returns what Check does, and an error of the same sentence and
// outcome GetSecret would give.
func (p *Provider) Verify(ctx context.Context, req Request) (Plan, []string, error) {
	plan, policies, err := p.Check(req)
	if err != nil {
		return plan, policies, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	switch plan.Type {
	case TypeToken:
		s, err := p.taskTokenFor(ctx, req, plan, policies, 0)
		if err != nil {
			return plan, policies, err
		}
		p.revokeMinted(s)
		return plan, policies, nil
	case TypeRead, TypeWrite:
		return plan, policies, p.verifyLogical(ctx, req, plan, policies)
	default:
		unwrapped := plan
		unwrapped.Wrap = false
		_, err := p.kvValue(ctx, req, unwrapped, policies, "")
		return plan, policies, err
	}
}

// verifyLogical mints the token a read or write would be made with and asks
// Vault what it may do on the path.
func (p *Provider) verifyLogical(ctx context.Context, req Request, plan Plan, policies []string) error {
	s, err := p.taskTokenFor(ctx, req, plan, policies, 0)
	if err != nil {
		return err
	}
	defer p.revokeMinted(s)
	client, err := p.withToken(s.Auth.ClientToken)
	if err != nil {
		return err
	}
	// The mount first: a path on no mount is a typo, not a policy to fix.
	if _, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+plan.Path); err != nil {
		if vaultkv.Forbidden(err) {
			return classify(fmt.Errorf("Vault path %s is on no mount the token may use: check label %s (its first segment is the mount, e.g. database/) and that the token's policies grant %s on the path", plan.Path, LabelPath, plan.Type), OutcomeDenied)
		}
		return vaultErrorDoing(err, string(plan.Type), plan.Path, plan.Path)
	}
	caps, err := client.Sys().CapabilitiesSelfWithContext(ctx, plan.Path)
	if err != nil {
		return vaultErrorDoing(err, string(plan.Type), plan.Path, plan.Path)
	}
	need := []string{"read"}
	if plan.Type == TypeWrite {
		// vault write is a create or an update, as the path's handler
		// decides; a policy that grants either one may be enough.
		need = []string{"create", "update"}
	}
	if slices.Contains(caps, "root") || slices.ContainsFunc(need, func(c string) bool { return slices.Contains(caps, c) }) {
		return nil
	}
	asked := policies
	if plan.TokenPolicies != nil {
		asked = plan.TokenPolicies
	}
	return classify(fmt.Errorf("policies %s of service %s do not grant %s on Vault path %s (%s=%s; the token may: %s): add it to a policy POLICY_TEMPLATE gives the service",
		strings.Join(asked, ","), req.ServiceName, strings.Join(need, " or "), plan.Path, LabelType, plan.Type, capsText(caps)), OutcomeDenied)
}

// revokeMinted ends a token Verify minted. The token revokes itself (the
// default policy allows it), so the operator's token needs no revoke
// right; by accessor if that fails.
func (p *Provider) revokeMinted(s *api.Secret) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	if c, err := p.withToken(s.Auth.ClientToken); err == nil {
		if err := c.Auth().Token().RevokeSelfWithContext(ctx, ""); err == nil {
			return
		}
	}
	p.revokeQuietly(s.Auth.Accessor, "the token swarmvault check minted")
}

func capsText(caps []string) string {
	if len(caps) == 0 || slices.Equal(caps, []string{"deny"}) {
		return "nothing"
	}
	return strings.Join(caps, ",")
}

// CanMint says whether client's token may create task tokens the way a
// Provider with opts does (through TOKEN_ROLE; else child batch tokens for
// KV reads, and with orphans set orphan tokens for token, read and write),
// and if not, what to grant: swarmvault check --vault mints with the
// operator's token, which needs what the plugin's has.
func CanMint(ctx context.Context, client *api.Client, opts Options, orphans bool) error {
	paths := []string{"auth/token/create"}
	switch {
	case opts.TokenRole != "":
		paths = []string{"auth/token/create/" + opts.TokenRole}
	case orphans:
		paths = append(paths, "auth/token/create-orphan")
	}
	for _, path := range paths {
		caps, err := client.Sys().CapabilitiesSelfWithContext(ctx, path)
		if err != nil {
			return fmt.Errorf("cannot ask Vault what the token may do on %s: %s", path, vaultkv.ErrorText(err))
		}
		if !slices.Contains(caps, "root") && !slices.Contains(caps, "update") {
			return fmt.Errorf("the token may not create tokens on %s (it may: %s): check mints a token for each service as the plugin does, so use a token with the plugin's rights (update on %s, and sudo without TOKEN_ROLE)",
				path, capsText(caps), path)
		}
	}
	return nil
}
