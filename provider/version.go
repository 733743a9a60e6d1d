package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Version is a KV v2 secret's current version: what rotation compares with
// the tasks that hold the secret.
type Version struct {
	Number  int
	Created time.Time
}

// ErrNotVersioned: the secret is on a KV v1 mount, which keeps no versions.
var ErrNotVersioned = errors.New("KV v1 keeps no versions")

// CurrentVersion reads the current version of the KV v2 secret that
// req.SecretLabels name, as the tasks of req.ServiceName read it: with a
// read token of the service's policies, shared by every check of that
// policy set for half its TTL, never a token per task. The value read is
// dropped at once.
func (p *Provider) CurrentVersion(ctx context.Context, req Request) (Version, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	plan, client, err := p.rotationReader(ctx, req)
	if err != nil {
		return Version{}, err
	}
	return p.kvVersion(ctx, client, plan)
}

// rotationReader gives rotation's checks the secret's plan and a client
// with the service's shared read token, never a token per task.
func (p *Provider) rotationReader(ctx context.Context, req Request) (Plan, *api.Client, error) {
	plan, policies, err := p.Check(req)
	if err != nil {
		return Plan{}, nil, err
	}
	client, _, err := p.readClient(ctx, req, policies, true, true)
	if err != nil {
		return Plan{}, nil, err
	}
	return plan, client, nil
}

// ErrLeased: a vault.type=read path gave a lease, so its value is
// credentials, which rotate by their max TTL, not by a hash.
var ErrLeased = errors.New("the path gives leases")

// Fingerprint is the keyed hash (HMAC-SHA256 under key) of what the secret
// that req.SecretLabels name reads, every field of it, as the tasks of
// req.ServiceName read it, with the read token CurrentVersion uses: what
// rotation compares from round to round where Vault keeps no versions (KV
// v1, and vault.type=read of a value without a lease). The value read is
// dropped at once; only the hash leaves.
func (p *Provider) Fingerprint(ctx context.Context, req Request, key []byte) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	plan, client, err := p.rotationReader(ctx, req)
	if err != nil {
		return "", err
	}
	var data map[string]any
	switch plan.Type {
	case TypeRead:
		s, err := client.Logical().ReadWithDataWithContext(ctx, plan.Path, plan.query())
		if err != nil {
			return "", vaultError(err, plan.Path, plan.Path)
		}
		if s == nil || s.Data == nil {
			return "", fmt.Errorf("Vault gives no data at path %s (%s=%s): check label %s", plan.Path, LabelType, plan.Type, LabelPath)
		}
		if s.LeaseID != "" {
			// Issued to the read token, a batch token: the lease ends
			// with it, within VAULT_CLIENT_TIMEOUT.
			return "", fmt.Errorf("Vault path %s: %w", plan.Path, ErrLeased)
		}
		data = s.Data
	case TypeKV:
		m, err := p.kvMount(ctx, client, plan.Path)
		if err != nil {
			return "", err
		}
		if m.Version != 1 {
			return "", fmt.Errorf("Vault path %s is on KV v2 mount %s: its versions tell its changes", plan.Path, m.Path)
		}
		s, err := m.Get(ctx, client, strings.TrimPrefix(plan.Path, m.Path), 0)
		if err != nil {
			return "", kvError(err, plan, plan.Path)
		}
		data = s.Data
	default:
		return "", fmt.Errorf("%s=%s has no value to compare: it rotates by its credentials' max TTL", LabelType, plan.Type)
	}
	// encoding/json writes a map's keys sorted: one value, one text.
	b, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("Vault path %s: %w", plan.Path, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// ReadScope names what CurrentVersion or Fingerprint reads for req: the
// secret's type, path and parameters, and the policies of the token that
// reads it. Two requests of one scope read
// the same version, so a rotation round reads each scope once, whatever
// the number of services that share it.
func (p *Provider) ReadScope(req Request) (string, error) {
	plan, policies, err := p.Check(req)
	if err != nil {
		return "", err
	}
	params := make([]string, 0, len(plan.Params))
	for k, v := range plan.Params {
		params = append(params, k+"="+v)
	}
	slices.Sort(params)
	return strings.Join([]string{string(plan.Type), plan.Path, strings.Join(params, "&"), strings.Join(policies, ",")}, " "), nil
}

func (p *Provider) kvVersion(ctx context.Context, client *api.Client, plan Plan) (Version, error) {
	m, err := p.kvMount(ctx, client, plan.Path)
	if err != nil {
		return Version{}, err
	}
	if m.Version != 2 {
		return Version{}, fmt.Errorf("Vault path %s is on mount %s: %w", plan.Path, m.Path, ErrNotVersioned)
	}
	dataPath := m.DataPath(strings.TrimPrefix(plan.Path, m.Path))
	s, err := client.Logical().ReadWithContext(ctx, dataPath)
	if err != nil {
		return Version{}, vaultError(err, plan.Path, dataPath)
	}
	var meta map[string]any
	if s != nil {
		meta, _ = s.Data["metadata"].(map[string]any)
	}
	if meta == nil {
		return Version{}, fmt.Errorf("no secret at Vault path %s: check label %s", plan.Path, LabelPath)
	}
	var v Version
	if n, ok := meta["version"].(json.Number); ok {
		i, _ := n.Int64()
		v.Number = int(i)
	}
	created, _ := meta["created_time"].(string)
	if v.Created, err = time.Parse(time.RFC3339Nano, created); err != nil || v.Number == 0 {
		return Version{}, fmt.Errorf("Vault gives no version for path %s", plan.Path)
	}
	return v, nil
}
