package vaultauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/api"
)

// A login call fails in one of three ways, each with its own fix: Vault
// cannot be reached (VAULT_ADDR, Vault down), its TLS certificate is not
// trusted (VAULT_CACERT), or Vault answers and refuses (the credential).
// Every login call (lookup-self, the AppRole and cert logins, the wrapping
// lookup and unwrap, the helper method's through these) asks notAnswered
// first and words the refusal itself only when Vault did answer.

// notAnswered is the error of a login call that got no answer from Vault:
// Vault unreachable (connection refused, DNS, a timeout) or its TLS
// certificate not trusted. It is nil when Vault answered, or the call
// failed before it was sent. doing completes "cannot reach Vault at ADDR
// to ...". The cause, wrapped, is the transport's error without the
// request's URL (a credential is never in either).
func notAnswered(c *api.Client, doing string, err error) error {
	addr := address(c)
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var noRoots x509.SystemRootsError
	var remote *net.OpError
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.As(err, &hostname):
		return fmt.Errorf("Vault's TLS certificate at %s is not trusted (%w): VAULT_ADDR must name a host the certificate is for (one of its subject alternative names)", addr, transportCause(err))
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("Vault's TLS certificate at %s is not trusted (%w): renew Vault's certificate, or set this host's clock right", addr, transportCause(err))
	case errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &verify), errors.As(err, &noRoots):
		return fmt.Errorf("Vault's TLS certificate at %s is not trusted (%w): give the CA that signed it in VAULT_CACERT (a PEM file on the credentials mount)", addr, transportCause(err))
	case errors.As(err, &remote) && remote.Op == "remote error" && strings.Contains(remote.Err.Error(), "certificate"):
		// A TLS alert from Vault about the plugin's certificate: Vault's
		// listener checks client certificates itself
		// (tls_require_and_verify_client_cert) and refused the plugin's.
		// crypto/tls gives the alert as a net.OpError "remote error".
		return fmt.Errorf("Vault at %s refused the plugin's TLS client certificate (%w): VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be a certificate and key that Vault's listener trusts", addr, remote)
	case errors.As(err, &ue), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach Vault at %s to %s (%w): check VAULT_ADDR and that Vault is up", addr, doing, transportCause(err))
	}
	return nil
}

// refusesToken tells whether Vault refused a token: 403 (Vault's answer to
// a token it does not know or that may not make the call), or an error
// that says permission denied or invalid token.
func refusesToken(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	if re.StatusCode == http.StatusForbidden {
		return true
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "permission denied") || strings.Contains(e, "invalid token") {
			return true
		}
	}
	return false
}

// transportCause is the transport's error without the *url.Error around it,
// which repeats the method and URL.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// address is the client's VAULT_ADDR, with a password in it hidden.
func address(c *api.Client) string {
	a := c.Address()
	if u, err := url.Parse(a); err == nil && u.User != nil {
		return u.Redacted()
	}
	return a
}
