package settings

import (
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/lifecycle"
	"github.com/swarmvault/swarmvault/provider"
)

// Table is every setting, in the order plugin/config.json and the docs
// list them.
var Table = []Setting{
	{Name: "VAULT_ADDR", WhenUnset: "required",
		Help: "Vault's address, e.g. `https://vault.example.com:8200`; plain `http://` to a host that is not loopback warns at every start",
		parse: func(s Setting, v string, c *Config) error {
			c.VaultAddr, c.Auth.Addr = v, v
			if v == "" {
				return fmt.Errorf("VAULT_ADDR is not set: docker plugin set <plugin> VAULT_ADDR=https://vault.example.com:8200")
			}
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("VAULT_ADDR=%s is not a Vault address: use https://host:8200", v)
			}
			return nil
		}},
	{Name: "VAULT_CACERT", WhenUnset: "Mozilla's CA roots, compiled into the binary (the plugin's rootfs has no CA bundle)",
		Help: "PEM file of CA certificates to verify Vault's TLS certificate with, e.g. `/run/swarmvault/ca.pem`",
		parse: func(s Setting, v string, c *Config) error {
			c.CACert = v
			if v == "" {
				return nil
			}
			pem, err := os.ReadFile(v)
			if err != nil {
				return fmt.Errorf("VAULT_CACERT cannot be read: %v (is the file on the plugin's credentials mount?)", err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(pem) {
				return fmt.Errorf("VAULT_CACERT %s holds no PEM certificate", v)
			}
			return nil
		}},
	{Name: "VAULT_SKIP_VERIFY", Default: "false",
		Help:  "`true` turns off verification of Vault's TLS certificate (tests only): a warning at every start; refused with `VAULT_AUTH_METHOD=cert`",
		parse: boolean(func(c *Config) *bool { return &c.SkipVerify })},
	{Name: "VAULT_NAMESPACE", WhenUnset: "—",
		Help:  "Vault Enterprise namespace to work in",
		parse: text(func(c *Config) *string { return &c.Namespace })},
	{Name: "VAULT_CLIENT_CERT", WhenUnset: "—",
		Help:  "PEM client certificate for TLS to Vault and for `VAULT_AUTH_METHOD=cert`, e.g. `/run/swarmvault/client.pem`",
		parse: file(func(c *Config) *string { return &c.Auth.ClientCert })},
	{Name: "VAULT_CLIENT_KEY", WhenUnset: "—",
		Help:  "PEM key of `VAULT_CLIENT_CERT`, e.g. `/run/swarmvault/client-key.pem`",
		parse: file(func(c *Config) *string { return &c.Auth.ClientKey })},
	{Name: "VAULT_AUTH_METHOD", Default: "token",
		Help:  "how the plugin logs in to Vault: `token` (`VAULT_TOKEN_FILE` or `VAULT_TOKEN`), `approle` (`VAULT_ROLE_ID_FILE`, `VAULT_SECRET_ID_FILE`), `cert` (`VAULT_CLIENT_CERT`/`KEY`) or `helper` (`HELPER_SERVICE`, `HELPER_SECRET`)",
		parse: text(func(c *Config) *string { return &c.Auth.Method })},
	{Name: "VAULT_TOKEN_FILE", WhenUnset: "—",
		Help:  "file holding the plugin's own Vault token, e.g. `/run/swarmvault/token`; read again when it changes (preferred over `VAULT_TOKEN`: values show in `docker plugin inspect`)",
		parse: text(func(c *Config) *string { return &c.Auth.TokenFile })},
	{Name: "VAULT_TOKEN", WhenUnset: "—",
		Help:  "the plugin's own Vault token as a value: visible to anyone who can run `docker plugin inspect`, so prefer `VAULT_TOKEN_FILE`",
		parse: text(func(c *Config) *string { return &c.Auth.Token })},
	{Name: "VAULT_ROLE_ID_FILE", WhenUnset: "—",
		Help:  "`approle`, or `helper` with an AppRole secret-id: file holding the role-id, e.g. `/run/swarmvault/role-id`",
		parse: text(func(c *Config) *string { return &c.Auth.RoleIDFile })},
	{Name: "VAULT_SECRET_ID_FILE", WhenUnset: "—",
		Help:  "`approle`: file holding the secret-id (or a response-wrapped secret-id, see `VAULT_SECRET_ID_WRAPPED`), e.g. `/run/swarmvault/secret-id`",
		parse: text(func(c *Config) *string { return &c.Auth.SecretIDFile })},
	{Name: "VAULT_SECRET_ID_WRAPPED", Default: "false",
		Help:  "`approle`: `true` if `VAULT_SECRET_ID_FILE` holds a wrapping token; it is unwrapped once, after checking that the AppRole mount made it",
		parse: boolean(func(c *Config) *bool { return &c.Auth.SecretIDWrapped })},
	{Name: "VAULT_SECRET_ID_REMOVE", Default: "false",
		Help:  "`approle`: `true` removes `VAULT_SECRET_ID_FILE` once read",
		parse: boolean(func(c *Config) *bool { return &c.Auth.SecretIDRemove })},
	{Name: "VAULT_AUTH_MOUNT", WhenUnset: "the method's name",
		Help:  "mount path of the `approle` or `cert` auth method",
		parse: text(func(c *Config) *string { return &c.Auth.Mount })},
	{Name: "VAULT_CERT_ROLE", WhenUnset: "any matching role",
		Help:  "`cert`: the certificate role to log in as",
		parse: text(func(c *Config) *string { return &c.Auth.CertRole })},
	{Name: "HELPER_SERVICE", WhenUnset: "—",
		Help:  "`helper`: the swarm service whose task on this node holds the bootstrap secret (needs `docker-socket.source=/var/run/docker.sock`)",
		parse: text(func(c *Config) *string { return &c.HelperService })},
	{Name: "HELPER_SECRET", WhenUnset: "—",
		Help:  "`helper`: the secret's file name in the helper's `/run/secrets/`: a token, a wrapped token, or with `VAULT_ROLE_ID_FILE` an AppRole secret-id",
		parse: text(func(c *Config) *string { return &c.HelperSecret })},
	{Name: "VAULT_CLIENT_TIMEOUT", Default: defaultTimeout,
		Help:  "deadline for the Vault calls of one secret request; a slow answer holds up every task of that node",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.Timeout }, 0)},
	{Name: "POLICY_TEMPLATE", Default: provider.DefaultPolicyTemplate,
		Help: "Go template giving each task token's Vault policies, comma-separated, over `.ServiceName`, `.ServiceID`, `.SecretName`, `.TaskName`, `.TaskID`, `.NodeID` and `serviceLabel \"key\"` (the service's `deploy.labels`), e.g. `{{.ServiceName}},team-{{serviceLabel \"team\"}}`; parsed at start; secret labels can only narrow it, and a label a service lacks fails that service's requests only",
		parse: func(s Setting, v string, c *Config) (err error) {
			c.Policies, err = provider.ParsePolicyTemplate(v)
			return err
		}},
	{Name: "TOKEN_ROLE", WhenUnset: "required",
		Help:  "token role task tokens are created through (`auth/token/create/<role>`, see docs/vault-setup.md): it must allow the policies `POLICY_TEMPLATE` gives, disallow the plugin's own, and be `orphan=true`; required unless `ALLOW_NO_TOKEN_ROLE=true`",
		parse: text(func(c *Config) *string { return &c.TokenRole })},
	{Name: "ALLOW_NO_TOKEN_ROLE", Default: "false",
		Help:  "`true`: start without `TOKEN_ROLE`: " + withoutTokenRole + "; a warning at every start",
		parse: boolean(func(c *Config) *bool { return &c.AllowNoTokenRole })},
	{Name: "TOKEN_TTL", Default: defaultTokenTTL,
		Help:  "TTL of a task token when the secret sets no `vault.token.ttl`: the token a `vault.type=token` secret gives the task, and the one a `vault.type=read` or `write` is made with, which bounds a dynamic secret's lease (the task lifecycle renews it while the task runs); not KV reads, whose batch tokens live twice `VAULT_CLIENT_TIMEOUT`",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.TokenTTL }, 0)},
	{Name: "TOKEN_MAX_TTL", Default: defaultTokenMax,
		Help:  "longest `vault.token.ttl` a secret may ask for, and the explicit max TTL a task may renew its token to",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.TokenMaxTTL }, 0)},
	{Name: "WRAP_TTL", Default: defaultWrapTTL,
		Help:  "wrapping TTL of `vault.wrap=true`: how long the task has to unwrap its value",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.WrapTTL }, 0)},
	{Name: "WRAP_MAX_TTL", Default: defaultWrapMax,
		Help:  "longest wrapping TTL a `vault.wrap=<ttl>` label may ask for; longer fails the task (and `swarmvault check`): a wrapping token is the value until it is unwrapped or expires",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.WrapMaxTTL }, 0)},
	{Name: "REUSE_CACHE_TTL", Default: defaultReuse,
		Help: "how long the value of a `vault.reuse=true` secret is kept after a read, for the next tasks (a scale-up asks once per task within a few seconds: 100 tasks cost a handful of reads); a value changed in Vault reaches new tasks at most this late. `0` keeps none (identical concurrent reads are shared anyway); per-task values, tokens and wrapped values are never kept",
		parse: func(s Setting, v string, c *Config) error {
			d, err := parseutil.ParseDurationSecond(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%s=%s is not a duration: use e.g. %s, or 0 to keep no value", s.Name, v, s.Default)
			}
			c.ReuseCacheTTL = d
			return nil
		}},
	{Name: "ALLOWED_TYPES", Default: types(provider.AllTypes),
		Help: "comma list of the `vault.type` values this plugin serves: `kv`, `read`, `write`, `token` (e.g. `kv,token` forbids logical reads and writes, whose side effects such as `pki/issue` run with each task start); any other fails its task with a sentence naming this setting",
		parse: func(s Setting, v string, c *Config) (err error) {
			c.AllowedTypes, err = provider.ParseAllowedTypes(v)
			return err
		}},
	{Name: "STATE_PATH", WhenUnset: "— (off)",
		Help: "task lifecycle: a Vault KV path of the plugin's own (e.g. `secret/swarmvault/state`) where the leader records each task's token accessors and lease IDs (never a token or value); with the `docker-socket` mount the leader renews them while the task runs and revokes them when it ends (see docs/lifecycle.md); unset, credentials live for their TTL",
		parse: func(s Setting, v string, c *Config) error {
			c.StatePath = strings.Trim(v, "/")
			if c.StatePath == "" {
				return nil
			}
			for _, seg := range strings.Split(c.StatePath, "/") {
				if seg == "" || seg == "." || seg == ".." || strings.ContainsFunc(seg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
					return fmt.Errorf("STATE_PATH=%s is not a Vault path: use e.g. secret/swarmvault/state", v)
				}
			}
			return nil
		}},
	{Name: "LIFECYCLE_INTERVAL", Default: defaultLifecycle,
		Help:  "task lifecycle: how often the leader renews running tasks' credentials and revokes those of ended tasks (also how long credentials may outlive their task); at least `1s`",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.LifecycleInterval }, time.Second)},
	{Name: "LIFECYCLE_CONCURRENCY", Default: strconv.Itoa(lifecycle.DefaultWorkers),
		Help: "task lifecycle: how many Vault calls the leader makes at once (renewals, revocations, and a new leader's reads of `STATE_PATH`'s records); raise it with the number of tasks holding credentials (see docs/lifecycle.md, \"At scale\"), lower it to spare a busy Vault; 1 to 256",
		parse: func(s Setting, v string, c *Config) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 256 {
				return fmt.Errorf("%s=%s is not a number of calls from 1 to 256: use e.g. %s", s.Name, v, s.Default)
			}
			c.LifecycleConcurrency = n
			return nil
		}},
	{Name: "ROTATION_INTERVAL", Default: defaultRotation,
		Help:  "rotation: how often the leader checks the `vault.rotate=true` KV secrets for a new value in Vault and rolls the services that hold an old one (needs the `docker-socket` mount; credentials are checked every `LIFECYCLE_INTERVAL`); at least `1s`",
		parse: positiveDuration(func(c *Config) *time.Duration { return &c.RotationInterval }, time.Second)},
	{Name: "ROTATE_AT", Default: percent(lifecycle.DefaultRotateAt),
		Help: "for credentials with an expiration nothing renews (certificates: `pki/issue` answers one, with no lease): the share of their lifetime after which the leader rolls the service of a `vault.rotate=true` secret, or warns, naming the service, for one without; between `1%` and `99%`",
		parse: func(s Setting, v string, c *Config) error {
			n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
			if err != nil || !strings.HasSuffix(v, "%") || n < 1 || n > 99 {
				return fmt.Errorf("%s=%s is not a share of a lifetime: use e.g. %s", s.Name, v, s.Default)
			}
			c.RotateAt = float64(n) / 100
			return nil
		}},
	{Name: "METRICS_ADDR", WhenUnset: "— (off)",
		Help: "`host:port` to serve Prometheus `/metrics`, `/healthz` and `/readyz` on (see docs/operations.md), e.g. `127.0.0.1:9650`; the plugin shares the host's network, so an address that is not loopback exposes them to whoever reaches it, and warns at every start",
		parse: func(s Setting, v string, c *Config) error {
			c.MetricsAddr = v
			if v == "" {
				return nil
			}
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return fmt.Errorf("METRICS_ADDR=%s is not host:port: use e.g. 127.0.0.1:9650", v)
			}
			return nil
		}},
	{Name: "LOG_LEVEL", Default: "info",
		Help: "log level: `debug`, `info`, `warn` or `error` (secret values and tokens are never logged at any level)",
		parse: func(s Setting, v string, c *Config) error {
			l, err := logrus.ParseLevel(v)
			if err != nil {
				return fmt.Errorf("LOG_LEVEL=%s is not a level: use debug, info, warn or error", v)
			}
			c.LogLevel = l
			return nil
		}},
	{Name: "LOG_FORMAT", Default: "text",
		Help: "log format: `text` or `json`; under dockerd text lines carry no time of their own (dockerd stamps each), JSON lines keep theirs, for pipelines that parse the line alone",
		parse: func(s Setting, v string, c *Config) error {
			c.LogFormat = v
			if v != "text" && v != "json" {
				return fmt.Errorf("LOG_FORMAT=%s is not a format: use text or json", v)
			}
			return nil
		}},
}

// text is a setting taken as it is.
func text(to func(*Config) *string) func(Setting, string, *Config) error {
	return func(_ Setting, v string, c *Config) error {
		*to(c) = v
		return nil
	}
}

// file is a setting that names a file the plugin must be able to read.
func file(to func(*Config) *string) func(Setting, string, *Config) error {
	return func(s Setting, v string, c *Config) error {
		*to(c) = v
		if v == "" {
			return nil
		}
		if _, err := os.Stat(v); err != nil {
			return fmt.Errorf("%s cannot be read: %v (is the file on the plugin's credentials mount?)", s.Name, err)
		}
		return nil
	}
}

// boolean is a true/false setting, parsed as strconv.ParseBool parses.
func boolean(to func(*Config) *bool) func(Setting, string, *Config) error {
	return func(s Setting, v string, c *Config) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%s is not a boolean: use true or false", s.Name, v)
		}
		*to(c) = b
		return nil
	}
}

// positiveDuration parses a positive duration, in Vault's syntax (a bare number is
// seconds), of at least least when least is not 0.
func positiveDuration(to func(*Config) *time.Duration, least time.Duration) func(Setting, string, *Config) error {
	return func(s Setting, v string, c *Config) error {
		d, err := parseutil.ParseDurationSecond(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%s is not a duration: use e.g. %s", s.Name, v, s.Default)
		}
		if d < least {
			return fmt.Errorf("%s=%s is shorter than %s: use e.g. %s", s.Name, d, inWords(least), s.Default)
		}
		*to(c) = d
		return nil
	}
}

// inWords says a lower bound in an error sentence.
func inWords(d time.Duration) string {
	if d == time.Second {
		return "a second"
	}
	return formatDuration(d)
}

// plainHTTPToAnotherHost tells whether addr sends tokens unencrypted off
// this machine.
func plainHTTPToAnotherHost(addr string) bool {
	u, err := url.Parse(addr)
	return err == nil && u.Scheme == "http" && !isLoopback(u.Hostname())
}

// loopbackAddr tells whether a host:port listens on this machine only.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err != nil || isLoopback(host)
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

// percent writes a share as ROTATE_AT takes it: 0.67 is 67%.
func percent(share float64) string { return strconv.Itoa(int(math.Round(share*100))) + "%" }
