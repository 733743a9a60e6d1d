package provider

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Tracker is told about each request before anything is issued for it, and
// about the credentials issued, so that the leader loop (package lifecycle)
// can renew them while the task runs and revoke them when it ends. Without
// one, every request is served and credentials live for their TTL.
type Tracker interface {
	// Admit is asked before any Vault call. An error wrapping ErrRefetch
	// refuses the request: the task holds this secret from an earlier
	// fetch. credentials tells a vault.type=token, read or write secret
	// (something to renew and revoke) from a KV one.
	Admit(ctx context.Context, req Request, credentials bool) error
	// Issued records credentials issued to the task. An error wrapping
	// ErrRefetch refuses them (another request for the task recorded its
	// own first): they are revoked and the request fails. Any other error
	// means they were not recorded and will live for their TTL; the value
	// is delivered all the same.
	Issued(ctx context.Context, req Request, c Credentials) error
}

// Credentials are what renews and revokes what the plugin issued for one
// task and secret: never a token or a value.
type Credentials struct {
	// Accessor is the task token's accessor: the token a vault.type=token
	// secret hands over, or the one a read or write was made with.
	Accessor string
	// TokenTTL is the TTL Vault granted the token, which each renewal asks
	// for again.
	TokenTTL time.Duration
	// LeaseID is the lease of a dynamic secret (database credentials, a
	// certificate); empty when the read gave none, or was wrapped.
	LeaseID string
	// LeaseTTL is the lease's granted TTL; LeaseRenewable whether Vault
	// lets it be renewed.
	LeaseTTL       time.Duration
	LeaseRenewable bool
	// Expires is when what was issued stops being good whatever anyone
	// renews: a certificate's expiration (pki/issue answers it, with no
	// lease unless the role sets generate_lease). Zero when the answer
	// names none.
	Expires time.Time
	// Rotate: the secret asked for vault.rotate, so the leader rolls the
	// task's service before the token or lease reaches its max TTL, or a
	// certificate its expiration, rather than warn that it will. Not set
	// for a read that gave neither a lease nor an expiration: its token's
	// end changes nothing for the task.
	Rotate bool
}

// ErrRefetch refuses a repeated fetch for a task that already holds the
// secret. The dispatcher of a new leader, or of a leader a node reconnected
// to, asks again for every task of the node; a running container keeps the
// files it started with, so a second value would only be a second token or
// database user that nothing uses.
var ErrRefetch = errors.New("not issued again")

// admit asks the Tracker, if any.
func (p *Provider) admit(ctx context.Context, req Request, plan Plan) error {
	if p.opts.Tracker == nil {
		return nil
	}
	return p.opts.Tracker.Admit(ctx, req, plan.Type != TypeKV)
}

// track records credentials with the Tracker, if any. A failure to record
// costs the lifecycle of these credentials, not the task its secret. A
// refusal (ErrRefetch: another request for this task recorded its own
// credentials first) is returned: the caller revokes what it minted and
// fails the request, as for any repeated fetch.
func (p *Provider) track(ctx context.Context, req Request, c Credentials) error {
	if p.opts.Tracker == nil {
		return nil
	}
	err := p.opts.Tracker.Issued(ctx, req, c)
	if errors.Is(err, ErrRefetch) {
		return err
	}
	if err != nil {
		p.log.WithFields(logrus.Fields{"secret": req.SecretName, "service": req.ServiceName, "task_id": req.TaskID}).
			Warnf("credentials issued but not recorded, so they live for their TTL whatever happens to the task: %s", vaultkv.ErrorText(err))
	}
	return nil
}
