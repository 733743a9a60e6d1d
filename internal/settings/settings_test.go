package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/vaultauth"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{VaultAddr: "https://vault:8200", Auth: vaultauth.Settings{Method: "token", Addr: "https://vault:8200"}, Timeout: 10 * time.Second, LogLevel: logrus.InfoLevel, LogFormat: "text",
		TokenRole: "tasks", TokenTTL: time.Hour, TokenMaxTTL: 24 * time.Hour, WrapTTL: 5 * time.Minute, WrapMaxTTL: time.Hour, ReuseCacheTTL: 5 * time.Second, LifecycleInterval: 30 * time.Second, RotationInterval: time.Minute, LifecycleConcurrency: 8, RotateAt: 0.67,
		AllowedTypes: []provider.Type{provider.TypeKV, provider.TypeRead, provider.TypeWrite, provider.TypeToken}}
	if got := policiesFor(t, c); got != "svc" {
		t.Errorf("default POLICY_TEMPLATE gives %q, want the service name", got)
	}
	c.Policies = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadConfigSettings(t *testing.T) {
	ca := writeTestCA(t)
	c, err := Load(env(map[string]string{
		"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_CACERT": ca, "VAULT_SKIP_VERIFY": "true",
		"VAULT_TOKEN_FILE": "/run/swarmvault/token", "VAULT_CLIENT_TIMEOUT": "3", "LOG_LEVEL": "debug", "LOG_FORMAT": "json",
		"POLICY_TEMPLATE": "base,{{.ServiceName}}", "TOKEN_ROLE": "tasks", "ALLOW_NO_TOKEN_ROLE": "true", "TOKEN_TTL": "10m", "TOKEN_MAX_TTL": "2h", "WRAP_TTL": "30s", "WRAP_MAX_TTL": "20m",
		"VAULT_NAMESPACE": "team-a", "VAULT_AUTH_METHOD": "approle", "VAULT_ROLE_ID_FILE": "/r", "VAULT_SECRET_ID_FILE": "/s",
		"VAULT_SECRET_ID_WRAPPED": "true", "VAULT_SECRET_ID_REMOVE": "1", "VAULT_AUTH_MOUNT": "ar", "VAULT_CERT_ROLE": "plugin",
		"HELPER_SERVICE": "helper", "HELPER_SECRET": "bootstrap", "ALLOWED_TYPES": "kv, token,kv",
		"STATE_PATH": "/secret/swarmvault/state/", "LIFECYCLE_INTERVAL": "5", "LIFECYCLE_CONCURRENCY": "32", "ROTATION_INTERVAL": "10s", "ROTATE_AT": "80%",
		"METRICS_ADDR": "127.0.0.1:9650", "REUSE_CACHE_TTL": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	// A bare number of seconds is accepted for VAULT_CLIENT_TIMEOUT, as Vault's CLI accepts it.
	want := Config{VaultAddr: "http://127.0.0.1:8200", CACert: ca, SkipVerify: true, Namespace: "team-a",
		Auth: vaultauth.Settings{Method: "approle", Addr: "http://127.0.0.1:8200", TokenFile: "/run/swarmvault/token", RoleIDFile: "/r", SecretIDFile: "/s",
			SecretIDWrapped: true, SecretIDRemove: true, Mount: "ar", CertRole: "plugin"},
		HelperService: "helper", HelperSecret: "bootstrap",
		Timeout: 3 * time.Second, LogLevel: logrus.DebugLevel, LogFormat: "json",
		TokenRole: "tasks", AllowNoTokenRole: true, TokenTTL: 10 * time.Minute, TokenMaxTTL: 2 * time.Hour, WrapTTL: 30 * time.Second, WrapMaxTTL: 20 * time.Minute,
		AllowedTypes: []provider.Type{provider.TypeKV, provider.TypeToken},
		StatePath:    "secret/swarmvault/state", LifecycleInterval: 5 * time.Second, LifecycleConcurrency: 32, RotationInterval: 10 * time.Second, RotateAt: 0.8,
		MetricsAddr: "127.0.0.1:9650", ReuseCacheTTL: 0}
	if got := policiesFor(t, c); got != "base,svc" {
		t.Errorf("POLICY_TEMPLATE gives %q", got)
	}
	c.Policies = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadConfigReportsEveryBadSetting(t *testing.T) {
	_, err := Load(env(map[string]string{
		"VAULT_CACERT": "/nonexistent/ca.pem", "VAULT_SKIP_VERIFY": "maybe", "VAULT_CLIENT_TIMEOUT": "soon", "VAULT_CLIENT_CERT": "/nonexistent/c.pem",
		"LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "TOKEN_TTL": "48h", "WRAP_TTL": "0s", "POLICY_TEMPLATE": "{{.ServiceName",
		"LIFECYCLE_INTERVAL": "500ms", "STATE_PATH": "secret//state", "METRICS_ADDR": "9650", "REUSE_CACHE_TTL": "-1s",
		"ALLOW_NO_TOKEN_ROLE": "maybe", "WRAP_MAX_TTL": "1m", "ROTATE_AT": "2/3", "LIFECYCLE_CONCURRENCY": "0",
	}))
	// One line a bad setting, in the table's order, then the checks across
	// settings.
	want := strings.Join([]string{
		"VAULT_ADDR is not set: docker plugin set <plugin> VAULT_ADDR=https://vault.example.com:8200",
		"VAULT_CACERT cannot be read: open /nonexistent/ca.pem: no such file or directory (is the file on the plugin's credentials mount?)",
		"VAULT_SKIP_VERIFY=maybe is not a boolean: use true or false",
		"VAULT_CLIENT_CERT cannot be read: stat /nonexistent/c.pem: no such file or directory (is the file on the plugin's credentials mount?)",
		"VAULT_CLIENT_TIMEOUT=soon is not a duration: use e.g. 10s",
		"POLICY_TEMPLATE does not parse: template: POLICY_TEMPLATE:1: unclosed action",
		"ALLOW_NO_TOKEN_ROLE=maybe is not a boolean: use true or false",
		"WRAP_TTL=0s is not a duration: use e.g. 5m",
		"REUSE_CACHE_TTL=-1s is not a duration: use e.g. 5s, or 0 to keep no value",
		"STATE_PATH=secret//state is not a Vault path: use e.g. secret/swarmvault/state",
		"LIFECYCLE_INTERVAL=500ms is shorter than a second: use e.g. 30s",
		"LIFECYCLE_CONCURRENCY=0 is not a number of calls from 1 to 256: use e.g. 8",
		"ROTATE_AT=2/3 is not a share of a lifetime: use e.g. 67%",
		"METRICS_ADDR=9650 is not host:port: use e.g. 127.0.0.1:9650",
		"LOG_LEVEL=loud is not a level: use debug, info, warn or error",
		"LOG_FORMAT=xml is not a format: use text or json",
		"TOKEN_TTL=48h0m0s is longer than TOKEN_MAX_TTL=24h0m0s: lower it or raise TOKEN_MAX_TTL",
		"WRAP_TTL=5m0s is longer than WRAP_MAX_TTL=1m0s: lower it or raise WRAP_MAX_TTL",
		`TOKEN_ROLE is not set: task tokens (vault.type=token, read, write) are made with auth/token/create-orphan and KV read tokens with auth/token/create, which give a policy the plugin's token does not hold only if that token has sudo, and then bound their policies by nothing but POLICY_TEMPLATE: create a token role (docs/vault-setup.md) and docker plugin set <plugin> TOKEN_ROLE=<role>, or ALLOW_NO_TOKEN_ROLE=true to accept that`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func policiesFor(t *testing.T, c Config) string {
	t.Helper()
	p, err := c.Policies.Policies(provider.Request{Request: secrets.Request{ServiceName: "svc"}})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(p, ",")
}

func TestLoadConfigBadAddrAndCA(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"vault:8200":        "VAULT_ADDR=vault:8200 is not a Vault address: use https://host:8200",
		"ftp://vault:8200":  "VAULT_ADDR=ftp://vault:8200 is not a Vault address: use https://host:8200",
		"https://":          "VAULT_ADDR=https:// is not a Vault address: use https://host:8200",
		"https://vault:443": "VAULT_CACERT " + notPEM + " holds no PEM certificate",
	} {
		_, err := Load(env(map[string]string{"VAULT_ADDR": addr, "VAULT_CACERT": notPEM}))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("VAULT_ADDR=%s: error %v, want prefix %q", addr, err, want)
		}
	}
}

// The settings that work but put tokens at risk warn at every start; a
// safe configuration warns of nothing.
func TestConfigWarnings(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"https with a token role", map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks"}, nil},
		{"http on loopback", map[string]string{"VAULT_ADDR": "http://127.0.0.1:8200", "TOKEN_ROLE": "tasks"}, nil},
		{"http on localhost", map[string]string{"VAULT_ADDR": "http://localhost:8200", "TOKEN_ROLE": "tasks"}, nil},
		{"http on ::1", map[string]string{"VAULT_ADDR": "http://[::1]:8200", "TOKEN_ROLE": "tasks"}, nil},
		{"http to another host", map[string]string{"VAULT_ADDR": "http://vault.example.com:8200", "TOKEN_ROLE": "tasks"},
			[]string{"VAULT_ADDR=http://vault.example.com:8200 is plain http to another host: tokens and secrets cross the network unencrypted; use https"}},
		{"skip verify", map[string]string{"VAULT_ADDR": "https://vault:8200", "VAULT_SKIP_VERIFY": "true", "TOKEN_ROLE": "tasks"},
			[]string{"VAULT_SKIP_VERIFY=true: Vault's certificate is not verified, so anyone on the path to Vault can read every token and secret; give Vault's CA in VAULT_CACERT instead"}},
		{"metrics on loopback", map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks", "METRICS_ADDR": "127.0.0.1:9650"}, nil},
		{"metrics on every address", map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks", "METRICS_ADDR": ":9650"},
			[]string{"METRICS_ADDR=:9650 is not a loopback address: the plugin shares the host's network, so anyone who reaches this host on that port can read the plugin's metrics (counts and timings, never a secret or name); bind 127.0.0.1 unless a scraper elsewhere needs it"}},
		{"no token role, accepted", map[string]string{"VAULT_ADDR": "https://vault:8200", "ALLOW_NO_TOKEN_ROLE": "true"},
			[]string{"TOKEN_ROLE is not set (ALLOW_NO_TOKEN_ROLE=true): task tokens (vault.type=token, read, write) are made with auth/token/create-orphan and KV read tokens with auth/token/create, which give a policy the plugin's token does not hold only if that token has sudo, and then bound their policies by nothing but POLICY_TEMPLATE; a token role with allowed_policies bounds them"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Warnings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// Without TOKEN_ROLE Vault bounds the policies of task tokens by nothing:
// the plugin does not start unless the operator accepts that, and then
// warns at every start.
func TestNoTokenRoleNeedsTheOptIn(t *testing.T) {
	_, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200"}))
	if want := `TOKEN_ROLE is not set: task tokens (vault.type=token, read, write) are made with auth/token/create-orphan and KV read tokens with auth/token/create, which give a policy the plugin's token does not hold only if that token has sudo, and then bound their policies by nothing but POLICY_TEMPLATE: create a token role (docs/vault-setup.md) and docker plugin set <plugin> TOKEN_ROLE=<role>, or ALLOW_NO_TOKEN_ROLE=true to accept that`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	for _, v := range []string{"false", "0"} {
		if _, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200", "ALLOW_NO_TOKEN_ROLE": v})); err == nil {
			t.Errorf("ALLOW_NO_TOKEN_ROLE=%s: started without TOKEN_ROLE", v)
		}
	}
	c, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200", "ALLOW_NO_TOKEN_ROLE": "true"}))
	if err != nil || !c.AllowNoTokenRole || len(c.Warnings()) != 1 {
		t.Errorf("with the opt-in: %v, warnings %q", err, c.Warnings())
	}
}

func TestSkipVerifyRefusedWithCertLogin(t *testing.T) {
	_, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks", "VAULT_SKIP_VERIFY": "true", "VAULT_AUTH_METHOD": "cert"}))
	if want := "VAULT_SKIP_VERIFY=true cannot go with VAULT_AUTH_METHOD=cert: give Vault's CA in VAULT_CACERT instead"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestAllowedTypesRefusesAnUnknownType(t *testing.T) {
	_, err := Load(env(map[string]string{"VAULT_ADDR": "https://vault:8200", "TOKEN_ROLE": "tasks", "ALLOWED_TYPES": "kv,pki"}))
	if want := `ALLOWED_TYPES=kv,pki names "pki", which is not a vault.type: use a comma list of kv, read, write and token`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// The Vault client retries nothing: a POST that Vault carried out before
// answering 5xx (a token create, a pki/issue) must not be made twice.
// VAULT_MAX_RETRIES in the environment changes nothing either.
func TestVaultClientDoesNotRetry(t *testing.T) {
	t.Setenv("VAULT_MAX_RETRIES", "5")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"errors":["internal error"]}`))
	}))
	defer srv.Close()
	c, err := Load(env(map[string]string{"VAULT_ADDR": srv.URL, "TOKEN_ROLE": "tasks"}))
	if err != nil {
		t.Fatal(err)
	}
	client, err := c.VaultClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("t")
	if _, err := client.Auth().Token().CreateOrphan(&api.TokenCreateRequest{}); err == nil {
		t.Fatal("no error from a 500")
	}
	if _, err := client.Logical().Write("pki/issue/web", map[string]any{"common_name": "x"}); err == nil {
		t.Fatal("no error from a 500")
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Vault saw %d calls for 2 requests answered 500: the client retried", n)
	}
}

// writeTestCA writes a freshly made self-signed CA certificate as PEM.
func writeTestCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarmvault test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The TLS and namespace settings reach Vault: a server that requires a
// client certificate signed by its CA, and checks the namespace header.
func TestVaultClientTLSAndNamespace(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, server bool) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
		return p
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	var gotNamespace string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotNamespace = r.Header.Get("X-Vault-Namespace")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"initialized":true,"sealed":false}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf("127.0.0.1", true)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	defer srv.Close()

	client := leaf("plugin", false)
	keyDER, _ := x509.MarshalECPrivateKey(client.PrivateKey.(*ecdsa.PrivateKey))
	settings := map[string]string{
		"VAULT_ADDR": srv.URL, "VAULT_NAMESPACE": "team-a", "TOKEN_ROLE": "tasks",
		"VAULT_CACERT":      write("ca.pem", "CERTIFICATE", caDER),
		"VAULT_CLIENT_CERT": write("client.pem", "CERTIFICATE", client.Certificate[0]),
		"VAULT_CLIENT_KEY":  write("client-key.pem", "EC PRIVATE KEY", keyDER),
	}
	c, err := Load(env(settings))
	if err != nil {
		t.Fatal(err)
	}
	vc, err := c.VaultClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vc.Sys().Health(); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	if gotNamespace != "team-a" {
		t.Errorf("X-Vault-Namespace %q", gotNamespace)
	}

	// Without the client certificate the handshake fails.
	delete(settings, "VAULT_CLIENT_CERT")
	delete(settings, "VAULT_CLIENT_KEY")
	c, _ = Load(env(settings))
	vc, _ = c.VaultClient(nil)
	if _, err := vc.Sys().Health(); err == nil {
		t.Error("reached a server that requires a client certificate without one")
	}
}

// swarmvault check reads a few of the plugin's settings: those it names
// are parsed as the plugin parses them, the others take their defaults
// and are not checked (VAULT_ADDR and TOKEN_ROLE need no value), and a
// check across settings runs only when it names them all.
func TestLoadOnlyTheNamedSettings(t *testing.T) {
	getenv := env(map[string]string{"TOKEN_TTL": "2h", "TOKEN_MAX_TTL": "1h", "WRAP_TTL": "soon", "LOG_LEVEL": "loud", "WRAP_MAX_TTL": "1m"})
	c, err := LoadOnly(getenv, "TOKEN_TTL", "WRAP_MAX_TTL")
	if err != nil {
		t.Fatalf("settings not named were checked: %v", err)
	}
	if c.TokenTTL != 2*time.Hour || c.WrapMaxTTL != time.Minute || c.TokenMaxTTL != 24*time.Hour || c.WrapTTL != 5*time.Minute || c.LogLevel != logrus.InfoLevel {
		t.Errorf("named from the environment, the rest defaults: %+v", c)
	}
	_, err = LoadOnly(getenv, "TOKEN_TTL", "TOKEN_MAX_TTL", "WRAP_TTL")
	if want := "WRAP_TTL=soon is not a duration: use e.g. 5m\nTOKEN_TTL=2h0m0s is longer than TOKEN_MAX_TTL=1h0m0s: lower it or raise TOKEN_MAX_TTL"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown setting name was taken")
		}
	}()
	LoadOnly(getenv, "TOKEN_TTLS")
}
