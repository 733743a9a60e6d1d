package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// kvMount finds the mount of path and its KV version (vaultkv.Lookup,
// through the Provider's cache), in a sentence that names label
// vault.path when Vault's answer is no KV mount.
func (p *Provider) kvMount(ctx context.Context, client *api.Client, path string) (vaultkv.Mount, error) {
	m, err := p.mounts.Lookup(ctx, client, path)
	var notKV *vaultkv.NotKVError
	switch {
	case err == nil:
		return m, nil
	case vaultkv.InvalidToken(err):
		return vaultkv.Mount{}, fmt.Errorf("%w: Vault refused the task's token to read path %s", errInvalidToken, path)
	case vaultkv.Forbidden(err):
		// Vault answers a path under no mount and a path the token may not
		// use alike, so as not to reveal which mounts exist.
		return vaultkv.Mount{}, classify(fmt.Errorf("Vault path %s is on no mount the token may read: check label %s (its first segment is the mount, e.g. secret/) and that the token's policies grant read on the path", path, LabelPath), OutcomeDenied)
	case errors.Is(err, vaultkv.ErrNoMount):
		return vaultkv.Mount{}, fmt.Errorf("no Vault mount holds path %s: check label %s (the first segment is the mount, e.g. secret/)", path, LabelPath)
	case errors.As(err, &notKV):
		return vaultkv.Mount{}, fmt.Errorf("Vault path %s is on a %s mount (%s), not a KV mount: check label %s", path, notKV.Type, notKV.Mount, LabelPath)
	default:
		return vaultkv.Mount{}, vaultError(err, path, path)
	}
}

// readKV reads a KV secret, KV v1 or v2 as the mount says, and returns the
// secret's value: rendered, or with vault.wrap the read's own answer wrapped.
func (p *Provider) readKV(ctx context.Context, client *api.Client, plan Plan, source string) ([]byte, error) {
	m, err := p.kvMount(ctx, client, plan.Path)
	if err != nil {
		return nil, err
	}
	rel := strings.TrimPrefix(plan.Path, m.Path)
	if rel == "" || plan.Path+"/" == m.Path {
		return nil, fmt.Errorf("label %s=%s names the mount itself: add the secret's path below it, e.g. %ssomething", LabelPath, plan.Path, m.Path)
	}
	if m.Version == 1 && plan.Version != 0 {
		return nil, fmt.Errorf("label %s=%d cannot apply to Vault path %s: mount %s is KV v1, which keeps no versions", LabelVersion, plan.Version, plan.Path, m.Path)
	}
	if plan.WrapsAtSource() {
		return p.readKVWrapped(ctx, client, plan, m, rel)
	}
	s, err := m.Get(ctx, client, rel, plan.Version)
	if err != nil {
		return nil, kvError(err, plan, m.DataPath(rel))
	}
	if m.Version == 2 && s.Data == nil {
		// KV v2 answers a deleted or destroyed version with its metadata only.
		which := "the latest version"
		if plan.Version != 0 {
			which = fmt.Sprintf("version %d", plan.Version)
		}
		if md := s.VersionMetadata; md != nil {
			which = fmt.Sprintf("version %d", md.Version)
			if md.Destroyed {
				return nil, fmt.Errorf("%s of Vault path %s is destroyed: set label %s to a live version or write a new one", which, plan.Path, LabelVersion)
			}
		}
		return nil, fmt.Errorf("%s of Vault path %s is deleted: undelete it (vault kv undelete) or set label %s to a live version", which, plan.Path, LabelVersion)
	}
	value, err := p.finish(ctx, s.Data, plan)
	if err == nil {
		p.sources.keep(source, s.Data)
	}
	return value, err
}

// readKVWrapped reads a KV secret response-wrapped, as `vault kv get
// -wrap-ttl` does: the wrapping token's creation path is the KV API path
// (secret/data/app/db on KV v2). api's KV helpers cannot read wrapped, so
// this is a logical read of the mount's DataPath.
func (p *Provider) readKVWrapped(ctx context.Context, client *api.Client, plan Plan, m vaultkv.Mount, rel string) ([]byte, error) {
	apiPath := m.DataPath(rel)
	var query map[string][]string
	if plan.Version != 0 {
		query = map[string][]string{"version": {strconv.Itoa(plan.Version)}}
	}
	wc, err := wrapping(client, p.wrapTTL(plan))
	if err != nil {
		return nil, err
	}
	s, err := wc.Logical().ReadWithDataWithContext(ctx, apiPath, query)
	if err != nil {
		return nil, kvError(err, plan, apiPath)
	}
	if s == nil {
		return nil, kvError(api.ErrSecretNotFound, plan, apiPath)
	}
	return wrapToken(s, plan.where())
}

func kvError(err error, plan Plan, apiPath string) error {
	if errors.Is(err, api.ErrSecretNotFound) {
		if plan.Version != 0 {
			return fmt.Errorf("Vault path %s has no version %d: check labels %s and %s", plan.Path, plan.Version, LabelPath, LabelVersion)
		}
		return fmt.Errorf("no secret at Vault path %s: check label %s", plan.Path, LabelPath)
	}
	return vaultError(err, plan.Path, apiPath)
}

// vaultError turns a failed Vault call into one sentence that says what to
// fix. Vault's own error strings are kept (they name paths and causes, never
// secret data); the multi-line form of api.ResponseError is not.
func vaultError(err error, path, apiPath string) error {
	return vaultErrorDoing(err, "read", path, apiPath)
}

// vaultErrorDoing is vaultError for a call that does more than read
// ("write" for vault.type=write).
func vaultErrorDoing(err error, doing, path, apiPath string) error {
	var re *api.ResponseError
	var ue *url.Error
	capability := "read"
	if doing == "write" {
		capability = "update"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return classify(fmt.Errorf("Vault did not answer in time to %s path %s: check Vault's health or raise VAULT_CLIENT_TIMEOUT", doing, path), OutcomeUnavailable)
	case vaultkv.InvalidToken(err):
		return fmt.Errorf("%w: Vault refused the task's token to %s path %s", errInvalidToken, doing, path)
	case vaultkv.Forbidden(err):
		return classify(fmt.Errorf("permission denied to %s Vault path %s: the token's policies must grant %s on %s", doing, path, capability, apiPath), OutcomeDenied)
	}
	if what, fix, ok := vaultkv.NotServing(err); ok {
		return classify(fmt.Errorf("%s, so the plugin cannot %s path %s: %s; swarm retries the task", what, doing, path, fix), OutcomeUnavailable)
	}
	switch {
	case errors.As(err, &re) && re.StatusCode >= http.StatusInternalServerError:
		// Vault took the request and could not carry it out: a database
		// down behind database/creds, a storage error.
		return fmt.Errorf("Vault failed to %s path %s (%s): fix what Vault names (its storage, or the database or CA behind the path); swarm retries the task", doing, path, vaultkv.ErrorText(re))
	case errors.As(err, &re):
		return fmt.Errorf("Vault refused to %s path %s (%s)", doing, path, vaultkv.ErrorText(re))
	case errors.As(err, &ue):
		return classify(fmt.Errorf("cannot reach Vault to %s path %s: %v; check VAULT_ADDR and that Vault is up", doing, path, transportCause(err)), OutcomeUnavailable)
	default:
		return fmt.Errorf("Vault's answer for path %s cannot be read (%v): check that VAULT_ADDR points at Vault", path, err)
	}
}

// errInvalidToken marks a read refused because its token is no longer valid.
var errInvalidToken = errors.New("invalid token")

// transportCause is the cause of a failed HTTP call: url.Error's own text
// repeats the method and whole URL, while its cause ("dial tcp
// 127.0.0.1:8200: connect: connection refused") is the news.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
