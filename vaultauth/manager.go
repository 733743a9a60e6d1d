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

	"github.com/swarmvault/swarmvault/internal/vaultkv"
)

// Changer is implemented by auth methods whose credentials can change under
// the plugin (a token file rewritten by the operator): the Manager logs in
// again when Changed reports true.
type Changer interface {
	Changed() bool
}

// TokenCreator is implemented by methods whose Login creates a new token
// (approle, cert, the helper with a secret-id). Such a token is the plugin's
// alone, so the Manager revokes it when a login replaces it and at
// shutdown. A token handed to the plugin (the token method, a helper's
// token) may be shared by every manager's plugin and is never revoked.
type TokenCreator interface {
	CreatesToken() bool
}

// Manager owns the plugin's token: it alone logs in, renews with Vault's
// LifetimeWatcher, and logs in again when renewal is refused, the token
// nears its end (max TTL, or the TTL of a token that cannot be renewed),
// the credentials change, or a request finds the token refused (Reauth).
// Logins are retried with capped exponential backoff with jitter, so a
// Vault outage is not met with a login storm.
type Manager struct {
	client *api.Client
	method api.AuthMethod
	log    logrus.FieldLogger

	// MinBackoff and MaxBackoff bound the wait between failed logins;
	// CheckInterval is how often a Changer is asked; LoginTimeout bounds one
	// login attempt, whatever it waits on (Vault, the Docker API); RevokeDelay
	// is how long a replaced token the plugin created stays alive, because
	// read tokens it made may still be in use. Set before Run.
	MinBackoff, MaxBackoff, CheckInterval, LoginTimeout, RevokeDelay time.Duration
	// Logins, when set, is told the outcome of each login attempt
	// (metrics). Set before Run.
	Logins func(ok bool)

	relogin  chan struct{}
	stopping chan struct{} // closed by Logout: retire replaced tokens now
	retiring sync.WaitGroup

	mu       sync.Mutex
	loggedIn chan struct{} // closed at the next successful login
	lastErr  error         // of the last failed login, for waiting requests
	current  string        // the token of the last login
	// until is when the current token ends, as of its login or last
	// renewal (zero: no token; noTTL: it has no TTL); ttl what it was
	// granted then.
	until time.Time
	ttl   time.Duration
}

// noTTL is until for a token without TTL (a root token).
var noTTL = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// NewManager returns a Manager that logs client in with method.
func NewManager(client *api.Client, method api.AuthMethod, log logrus.FieldLogger) *Manager {
	return &Manager{
		client: client, method: method, log: log,
		MinBackoff: time.Second, MaxBackoff: time.Minute, CheckInterval: 10 * time.Second,
		LoginTimeout: 30 * time.Second, RevokeDelay: 20 * time.Second,
		relogin:  make(chan struct{}, 1),
		stopping: make(chan struct{}),
		loggedIn: make(chan struct{}),
	}
}

// Run logs in and keeps the token alive until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	ending := ""
	for ctx.Err() == nil {
		s, err := m.loginWithBackoff(ctx, ending)
		if err != nil {
			return // ctx ended
		}
		m.mu.Lock()
		prev := m.current
		m.current = s.Auth.ClientToken
		m.mu.Unlock()
		m.lives(s.Auth.LeaseDuration)
		if prev != "" && prev != s.Auth.ClientToken {
			m.retire(prev)
		}
		ending = m.keepAlive(ctx, s)
	}
}

// errSameToken is a login that gave back the token whose end is near: the
// token method's file, or the helper's secret, still holds it.
var errSameToken = errors.New("the login gave the same token again, which reaches the end of its life soon: give the plugin a new token (write it to VAULT_TOKEN_FILE, or rotate the helper's secret)")

// loginWithBackoff logs in until it succeeds or ctx ends. Between failures
// it waits with capped exponential backoff and jitter; a request waiting for
// a login (Reauth) cuts the wait short, but logins stay at least MinBackoff
// apart, so that waiting requests cannot make a login storm. A login that
// gives back ending, the token being replaced because its end is near,
// counts as failed: the client keeps using it meanwhile.
func (m *Manager) loginWithBackoff(ctx context.Context, ending string) (*api.Secret, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = m.MinBackoff, m.MaxBackoff
	b.MaxElapsedTime = 0 // never give up: the plugin is useless without a token
	b.RandomizationFactor = 0.5
	b.Reset() // the constructor's Reset took the default initial interval
	var s *api.Secret
	for {
		err := m.loginOnce(ctx, &s)
		if err == nil && ending != "" && s.Auth.ClientToken == ending {
			err = errSameToken
		}
		if m.Logins != nil && ctx.Err() == nil {
			m.Logins(err == nil)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
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
	// request, the waiters are released below. Under mu, so that Reauth
	// cannot ask again for the token this login replaced (see Reauth).
	m.mu.Lock()
	select {
	case <-m.relogin:
	default:
	}
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

// loginOnce is one login attempt, bounded by LoginTimeout: a Vault or Docker
// API call that never answers must not hold up every later login.
func (m *Manager) loginOnce(ctx context.Context, out **api.Secret) error {
	ctx, cancel := context.WithTimeout(ctx, m.LoginTimeout)
	defer cancel()
	s, err := m.client.Auth().Login(ctx, m.method)
	if err == nil && (s == nil || s.Auth == nil) {
		err = errors.New("the login returned no token")
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("no answer within %s (LoginTimeout): %w", m.LoginTimeout, err)
	}
	*out = s
	return err
}

// keepAlive renews s until it can no longer be renewed, a re-login is asked
// for, or ctx ends. It returns s's token when s is near the end of its life
// (max TTL reached, or two thirds of the TTL of a token that cannot be
// renewed gone), "" otherwise. A token without TTL (root) is kept until a
// re-login is asked for.
func (m *Manager) keepAlive(ctx context.Context, s *api.Secret) (ending string) {
	var done <-chan error
	var renewed <-chan *api.RenewOutput
	var expiring <-chan time.Time
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	switch {
	case s.Auth.Renewable && ttl > 0:
		w, err := m.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
		if err != nil {
			m.log.WithError(err).Error("cannot watch the plugin token's lifetime")
			return ""
		}
		go w.Start()
		defer w.Stop()
		done, renewed = w.DoneCh(), w.RenewCh()
	case ttl > 0:
		// Not renewable (a batch token, or a role without renewal): log in
		// again ahead of its expiry, not at the first refused request.
		t := time.NewTimer(ttl * 2 / 3)
		defer t.Stop()
		expiring = t.C
	}
	check := time.NewTicker(m.CheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case err := <-done:
			if err != nil {
				m.log.WithError(err).Warn("Vault refused to renew the plugin's token: logging in again")
				return ""
			}
			m.log.Info("the plugin's token reached its max TTL: logging in again")
			return s.Auth.ClientToken
		case <-expiring:
			m.log.Info("the plugin's token cannot be renewed and two thirds of its TTL are gone: logging in again")
			return s.Auth.ClientToken
		case r := <-renewed:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				m.lives(r.Secret.Auth.LeaseDuration)
				m.log.WithField("ttl", (time.Duration(r.Secret.Auth.LeaseDuration) * time.Second).String()).Debug("renewed the plugin's token")
			}
		case <-m.relogin:
			m.log.Warn("Vault refused the plugin's token: logging in again")
			return ""
		case <-check.C:
			if c, ok := m.method.(Changer); ok && c.Changed() {
				m.log.Info("the plugin's credentials changed: logging in again")
				return ""
			}
		}
	}
}

// lives records that the current token was granted seconds more.
func (m *Manager) lives(seconds int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ttl = time.Duration(seconds) * time.Second
	m.until = noTTL
	if seconds > 0 {
		m.until = time.Now().Add(m.ttl)
	}
}

// TTLLeft is the seconds left to the plugin's token: 0 without one, -1
// for a token without TTL.
func (m *Manager) TTLLeft() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.until.IsZero():
		return 0
	case m.until.Equal(noTTL):
		return -1
	}
	return max(time.Until(m.until).Seconds(), 0)
}

// Ready tells why the plugin cannot serve now, or nil: it has a token,
// and the token is not about to end (a third of its TTL, at most a minute,
// is left; the Manager logs in again well before that).
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.until.IsZero() && m.lastErr != nil:
		return fmt.Errorf("no Vault token: the login fails (%v)", m.lastErr)
	case m.until.IsZero():
		return errors.New("no Vault token yet: the first login is under way")
	case m.until.Equal(noTTL):
		return nil
	}
	left := time.Until(m.until)
	if margin := min(time.Minute, m.ttl/3); left < margin {
		why := "renewal and a new login have not extended it"
		if m.lastErr != nil {
			why = fmt.Sprintf("the login fails (%v)", m.lastErr)
		}
		return fmt.Errorf("the plugin's Vault token ends in %s: %s", left.Round(time.Second), why)
	}
	return nil
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
	// The check and the ask under mu: a login that sets a new token drains
	// the ask under mu too, so a caller that saw the old token either asks
	// before that drain (and is answered by that login) or sees the new
	// token. Otherwise one refusal could cost two logins, and two uses of a
	// secret-id with num_uses.
	m.mu.Lock()
	if m.client.Token() != refused {
		m.mu.Unlock()
		return nil
	}
	wait := m.loggedIn
	select {
	case m.relogin <- struct{}{}:
	default: // a re-login is already asked for
	}
	m.mu.Unlock()
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

// createsToken reports whether the method's tokens are the plugin's to revoke.
func (m *Manager) createsToken() bool {
	c, ok := m.method.(TokenCreator)
	return ok && c.CreatesToken()
}

// retire revokes a replaced token the plugin created, after RevokeDelay (or
// at once when Logout is called): left alone, it would live out its TTL.
func (m *Manager) retire(token string) {
	if !m.createsToken() {
		return
	}
	m.retiring.Add(1)
	go func() {
		defer m.retiring.Done()
		t := time.NewTimer(m.RevokeDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-m.stopping:
		}
		m.revoke(token, "a replaced token")
	}()
}

// Logout revokes the plugin's token, and the replaced ones not yet revoked,
// when the method created them. Call it after the last request is answered.
func (m *Manager) Logout() {
	close(m.stopping)
	m.retiring.Wait()
	m.mu.Lock()
	current := m.current
	m.mu.Unlock()
	if current != "" && m.createsToken() {
		m.revoke(current, "the plugin's token")
	}
}

// revoke revokes token with revoke-self. A token Vault no longer knows (it
// expired, or was revoked) is what revocation is for: not worth a warning.
func (m *Manager) revoke(token, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), m.LoginTimeout)
	defer cancel()
	c, err := anonymous(m.client)
	if err != nil {
		m.log.WithError(err).Warn("cannot revoke " + what)
		return
	}
	c.SetToken(token)
	err = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	switch {
	case err == nil:
		m.log.Info("revoked " + what)
	case vaultkv.Forbidden(err):
		m.log.Debug(what + " was already invalid")
	default:
		m.log.WithError(err).Warn("cannot revoke " + what + ": it lives until its TTL ends")
	}
}
