package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// mount is what Vault says about the mount a path lives on.
type mount struct {
	// path is the mount's path with a trailing slash, e.g. "secret/".
	path      string
	kvVersion int
	fetched   time.Time
}

// mountCache remembers the KV version of each mount seen, so that a request
// costs one Vault round trip, not two. Entries expire because an operator may
// upgrade a mount from KV v1 to v2 without restarting the plugin.
type mountCache struct {
	ttl time.Duration
	now func() time.Time

	mu     sync.RWMutex
	mounts map[string]mount
}

func newMountCache(ttl time.Duration) *mountCache {
	return &mountCache{ttl: ttl, now: time.Now, mounts: map[string]mount{}}
}

// lookup returns the longest cached mount that path lives on.
func (c *mountCache) lookup(path string) (mount, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best mount
	now := c.now()
	for p, m := range c.mounts {
		if strings.HasPrefix(path+"/", p) && len(p) > len(best.path) && now.Sub(m.fetched) < c.ttl {
			best = m
		}
	}
	return best, best.path != ""
}

func (c *mountCache) store(m mount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.fetched = c.now()
	c.mounts[m.path] = m
}

// kvMount finds the mount of path and its KV version, as `vault kv get` does,
// through sys/internal/ui/mounts, which answers any token that may use the path.
func (p *Provider) kvMount(ctx context.Context, client *api.Client, path string) (mount, error) {
	if m, ok := p.mounts.lookup(path); ok {
		return m, nil
	}
	s, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	var re *api.ResponseError
	if invalidToken(err) {
		return mount{}, fmt.Errorf("%w: Vault refused the task's token to read path %s", errInvalidToken, path)
	}
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		// Vault answers a path under no mount and a path the token may not
		// use alike, so as not to reveal which mounts exist.
		return mount{}, classify(fmt.Errorf("Vault path %s is on no mount the token may read: check label %s (its first segment is the mount, e.g. secret/) and that the token's policies grant read on the path", path, LabelPath), OutcomeDenied)
	}
	if err != nil {
		return mount{}, vaultError(err, path, path)
	}
	if s == nil || s.Data == nil {
		return mount{}, fmt.Errorf("no Vault mount holds path %s: check label %s (the first segment is the mount, e.g. secret/)", path, LabelPath)
	}
	mountPath, _ := s.Data["path"].(string)
	mountType, _ := s.Data["type"].(string)
	if mountPath == "" {
		return mount{}, fmt.Errorf("no Vault mount holds path %s: check label %s (the first segment is the mount, e.g. secret/)", path, LabelPath)
	}
	m := mount{path: mountPath, kvVersion: 1}
	switch mountType {
	case "kv", "generic":
		if opts, ok := s.Data["options"].(map[string]any); ok && opts["version"] == "2" {
			m.kvVersion = 2
		}
	default:
		return mount{}, fmt.Errorf("Vault path %s is on a %s mount (%s), not a KV mount: check label %s", path, mountType, mountPath, LabelPath)
	}
	p.mounts.store(m)
	return m, nil
}

// readKV reads a KV secret, KV v1 or v2 as the mount says, and returns the
// secret's value: rendered, or with vault.wrap the read's own answer wrapped.
func (p *Provider) readKV(ctx context.Context, client *api.Client, plan Plan) ([]byte, error) {
	m, err := p.kvMount(ctx, client, plan.Path)
	if err != nil {
		return nil, err
	}
	mountName := strings.TrimSuffix(m.path, "/")
	rel := strings.TrimPrefix(plan.Path, m.path)
	if rel == "" || plan.Path+"/" == m.path {
		return nil, fmt.Errorf("label %s=%s names the mount itself: add the secret's path below it, e.g. %ssomething", LabelPath, plan.Path, m.path)
	}
	if m.kvVersion == 1 && plan.Version != 0 {
		return nil, fmt.Errorf("label %s=%d cannot apply to Vault path %s: mount %s is KV v1, which keeps no versions", LabelVersion, plan.Version, plan.Path, m.path)
	}
	if plan.Wrap {
		return p.readKVWrapped(ctx, client, plan, m, rel)
	}

	if m.kvVersion == 1 {
		s, err := client.KVv1(mountName).Get(ctx, rel)
		if err != nil {
			return nil, kvError(err, plan, m.path+rel)
		}
		return render(s.Data, plan)
	}

	apiPath := m.path + "data/" + rel
	var s *api.KVSecret
	if plan.Version != 0 {
		s, err = client.KVv2(mountName).GetVersion(ctx, rel, plan.Version)
	} else {
		s, err = client.KVv2(mountName).Get(ctx, rel)
	}
	if err != nil {
		return nil, kvError(err, plan, apiPath)
	}
	if s.Data == nil {
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
	return render(s.Data, plan)
}

// readKVWrapped reads a KV secret response-wrapped, as `vault kv get
// -wrap-ttl` does: the wrapping token's creation path is the KV API path
// (secret/data/app/db on KV v2). api's KV helpers cannot read wrapped, so the
// API path is the one the mount look-up gave.
func (p *Provider) readKVWrapped(ctx context.Context, client *api.Client, plan Plan, m mount, rel string) ([]byte, error) {
	apiPath := m.path + rel
	var query map[string][]string
	if m.kvVersion == 2 {
		apiPath = m.path + "data/" + rel
		if plan.Version != 0 {
			query = map[string][]string{"version": {strconv.Itoa(plan.Version)}}
		}
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
	case invalidToken(err):
		return fmt.Errorf("%w: Vault refused the task's token to %s path %s", errInvalidToken, doing, path)
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return classify(fmt.Errorf("permission denied to %s Vault path %s: the token's policies must grant %s on %s", doing, path, capability, apiPath), OutcomeDenied)
	case errors.As(err, &re):
		return fmt.Errorf("Vault refused to %s path %s (HTTP %d: %s)", doing, path, re.StatusCode, vaultErrors(re))
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
