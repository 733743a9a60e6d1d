package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/lifecycle"
	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/vaultauth"
)

// config is the plugin's configuration. It comes from the environment only,
// because that is all `docker plugin set` can give a managed plugin.
//
// Precedence, highest first: a value given with `docker plugin set` (or as
// KEY=value on `docker plugin install`); the value declared in
// plugin/config.json; the default below, which applies when the binary runs
// outside Docker. Vault's own variable names and parsing are used wherever
// Vault has them.
type config struct {
	// VaultAddr is Vault's address, e.g. https://vault.example.com:8200. VAULT_ADDR, required.
	VaultAddr string
	// CACert is a PEM file of CAs to verify Vault's certificate with. VAULT_CACERT.
	CACert string
	// SkipVerify turns off TLS verification (tests only). VAULT_SKIP_VERIFY, default false.
	SkipVerify bool
	// Namespace is the Vault Enterprise namespace. VAULT_NAMESPACE.
	Namespace string
	// Auth is how the plugin logs in: VAULT_AUTH_METHOD (token, approle,
	// cert, helper) and the settings each method reads (see vaultauth.Settings).
	Auth vaultauth.Settings
	// HelperService and HelperSecret name the helper service and its secret
	// for VAULT_AUTH_METHOD=helper. HELPER_SERVICE, HELPER_SECRET.
	HelperService, HelperSecret string
	// Timeout bounds the Vault calls of one request. VAULT_CLIENT_TIMEOUT, default 10s.
	Timeout time.Duration
	// Policies is POLICY_TEMPLATE, parsed: the Vault policies of each task's
	// token, e.g. {{.ServiceName}},team-{{serviceLabel "team"}}. Default {{.ServiceName}}.
	Policies *provider.PolicyTemplate
	// TokenRole is the token role task tokens are made through. TOKEN_ROLE,
	// required unless AllowNoTokenRole.
	TokenRole string
	// AllowNoTokenRole accepts an unset TOKEN_ROLE: task tokens then come
	// from auth/token/create-orphan, which needs sudo, and Vault bounds
	// the policies of a sudo token's children by nothing.
	// ALLOW_NO_TOKEN_ROLE, default false.
	AllowNoTokenRole bool
	// TokenTTL is a vault.type=token token's default TTL. TOKEN_TTL, default 1h.
	TokenTTL time.Duration
	// TokenMaxTTL caps vault.token.ttl and renewals. TOKEN_MAX_TTL, default 24h.
	TokenMaxTTL time.Duration
	// WrapTTL is the wrapping TTL of vault.wrap=true. WRAP_TTL, default 5m.
	WrapTTL time.Duration
	// WrapMaxTTL is the longest TTL vault.wrap=<ttl> may ask. WRAP_MAX_TTL,
	// default 1h.
	WrapMaxTTL time.Duration
	// ReuseCacheTTL is how long a vault.reuse=true value is kept.
	// REUSE_CACHE_TTL, default 5s; 0 keeps none (then it is -1 here, as
	// provider.Options reads 0 as the default).
	ReuseCacheTTL time.Duration
	// LogLevel is logrus's level: debug, info, warn, error. LOG_LEVEL, default info.
	LogLevel logrus.Level
	// LogFormat is text or json. LOG_FORMAT, default text.
	LogFormat string
	// AllowedTypes are the vault.type values served. ALLOWED_TYPES, default
	// kv,read,write,token.
	AllowedTypes []provider.Type
	// StatePath is the KV path where the leader records what it issued to
	// each task; with the Docker socket it turns the task lifecycle on.
	// STATE_PATH, default unset (off).
	StatePath string
	// LifecycleInterval is how often the leader renews and revokes task
	// credentials. LIFECYCLE_INTERVAL, default 30s.
	LifecycleInterval time.Duration
	// RotationInterval is how often the leader checks vault.rotate secrets.
	// ROTATION_INTERVAL, default 1m.
	RotationInterval time.Duration
	// MetricsAddr is the host:port /metrics, /healthz and /readyz are
	// served on. METRICS_ADDR, default unset (off).
	MetricsAddr string
}

// loadConfig reads and validates every setting, reporting all bad settings at
// once, each by name with what to set instead.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		VaultAddr: getenv("VAULT_ADDR"),
		CACert:    getenv("VAULT_CACERT"),
		Namespace: getenv("VAULT_NAMESPACE"),
		Auth: vaultauth.Settings{
			Method:       getenv("VAULT_AUTH_METHOD"),
			Addr:         getenv("VAULT_ADDR"),
			Token:        getenv("VAULT_TOKEN"),
			TokenFile:    getenv("VAULT_TOKEN_FILE"),
			RoleIDFile:   getenv("VAULT_ROLE_ID_FILE"),
			SecretIDFile: getenv("VAULT_SECRET_ID_FILE"),
			Mount:        getenv("VAULT_AUTH_MOUNT"),
			ClientCert:   getenv("VAULT_CLIENT_CERT"),
			ClientKey:    getenv("VAULT_CLIENT_KEY"),
			CertRole:     getenv("VAULT_CERT_ROLE"),
		},
		HelperService: getenv("HELPER_SERVICE"),
		HelperSecret:  getenv("HELPER_SECRET"),
		Timeout:       provider.DefaultTimeout,
		TokenRole:     getenv("TOKEN_ROLE"),
		TokenTTL:      provider.DefaultTokenTTL,
		TokenMaxTTL:   provider.DefaultTokenMaxTTL,
		WrapTTL:       provider.DefaultWrapTTL,
		WrapMaxTTL:    provider.DefaultWrapMaxTTL,
		LogLevel:      logrus.InfoLevel,
		LogFormat:     "text",
		StatePath:     strings.Trim(getenv("STATE_PATH"), "/"),
		MetricsAddr:   getenv("METRICS_ADDR"),

		LifecycleInterval: lifecycle.DefaultInterval,
		RotationInterval:  lifecycle.DefaultRotationInterval,
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.VaultAddr == "" {
		bad("VAULT_ADDR is not set: docker plugin set <plugin> VAULT_ADDR=https://vault.example.com:8200")
	} else if u, err := url.Parse(c.VaultAddr); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("VAULT_ADDR=%s is not a Vault address: use https://host:8200", c.VaultAddr)
	}
	if c.CACert != "" {
		if pem, err := os.ReadFile(c.CACert); err != nil {
			bad("VAULT_CACERT cannot be read: %v (is the file on the plugin's credentials mount?)", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			bad("VAULT_CACERT %s holds no PEM certificate", c.CACert)
		}
	}
	for _, b := range []struct {
		name string
		to   *bool
	}{
		{"VAULT_SKIP_VERIFY", &c.SkipVerify},
		{"VAULT_SECRET_ID_WRAPPED", &c.Auth.SecretIDWrapped},
		{"VAULT_SECRET_ID_REMOVE", &c.Auth.SecretIDRemove},
		{"ALLOW_NO_TOKEN_ROLE", &c.AllowNoTokenRole},
	} {
		if v := getenv(b.name); v != "" {
			parsed, err := strconv.ParseBool(v)
			if err != nil {
				bad("%s=%s is not a boolean: use true or false", b.name, v)
			}
			*b.to = parsed
		}
	}
	for _, f := range []struct{ name, path string }{{"VAULT_CLIENT_CERT", c.Auth.ClientCert}, {"VAULT_CLIENT_KEY", c.Auth.ClientKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad("%s cannot be read: %v (is the file on the plugin's credentials mount?)", f.name, err)
		}
	}
	for _, d := range []struct {
		name, example string
		to            *time.Duration
	}{
		{"VAULT_CLIENT_TIMEOUT", "10s", &c.Timeout},
		{"TOKEN_TTL", "1h", &c.TokenTTL},
		{"TOKEN_MAX_TTL", "24h", &c.TokenMaxTTL},
		{"WRAP_TTL", "5m", &c.WrapTTL},
		{"WRAP_MAX_TTL", "1h", &c.WrapMaxTTL},
		{"LIFECYCLE_INTERVAL", "30s", &c.LifecycleInterval},
		{"ROTATION_INTERVAL", "1m", &c.RotationInterval},
	} {
		if v := getenv(d.name); v != "" {
			parsed, err := parseutil.ParseDurationSecond(v)
			if err != nil || parsed <= 0 {
				bad("%s=%s is not a duration: use e.g. %s", d.name, v, d.example)
				continue
			}
			*d.to = parsed
		}
	}
	c.ReuseCacheTTL = provider.DefaultReuseCacheTTL
	if v := getenv("REUSE_CACHE_TTL"); v != "" {
		parsed, err := parseutil.ParseDurationSecond(v)
		switch {
		case err != nil || parsed < 0:
			bad("REUSE_CACHE_TTL=%s is not a duration: use e.g. 5s, or 0 to keep no value", v)
		case parsed == 0:
			c.ReuseCacheTTL = -1
		default:
			c.ReuseCacheTTL = parsed
		}
	}
	if c.LifecycleInterval < time.Second {
		bad("LIFECYCLE_INTERVAL=%s is shorter than a second: use e.g. 30s", c.LifecycleInterval)
	}
	if c.RotationInterval < time.Second {
		bad("ROTATION_INTERVAL=%s is shorter than a second: use e.g. 1m", c.RotationInterval)
	}
	if c.StatePath != "" {
		for _, seg := range strings.Split(c.StatePath, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				bad("STATE_PATH=%s is not a Vault path: use e.g. secret/swarmvault/state", getenv("STATE_PATH"))
				break
			}
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			bad("METRICS_ADDR=%s is not host:port: use e.g. 127.0.0.1:9650", c.MetricsAddr)
		}
	}
	if c.TokenTTL > c.TokenMaxTTL {
		bad("TOKEN_TTL=%s is longer than TOKEN_MAX_TTL=%s: lower it or raise TOKEN_MAX_TTL", c.TokenTTL, c.TokenMaxTTL)
	}
	if c.WrapTTL > c.WrapMaxTTL {
		bad("WRAP_TTL=%s is longer than WRAP_MAX_TTL=%s: lower it or raise WRAP_MAX_TTL", c.WrapTTL, c.WrapMaxTTL)
	}
	if c.TokenRole == "" && !c.AllowNoTokenRole {
		// Without a role, a task's policies are bounded by nothing but
		// POLICY_TEMPLATE: refused unless the operator says so.
		bad("TOKEN_ROLE is not set: task tokens would come from auth/token/create-orphan, which needs sudo and does not bound their policies: create a token role (README \"Vault setup\") and docker plugin set <plugin> TOKEN_ROLE=<role>, or ALLOW_NO_TOKEN_ROLE=true to accept that")
	}
	policies, err := provider.ParsePolicyTemplate(getenv("POLICY_TEMPLATE"))
	if err != nil {
		bad("%v", err)
	}
	c.Policies = policies
	if v := getenv("LOG_LEVEL"); v != "" {
		l, err := logrus.ParseLevel(v)
		if err != nil {
			bad("LOG_LEVEL=%s is not a level: use debug, info, warn or error", v)
		}
		c.LogLevel = l
	}
	if v := getenv("LOG_FORMAT"); v != "" {
		if v != "text" && v != "json" {
			bad("LOG_FORMAT=%s is not a format: use text or json", v)
		}
		c.LogFormat = v
	}
	if c.AllowedTypes, err = provider.ParseAllowedTypes(getenv("ALLOWED_TYPES")); err != nil {
		bad("%v", err)
	}
	if c.SkipVerify && c.Auth.Method == "cert" {
		// The certificate login proves the plugin's identity to a server
		// whose own identity would go unchecked.
		bad("VAULT_SKIP_VERIFY=true cannot go with VAULT_AUTH_METHOD=cert: give Vault's CA in VAULT_CACERT instead")
	}
	return c, errors.Join(errs...)
}

// warnings are the settings that work but put tokens and secrets at risk,
// one sentence each, for a warning at every start.
func (c config) warnings() []string {
	var w []string
	if c.SkipVerify {
		w = append(w, "VAULT_SKIP_VERIFY=true: Vault's certificate is not verified, so anyone on the path to Vault can read every token and secret; give Vault's CA in VAULT_CACERT instead")
	}
	if u, err := url.Parse(c.VaultAddr); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		w = append(w, "VAULT_ADDR="+c.VaultAddr+" is plain http to another host: tokens and secrets cross the network unencrypted; use https")
	}
	if host, _, err := net.SplitHostPort(c.MetricsAddr); err == nil && !isLoopback(host) {
		w = append(w, "METRICS_ADDR="+c.MetricsAddr+" is not a loopback address: the plugin shares the host's network, so anyone who reaches this host on that port can read the plugin's metrics (counts and timings, never a secret or name); bind 127.0.0.1 unless a scraper elsewhere needs it")
	}
	if c.TokenRole == "" { // only with ALLOW_NO_TOKEN_ROLE=true
		w = append(w, "TOKEN_ROLE is not set: task tokens are made with auth/token/create-orphan, which needs sudo, and with sudo Vault does not check that a task's policies are a subset of the plugin's; a token role with allowed_policies bounds them")
	}
	return w
}

// isLoopback tells whether host (a name or an address) stays on this
// machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// idleConnsPerHost is how many kept-alive connections to Vault the plugin
// keeps. The Vault client's default (GOMAXPROCS+1) makes a node's burst of
// tasks open and close connections at every request (measured in bench/).
const idleConnsPerHost = 128

// tuneTransport keeps enough idle connections to Vault for bursts.
func tuneTransport(vc *api.Config) {
	if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConns = idleConnsPerHost
		t.MaxIdleConnsPerHost = idleConnsPerHost
	}
}

// vaultClient makes the Vault client every request shares: one pooled HTTP
// transport, so requests reuse keep-alive connections.
func (c config) vaultClient(wrap func(http.RoundTripper) http.RoundTripper) (*api.Client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("failed to configure the Vault client: %w", vc.Error)
	}
	vc.Address = c.VaultAddr
	vc.Timeout = c.Timeout
	// No retries: the client's default retries a POST on a 5xx, and a token
	// create or a vault.type=write (pki/issue) that Vault carried out before
	// failing would leave a second live token or certificate. A failed
	// secret fails its task, and Swarm's restart policy retries the task.
	vc.MaxRetries = 0
	tuneTransport(vc)
	if err := vc.ConfigureTLS(&api.TLSConfig{CACert: c.CACert, Insecure: c.SkipVerify, ClientCert: c.Auth.ClientCert, ClientKey: c.Auth.ClientKey}); err != nil {
		return nil, fmt.Errorf("failed to configure TLS for Vault: %w", err)
	}
	if wrap != nil {
		vc.HttpClient.Transport = wrap(vc.HttpClient.Transport)
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("failed to create the Vault client: %w", err)
	}
	// api.NewClient takes VAULT_TOKEN from the environment by itself; the
	// token is vaultauth's to set, from whichever source is configured.
	client.ClearToken()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	return client, nil
}
