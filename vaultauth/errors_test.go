package vaultauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The credentials of the login tests: none may show in an error.
const (
	testToken    = "hvs.test-token-value"
	testRoleID   = "role-id-value"
	testSecretID = "secret-id-value"
)

// loginCalls are the first Vault call of each login path: the token
// method's lookup-self, AppRole's login, a wrapped secret-id's lookup
// (the helper method's first call too), the cert method's login.
func loginCalls(t *testing.T) []struct {
	name, doing string
	login       func(*api.Client) error
} {
	dir := t.TempDir()
	role := writeCred(t, dir, "role-id", testRoleID)
	secret := writeCred(t, dir, "secret-id", testSecretID)
	login := func(m api.AuthMethod) func(*api.Client) error {
		return func(c *api.Client) error {
			_, err := c.Auth().Login(context.Background(), m)
			if err != nil {
				err = withoutAPIPrefix{err}
			}
			return err
		}
	}
	tok, err := NewTokenAuth(testToken, "")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := NewAppRoleAuth(role, secret, "", false, false)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := NewAppRoleAuth(role, secret, "", true, false)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := NewCertAuth("https://vault:8200", "/c.pem", "/k.pem", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name, doing string
		login       func(*api.Client) error
	}{
		{"token", "check the plugin's token", login(tok)},
		{"approle", "log in with AppRole at auth/approle", login(ar)},
		{"approle, wrapped secret-id", "look up a wrapping token", login(wrapped)},
		{"cert", "log in with the client certificate at auth/cert", login(cert)},
		{"the helper's wrapping lookup", "look up a wrapping token", func(c *api.Client) error {
			_, _, err := IsWrappingToken(context.Background(), c, testToken)
			return err
		}},
	}
}

// clientAt is a client of addr, without token or retries, that trusts what
// tlsCfg says and nothing the environment says.
// withoutAPIPrefix is a login error without api's own prefix, the same for
// every method.
type withoutAPIPrefix struct{ err error }

func (e withoutAPIPrefix) Error() string {
	return strings.TrimPrefix(e.err.Error(), "unable to log in to auth method: ")
}
func (e withoutAPIPrefix) Unwrap() error { return e.err }

func clientAt(t *testing.T, addr string, tlsCfg *api.TLSConfig) *api.Client {
	t.Helper()
	for _, env := range []string{"VAULT_CACERT", "VAULT_CACERT_BYTES", "VAULT_CAPATH", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY"} {
		t.Setenv(env, "")
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	if tlsCfg != nil {
		if err := cfg.ConfigureTLS(tlsCfg); err != nil {
			t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearToken()
	return c
}

func noCredentialIn(t *testing.T, err error) {
	t.Helper()
	for _, v := range []string{testToken, testRoleID, testSecretID} {
		if strings.Contains(err.Error(), v) {
			t.Errorf("the error quotes a credential: %v", err)
		}
	}
}

// A Vault that cannot be reached is not a refused token.
func TestLoginSaysVaultCannotBeReached(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	client := clientAt(t, "http://"+addr, nil)
	for _, tt := range loginCalls(t) {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.login(client)
			want := "cannot reach Vault at http://" + addr + " to " + tt.doing + " (dial tcp " + addr + ": connect: connection refused): check VAULT_ADDR and that Vault is up"
			if err == nil || err.Error() != want {
				t.Fatalf("error %v\nwant %s", err, want)
			}
			if op := new(net.OpError); !errors.As(err, &op) || op.Op != "dial" {
				t.Errorf("the error does not wrap the transport's: %#v", err)
			}
			noCredentialIn(t, err)
		})
	}
}

// The Manager logs a login that cannot reach Vault as such.
func TestManagerLogsAnUnreachableVault(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tok, _ := NewTokenAuth(testToken, "")
	m, logs := startManager(t, clientAt(t, "http://"+addr, nil), tok)
	want := "cannot reach Vault at http://" + addr + " to check the plugin's token"
	waitUntil(t, "a failed login", func() bool { return strings.Contains(logs.String(), `msg="Vault login failed"`) })
	if !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), "does not accept") {
		t.Errorf("log:\n%s\nwant %s", logs.String(), want)
	}
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Ready() = %v", err)
	}
}

// selfSigned makes a certificate for 127.0.0.1 valid from notBefore to
// notAfter, and its PEM (it is its own CA).
func selfSigned(t *testing.T, notBefore, notAfter time.Time) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vault test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"vault.test"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func tlsVault(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request came through the TLS handshake: %s", r.URL.Path)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// A certificate the plugin does not trust is not a refused token either:
// each way it fails says what to fix.
func TestLoginSaysVaultsCertificateIsNotTrusted(t *testing.T) {
	now := time.Now()
	valid, validPEM := selfSigned(t, now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredPEM := selfSigned(t, now.Add(-2*time.Hour), now.Add(-time.Hour))
	fixCA := "give the CA that signed it in VAULT_CACERT (a PEM file on the credentials mount)"
	for _, tt := range []struct {
		name      string
		cert      tls.Certificate
		trust     *api.TLSConfig
		cause     string
		fix       string
		allCalls  bool
		wantNoRaw string
	}{
		{name: "unknown authority", cert: valid, allCalls: true,
			cause: "tls: failed to verify certificate: x509: certificate signed by unknown authority", fix: fixCA},
		{name: "another name", cert: valid, trust: &api.TLSConfig{CACertBytes: validPEM, TLSServerName: "vault.internal"},
			cause: "tls: failed to verify certificate: x509: certificate is valid for vault.test, not vault.internal",
			fix:   "VAULT_ADDR must name a host the certificate is for (one of its subject alternative names)"},
		{name: "expired", cert: expired, trust: &api.TLSConfig{CACertBytes: expiredPEM},
			cause: "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time",
			fix:   "renew Vault's certificate, or set this host's clock right"},
	} {
		srv := tlsVault(t, &tls.Config{Certificates: []tls.Certificate{tt.cert}})
		client := clientAt(t, srv.URL, tt.trust)
		calls := loginCalls(t)
		if !tt.allCalls {
			calls = calls[:1]
		}
		for _, c := range calls {
			t.Run(tt.name+"/"+c.name, func(t *testing.T) {
				err := c.login(client)
				want := "Vault's TLS certificate at " + srv.URL + " is not trusted (" + tt.cause
				if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "): "+tt.fix) {
					t.Fatalf("error %v\nwant %s…): %s", err, want, tt.fix)
				}
				noCredentialIn(t, err)
			})
		}
	}
}

// A Vault listener that checks client certificates and refuses the
// plugin's (here: none given).
func TestLoginSaysVaultRefusesTheClientCertificate(t *testing.T) {
	now := time.Now()
	cert, certPEM := selfSigned(t, now.Add(-time.Hour), now.Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	srv := tlsVault(t, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	client := clientAt(t, srv.URL, &api.TLSConfig{CACertBytes: certPEM})
	c := loginCalls(t)[3] // cert
	err := c.login(client)
	want := "Vault at " + srv.URL + " refused the plugin's TLS client certificate (remote error: tls: certificate required): VAULT_CLIENT_CERT and VAULT_CLIENT_KEY must be a certificate and key that Vault's listener trusts"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant %s", err, want)
	}
}

// Only Vault's refusal of the token says so; another answer is another
// failure.
func TestLoginSaysWhatVaultAnswered(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"permission denied", http.StatusForbidden, `{"errors":["permission denied"]}`,
			"Vault does not accept the plugin's token (VAULT_TOKEN): Error making API request."},
		{"invalid token", http.StatusBadRequest, `{"errors":["invalid token"]}`,
			"Vault does not accept the plugin's token (VAULT_TOKEN): Error making API request."},
		{"sealed", http.StatusServiceUnavailable, `{"errors":["Vault is sealed"]}`,
			"Vault could not check the plugin's token (VAULT_TOKEN): Error making API request."},
		{"not Vault", http.StatusOK, `<html>hello</html>`,
			"the answer to the check of the plugin's token (VAULT_TOKEN) is not Vault's (invalid character '<' looking for beginning of value): check that VAULT_ADDR points at Vault"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			err := loginCalls(t)[0].login(clientFor(t, srv))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant %s", err, tt.want)
			}
			if tt.status != http.StatusOK && !strings.Contains(err.Error(), strings.Trim(tt.body[len(`{"errors":[`):], `"]}`)) {
				t.Errorf("the error lacks Vault's answer: %v", err)
			}
			noCredentialIn(t, err)
		})
	}
}
