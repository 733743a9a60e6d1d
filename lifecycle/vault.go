package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Credentials is what the Loop asks of Vault, by accessor and lease ID
// (never a token), with the plugin's own token; *VaultCredentials
// implements it.
type Credentials interface {
	// RenewToken extends a token by ttl and returns what Vault granted.
	RenewToken(ctx context.Context, accessor string, ttl time.Duration) (time.Duration, error)
	// RenewLease extends a lease by ttl and returns what Vault granted.
	RenewLease(ctx context.Context, leaseID string, ttl time.Duration) (time.Duration, error)
	// RevokeToken revokes a token, and with it its leases.
	RevokeToken(ctx context.Context, accessor string) error
	// LookupToken tells whose a token is (its metadata's task_id) and how
	// long it has left.
	LookupToken(ctx context.Context, accessor string) (TokenInfo, error)
}

// TokenInfo is what a lookup tells of a task token.
type TokenInfo struct {
	// TaskID is the task its metadata names.
	TaskID string
	// TTL is the time it has left.
	TTL time.Duration
}

// The errors the Loop tells apart; others are retried at the next round.
var (
	// ErrTokenGone: Vault has no such token (it expired, or was revoked).
	ErrTokenGone = errors.New("the token no longer exists in Vault")
	// ErrLeaseNotRenewable: the lease is gone or cannot be renewed.
	ErrLeaseNotRenewable = errors.New("the lease cannot be renewed")
	// ErrLookupDenied: the plugin's token may not look tokens up.
	ErrLookupDenied = errors.New("the plugin's token may not look up task tokens: grant its policy update on auth/token/lookup-accessor (docs/vault-setup.md lists the lifecycle's paths); until then the records other managers wrote are renewed but never revoked")
)

// VaultCredentials does the Loop's Vault calls with the plugin's client.
type VaultCredentials struct{ vault *api.Client }

// NewVaultCredentials returns Credentials over client, which carries the
// plugin's own token.
func NewVaultCredentials(client *api.Client) *VaultCredentials {
	return &VaultCredentials{vault: client}
}

// Ready tells whether the plugin holds a token yet (the first login may
// not be done).
func (v *VaultCredentials) Ready() bool { return v.vault.Token() != "" }

func (v *VaultCredentials) RenewToken(ctx context.Context, accessor string, ttl time.Duration) (time.Duration, error) {
	s, err := v.vault.Auth().Token().RenewAccessorWithContext(ctx, accessor, seconds(ttl))
	if gone(err) {
		return 0, ErrTokenGone
	}
	if err != nil {
		return 0, orNotServing(err, fmt.Errorf("cannot renew the token: %s", vaultkv.ErrorText(err)))
	}
	if s == nil || s.Auth == nil {
		return 0, errors.New("Vault's answer to a token renewal has no auth")
	}
	return time.Duration(s.Auth.LeaseDuration) * time.Second, nil
}

func (v *VaultCredentials) RenewLease(ctx context.Context, leaseID string, ttl time.Duration) (time.Duration, error) {
	s, err := v.vault.Sys().RenewWithContext(ctx, leaseID, seconds(ttl))
	if leaseGone(err) {
		return 0, fmt.Errorf("%w (%s)", ErrLeaseNotRenewable, vaultkv.ErrorText(err))
	}
	if err != nil {
		return 0, orNotServing(err, fmt.Errorf("cannot renew the lease: %s", vaultkv.ErrorText(err)))
	}
	if s == nil {
		return 0, errors.New("Vault's answer to a lease renewal is empty")
	}
	return time.Duration(s.LeaseDuration) * time.Second, nil
}

func (v *VaultCredentials) RevokeToken(ctx context.Context, accessor string) error {
	err := v.vault.Auth().Token().RevokeAccessorWithContext(ctx, accessor)
	if gone(err) {
		return ErrTokenGone
	}
	if err != nil {
		return orNotServing(err, fmt.Errorf("cannot revoke the token: %s", vaultkv.ErrorText(err)))
	}
	return nil
}

func (v *VaultCredentials) LookupToken(ctx context.Context, accessor string) (TokenInfo, error) {
	s, err := v.vault.Auth().Token().LookupAccessorWithContext(ctx, accessor)
	if gone(err) {
		return TokenInfo{}, ErrTokenGone
	}
	if vaultkv.Forbidden(err) {
		return TokenInfo{}, ErrLookupDenied
	}
	if err != nil {
		return TokenInfo{}, orNotServing(err, fmt.Errorf("cannot look up the token: %s", vaultkv.ErrorText(err)))
	}
	if s == nil || s.Data == nil {
		return TokenInfo{}, errors.New("Vault's answer to a token lookup has no data")
	}
	var info TokenInfo
	if meta, ok := s.Data["meta"].(map[string]any); ok {
		info.TaskID, _ = meta["task_id"].(string)
	}
	if n, ok := s.Data["ttl"].(json.Number); ok {
		secs, _ := n.Int64()
		info.TTL = time.Duration(secs) * time.Second
	}
	return info, nil
}

// orNotServing is the error of a call that failed for another reason than
// the ones its caller tells apart: other, unless Vault answered that it
// serves no one now (sealed, no active node, a rate limit quota). Then it
// is a notServing, and the round makes no more such calls rather than
// send every credential's (refusals, in loop.go).
func orNotServing(err, other error) error {
	if what, fix, ok := vaultkv.NotServing(err); ok {
		return &notServing{what: what, fix: fix, everyone: vaultkv.StatusIs(err, http.StatusServiceUnavailable)}
	}
	return other
}

// notServing is Vault's answer that it serves no call now (everyone:
// sealed, no active node), or none of this kind (a rate limit quota, which
// may be on one path only).
type notServing struct {
	what, fix string
	everyone  bool
}

func (n *notServing) Error() string { return n.what + ": " + n.fix }

// leaseGone tells a lease Vault will renew no more (not found, expired,
// not renewable) from a renewal that failed for now. Vault answers 400 to
// both: a database down behind database/creds makes the renewal fail with
// "failed to renew entry: … connection refused" (measured), and such a
// lease is renewed again once the database is back. Taking that answer
// for the end of the lease left a running task's database user to expire.
func leaseGone(err error) bool {
	return vaultkv.BadRequestSaying(err, "lease not found", "lease is not renewable", "lease expired", "lease is expired",
		"invalid lease", "lease does not correspond to a secret") &&
		!vaultkv.BadRequestSaying(err, "failed to renew entry")
}

// gone tells a token Vault no longer has (expired, revoked) from a failed
// call: renew-accessor, revoke-accessor and lookup-accessor answer 400 for
// an unknown accessor.
func gone(err error) bool {
	return vaultkv.BadRequestSaying(err, "invalid accessor", "not found")
}

func seconds(d time.Duration) int { return int(d / time.Second) }
