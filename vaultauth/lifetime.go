package vaultauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// Changer is implemented by auth methods whose credentials can change under
// the plugin (a token file rewritten by the operator): the Manager logs in
// again when Changed reports true.
type Changer interface {
	Changed() bool
}

// Manager owns the plugin's token: it alone logs in, renews with Vault's
// LifetimeWatcher, and logs in again when renewal is refused, the token
// reaches its max TTL, the credentials change, or a request finds the token
// refused (Reauth). Logins are retried with capped exponential backoff with
// jitter, so a Vault outage is not met with a login storm.
type Manager struct {
	client *api.Client
	method api.AuthMethod
	log    logrus.FieldLogger

	// MinBackoff and MaxBackoff bound the wait between failed logins;
	// CheckInterval is how often a Changer is asked. Set before Run.
	MinBackoff, MaxBackoff, CheckInterval time.Duration

	relogin chan struct{}

	mu       sync.Mutex
	loggedIn chan struct{} // closed at the next successful login
	lastErr  error         // of the last failed login, for waiting requests
}

// NewManager returns a Manager that logs client in with method.
func NewManager(client *api.Client, method api.AuthMethod, log logrus.FieldLogger) *Manager {
	return &Manager{
		client: client, method: method, log: log,
		MinBackoff: time.Second, MaxBackoff: time.Minute, CheckInterval: 10 * time.Second,
		relogin:  make(chan struct{}, 1),
		loggedIn: make(chan struct{}),
	}
}

// Run logs in and keeps the token alive until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for ctx.Err() == nil {
		s, err := m.loginWithBackoff(ctx)
		if err != nil {
			return // ctx ended
		}
		m.keepAlive(ctx, s)
	}
}

// loginWithBackoff logs in until it succeeds or ctx ends. Between failures
// it waits with capped exponential backoff and jitter; a request waiting for
// a login (Reauth) cuts the wait short, but logins stay at least MinBackoff
// apart, so that waiting requests cannot make a login storm.
func (m *Manager) loginWithBackoff(ctx context.Context) (*api.Secret, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = m.MinBackoff, m.MaxBackoff
	b.MaxElapsedTime = 0 // never give up: the plugin is useless without a token
	b.RandomizationFactor = 0.5
	b.Reset() // the constructor's Reset took the default initial interval
	var s *api.Secret
	for {
		var err error
		s, err = m.client.Auth().Login(ctx, m.method)
		if err == nil {
			break
		}
		m.mu.Lock()
		m.lastErr = err
		m.mu.Unlock()
		wait := b.NextBackOff()
		m.log.WithError(err).WithField("retry_in", wait.Round(time.Millisecond).String()).Error("Vault login failed")
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		case <-m.relogin:
			timer.Stop()
			if !sleep(ctx, m.MinBackoff) {
				return nil, ctx.Err()
			}
		}
	}
	// A re-login asked for before this login is answered by it: drop the
	// request, the waiters are released below.
	select {
	case <-m.relogin:
	default:
	}
	m.mu.Lock()
	close(m.loggedIn)
	m.loggedIn = make(chan struct{})
	m.lastErr = nil
	m.mu.Unlock()
	m.log.WithFields(logrus.Fields{
		"policies":  s.Auth.Policies,
		"ttl":       (time.Duration(s.Auth.LeaseDuration) * time.Second).String(),
		"renewable": s.Auth.Renewable,
	}).Info("logged in to Vault")
	return s, nil
}

// keepAlive renews s until it can no longer be renewed, a re-login is asked
// for, or ctx ends. A token that is not renewable (a root token, a token
// without TTL, a batch token) is kept until one of the latter.
func (m *Manager) keepAlive(ctx context.Context, s *api.Secret) {
	var done <-chan error
	var renewed <-chan *api.RenewOutput
	if s.Auth.Renewable && s.Auth.LeaseDuration > 0 {
		w, err := m.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
		if err != nil {
			m.log.WithError(err).Error("cannot watch the plugin token's lifetime")
			return
		}
		go w.Start()
		defer w.Stop()
		done, renewed = w.DoneCh(), w.RenewCh()
	}
	check := time.NewTicker(m.CheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			if err != nil {
				m.log.WithError(err).Warn("Vault refused to renew the plugin's token: logging in again")
			} else {
				m.log.Info("the plugin's token reached its max TTL: logging in again")
			}
			return
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				m.log.WithField("ttl", (time.Duration(r.Secret.Auth.LeaseDuration) * time.Second).String()).Debug("renewed the plugin's token")
			}
		case <-m.relogin:
			m.log.Warn("Vault refused the plugin's token: logging in again")
			return
		case <-check.C:
			if c, ok := m.method.(Changer); ok && c.Changed() {
				m.log.Info("the plugin's credentials changed: logging in again")
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Reauth is called by a request that found the plugin's token refused. If
// the client no longer holds refused (another request's re-login, or a
// renewal, got there first) it returns at once; otherwise it asks Run for one
// login and waits for it, at most until ctx ends. Concurrent callers share
// that one login.
func (m *Manager) Reauth(ctx context.Context, refused string) error {
	m.mu.Lock()
	wait := m.loggedIn
	m.mu.Unlock()
	if m.client.Token() != refused {
		return nil
	}
	select {
	case m.relogin <- struct{}{}:
	default: // a re-login is already asked for
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		last := m.lastErr
		m.mu.Unlock()
		if last != nil {
			return fmt.Errorf("the plugin cannot log in to Vault: %w", last)
		}
		return errors.New("the plugin did not log in to Vault again in time")
	}
}
