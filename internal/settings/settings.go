package settings

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/lifecycle"
	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/vaultauth"
)

// Config is every setting, parsed. It comes from the environment only,
// because that is all `docker plugin set` can give a managed plugin.
//
// Precedence, highest first: a value given with `docker plugin set` (or as
// KEY=value on `docker plugin install`); the value plugin/config.json
// declares, which is the table's Default; the same Default when the binary
// runs outside Docker. An empty value is the Default too. Vault's own
// variable names and parsing are used wherever Vault has them.
type Config struct {
	// VaultAddr is Vault's address (VAULT_ADDR).
	VaultAddr string
	// CACert, SkipVerify and Namespace are VAULT_CACERT, VAULT_SKIP_VERIFY
	// and VAULT_NAMESPACE, as Vault's CLI reads them.
	CACert     string
	SkipVerify bool
	Namespace  string
	// Auth is how the plugin logs in: VAULT_AUTH_METHOD and the settings
	// each method reads; vaultauth checks that a method has what it needs.
	Auth vaultauth.Settings
	// HelperService and HelperSecret name the helper service and its
	// secret for VAULT_AUTH_METHOD=helper; bootstrap checks them.
	HelperService, HelperSecret string
	// Timeout bounds the Vault calls of one request (VAULT_CLIENT_TIMEOUT).
	Timeout time.Duration
	// Policies is POLICY_TEMPLATE, parsed.
	Policies *provider.PolicyTemplate
	// TokenRole is TOKEN_ROLE; AllowNoTokenRole (ALLOW_NO_TOKEN_ROLE)
	// accepts it unset.
	TokenRole        string
	AllowNoTokenRole bool
	// TokenTTL, TokenMaxTTL, WrapTTL and WrapMaxTTL are TOKEN_TTL,
	// TOKEN_MAX_TTL, WRAP_TTL and WRAP_MAX_TTL.
	TokenTTL, TokenMaxTTL, WrapTTL, WrapMaxTTL time.Duration
	// ReuseCacheTTL is REUSE_CACHE_TTL; 0 keeps no value.
	ReuseCacheTTL time.Duration
	// AllowedTypes are the vault.type values served (ALLOWED_TYPES).
	AllowedTypes []provider.Type
	// StatePath is STATE_PATH without leading or trailing slashes; empty
	// turns the task lifecycle off.
	StatePath string
	// LifecycleInterval and RotationInterval are LIFECYCLE_INTERVAL and
	// ROTATION_INTERVAL.
	LifecycleInterval, RotationInterval time.Duration
	// LifecycleConcurrency is LIFECYCLE_CONCURRENCY: the Vault calls the
	// leader's rounds make at once.
	LifecycleConcurrency int
	// RotateAt is ROTATE_AT, a share of a certificate's lifetime (0 to 1).
	RotateAt float64
	// MetricsAddr is METRICS_ADDR; empty serves no metrics.
	MetricsAddr string
	// LogLevel and LogFormat are LOG_LEVEL and LOG_FORMAT.
	LogLevel  logrus.Level
	LogFormat string
}

// Options are the request path's options these settings give; the caller
// adds what is not a setting (the tracker, the observer, reauth).
func (c Config) Options() provider.Options {
	return provider.Options{
		Timeout:       c.Timeout,
		Policies:      c.Policies,
		TokenRole:     c.TokenRole,
		TokenTTL:      c.TokenTTL,
		TokenMaxTTL:   c.TokenMaxTTL,
		WrapTTL:       c.WrapTTL,
		WrapMaxTTL:    c.WrapMaxTTL,
		ReuseCacheTTL: c.ReuseCacheTTL,
		AllowedTypes:  c.AllowedTypes,
	}
}

// Setting is one row of the table.
type Setting struct {
	// Name is the environment variable.
	Name string
	// Default is what an unset or empty value means, as plugin/config.json
	// declares it.
	Default string
	// WhenUnset says, in the docs, what an empty Default means ("required",
	// "off"); "—" when it means nothing to explain.
	WhenUnset string
	// Help is the setting's one line, in Markdown: the docs show it as it
	// is, config.json without the back-quotes.
	Help string
	// parse sets the setting's field of c from v (Default when unset) and
	// says what is wrong with v in a sentence that names the setting.
	parse func(s Setting, v string, c *Config) error
}

// A rule is a check across settings: it runs only when all of names are
// loaded.
type rule struct {
	names []string
	check func(c *Config) error
}

// Load reads every setting through getenv and reports all bad settings at
// once, one line each, each by name with what to set instead.
func Load(getenv func(string) string) (Config, error) {
	return load(getenv, func(string) bool { return true })
}

// LoadOnly reads the named settings through getenv, as Load would read
// them, and gives every other setting its default; the checks across
// settings run where all the settings they compare are named. It is for
// tools that share some of the plugin's settings, such as swarmvault check.
func LoadOnly(getenv func(string) string, names ...string) (Config, error) {
	for _, n := range names {
		if _, ok := Lookup(n); !ok {
			panic("settings: no setting " + n)
		}
	}
	return load(getenv, func(n string) bool { return slices.Contains(names, n) })
}

// Lookup returns the setting of that name.
func Lookup(name string) (Setting, bool) {
	i := slices.IndexFunc(Table, func(s Setting) bool { return s.Name == name })
	if i < 0 {
		return Setting{}, false
	}
	return Table[i], true
}

func load(getenv func(string) string, loaded func(string) bool) (Config, error) {
	var c Config
	var errs []error
	for _, s := range Table {
		v := s.Default
		if loaded(s.Name) {
			if got := getenv(s.Name); got != "" {
				v = got
			}
		}
		if err := s.parse(s, v, &c); err != nil {
			if loaded(s.Name) {
				errs = append(errs, err)
			}
			// The checks across settings see the default, as the
			// plugin would never run with a bad value.
			_ = s.parse(s, s.Default, &c)
		}
	}
	for _, r := range rules {
		if !slices.ContainsFunc(r.names, func(n string) bool { return !loaded(n) }) {
			if err := r.check(&c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return c, errors.Join(errs...)
}

// rules are the checks across settings, in the order their errors show.
var rules = []rule{
	{[]string{"TOKEN_TTL", "TOKEN_MAX_TTL"}, func(c *Config) error {
		if c.TokenTTL > c.TokenMaxTTL {
			return fmt.Errorf("TOKEN_TTL=%s is longer than TOKEN_MAX_TTL=%s: lower it or raise TOKEN_MAX_TTL", c.TokenTTL, c.TokenMaxTTL)
		}
		return nil
	}},
	{[]string{"WRAP_TTL", "WRAP_MAX_TTL"}, func(c *Config) error {
		if c.WrapTTL > c.WrapMaxTTL {
			return fmt.Errorf("WRAP_TTL=%s is longer than WRAP_MAX_TTL=%s: lower it or raise WRAP_MAX_TTL", c.WrapTTL, c.WrapMaxTTL)
		}
		return nil
	}},
	{[]string{"TOKEN_ROLE", "ALLOW_NO_TOKEN_ROLE"}, func(c *Config) error {
		// Without a role, a task's policies are bounded by nothing but
		// POLICY_TEMPLATE: refused unless the operator says so.
		if c.TokenRole == "" && !c.AllowNoTokenRole {
			return errors.New("TOKEN_ROLE is not set: " + withoutTokenRole + ": create a token role (docs/vault-setup.md) and docker plugin set <plugin> TOKEN_ROLE=<role>, or ALLOW_NO_TOKEN_ROLE=true to accept that")
		}
		return nil
	}},
	{[]string{"VAULT_SKIP_VERIFY", "VAULT_AUTH_METHOD"}, func(c *Config) error {
		// The certificate login proves the plugin's identity to a server
		// whose own identity would go unchecked.
		if c.SkipVerify && c.Auth.Method == "cert" {
			return errors.New("VAULT_SKIP_VERIFY=true cannot go with VAULT_AUTH_METHOD=cert: give Vault's CA in VAULT_CACERT instead")
		}
		return nil
	}},
}

// withoutTokenRole says what an unset TOKEN_ROLE means, in the error that
// refuses it, the warning that accepts it and ALLOW_NO_TOKEN_ROLE's help:
// one sentence, so that the three never tell it differently.
const withoutTokenRole = "task tokens (vault.type=token, read, write) are made with auth/token/create-orphan and KV read tokens " +
	"with auth/token/create, which give a policy the plugin's token does not hold only if that token has sudo, " +
	"and then bound their policies by nothing but POLICY_TEMPLATE"

// Warnings are the settings that work but put tokens and secrets at risk,
// one sentence each, for a warning at every start.
func (c Config) Warnings() []string {
	var w []string
	if c.SkipVerify {
		w = append(w, "VAULT_SKIP_VERIFY=true: Vault's certificate is not verified, so anyone on the path to Vault can read every token and secret; give Vault's CA in VAULT_CACERT instead")
	}
	if plainHTTPToAnotherHost(c.VaultAddr) {
		w = append(w, "VAULT_ADDR="+c.VaultAddr+" is plain http to another host: tokens and secrets cross the network unencrypted; use https")
	}
	if c.MetricsAddr != "" && !loopbackAddr(c.MetricsAddr) {
		w = append(w, "METRICS_ADDR="+c.MetricsAddr+" is not a loopback address: the plugin shares the host's network, so anyone who reaches this host on that port can read the plugin's metrics (counts and timings, never a secret or name); bind 127.0.0.1 unless a scraper elsewhere needs it")
	}
	if c.TokenRole == "" { // only with ALLOW_NO_TOKEN_ROLE=true
		w = append(w, "TOKEN_ROLE is not set (ALLOW_NO_TOKEN_ROLE=true): "+withoutTokenRole+"; a token role with allowed_policies bounds them")
	}
	return w
}

// Defaults kept beside the code they shape, shown as a user writes them.
var (
	defaultTimeout   = formatDuration(provider.DefaultTimeout)
	defaultTokenTTL  = formatDuration(provider.DefaultTokenTTL)
	defaultTokenMax  = formatDuration(provider.DefaultTokenMaxTTL)
	defaultWrapTTL   = formatDuration(provider.DefaultWrapTTL)
	defaultWrapMax   = formatDuration(provider.DefaultWrapMaxTTL)
	defaultReuse     = formatDuration(provider.DefaultReuseCacheTTL)
	defaultLifecycle = formatDuration(lifecycle.DefaultInterval)
	defaultRotation  = formatDuration(lifecycle.DefaultRotationInterval)
)

// formatDuration writes d as a setting's value: 1h, 24h, 5m, 10s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// types lists vault.type values as ALLOWED_TYPES takes them.
func types(ts []provider.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}
