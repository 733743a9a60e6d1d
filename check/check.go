// Package check is the swarmvault check command: it reads compose files as
// docker stack deploy would and tells, before a deploy, whether each of
// their swarmvault secrets would be served. Offline it runs each secret's
// labels and each service's POLICY_TEMPLATE through the plugin's own code;
// with --vault it also asks Vault, minting tokens as the plugin would.
//
// Each problem is the sentence the plugin would log for that task. Nothing
// read from Vault is printed.
package check

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
)

// Exit codes, for CI pipelines.
const (
	ExitOK      = 0 // every secret would be served
	ExitProblem = 1 // at least one would not: the output says why
	ExitError   = 2 // the check could not run (files, flags, Vault)
)

const usage = `Usage: swarmvault check [flags] COMPOSE_FILE...

Checks the swarmvault secrets of compose files before docker stack deploy:
the files are read as the deploy reads them (merged in order, ${VAR:-default}
from the environment; - is stdin). Offline, each secret's labels and each
service's POLICY_TEMPLATE go through the plugin's own code. With --vault, a
token is minted for each service as the plugin would mint it, and Vault says
whether the path and field exist and the service may read them; nothing read
is printed.

Plugin settings (POLICY_TEMPLATE, TOKEN_ROLE, ALLOWED_TYPES, TOKEN_TTL,
TOKEN_MAX_TTL, WRAP_MAX_TTL, VAULT_CLIENT_TIMEOUT) are taken from a flag,
else from the environment variable of that name, else the plugin's default:
give the values of your docker plugin set.

--vault uses VAULT_ADDR (and VAULT_CACERT, VAULT_NAMESPACE, ...) and your
token: VAULT_TOKEN, else VAULT_TOKEN_FILE, else ~/.vault-token. It needs what
the plugin's token has: update on auth/token/create/<TOKEN_ROLE>, or on
auth/token/create and create-orphan (with sudo) without a role.

Exit status: 0 all secrets would be served, 1 a problem was found, 2 the
check could not run.

Examples:
  swarmvault check --stack myapp docker-compose.yml
  swarmvault check --stack myapp --vault --policy-template '{{.ServiceName}}' \
      -format json docker-compose.yml docker-compose.prod.yml

Flags:
`

// settings are the command's flags, environment applied.
type settings struct {
	files     []string
	stack     string
	driver    string
	format    string
	vault     bool
	opts      provider.Options
	tokenFile string
}

// Main runs swarmvault check with args (those after "check") and returns
// its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s, err := parseFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "swarmvault check: %v\n", err)
		return ExitError
	}
	st, err := loadStack(s.files, stdin, environ(), s.stack, s.driver)
	if err != nil {
		fmt.Fprintf(stderr, "swarmvault check: %v\n", err)
		return ExitError
	}
	var verifier verifier
	if s.vault {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		v, err := vaultVerifier(ctx, s, stderr, st)
		if err != nil {
			fmt.Fprintf(stderr, "swarmvault check --vault: %v\n", err)
			return ExitError
		}
		verifier = v
	}
	rows := run(context.Background(), st, s.opts, verifier)
	if err := write(stdout, s.format, rows); err != nil {
		fmt.Fprintf(stderr, "swarmvault check: %v\n", err)
		return ExitError
	}
	return exitCode(rows)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("swarmvault check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&s.stack, "stack", "", "the stack name of docker stack deploy: services and secrets are named STACK_name in the swarm, and POLICY_TEMPLATE sees those names (required with --vault)")
	fs.StringVar(&s.driver, "driver", "vault", "the name the plugin is installed as, as the files' driver: gives it")
	fs.StringVar(&s.format, "format", "table", "output: table or json")
	fs.BoolVar(&s.vault, "vault", false, "also ask Vault (VAULT_ADDR, your token): paths, fields, each service's right to read")
	policyTemplate := fs.String("policy-template", getenv("POLICY_TEMPLATE"), "the plugin's POLICY_TEMPLATE (default $POLICY_TEMPLATE, else "+provider.DefaultPolicyTemplate+")")
	fs.StringVar(&s.opts.TokenRole, "token-role", getenv("TOKEN_ROLE"), "the plugin's TOKEN_ROLE (default $TOKEN_ROLE)")
	allowed := fs.String("allowed-types", getenv("ALLOWED_TYPES"), "the plugin's ALLOWED_TYPES (default $ALLOWED_TYPES, else all)")
	tokenTTL := fs.String("token-ttl", getenv("TOKEN_TTL"), "the plugin's TOKEN_TTL (default $TOKEN_TTL, else 1h)")
	tokenMaxTTL := fs.String("token-max-ttl", getenv("TOKEN_MAX_TTL"), "the plugin's TOKEN_MAX_TTL (default $TOKEN_MAX_TTL, else 24h)")
	wrapMaxTTL := fs.String("wrap-max-ttl", getenv("WRAP_MAX_TTL"), "the plugin's WRAP_MAX_TTL (default $WRAP_MAX_TTL, else 1h)")
	timeout := fs.String("timeout", getenv("VAULT_CLIENT_TIMEOUT"), "each Vault check's deadline, the plugin's VAULT_CLIENT_TIMEOUT (default $VAULT_CLIENT_TIMEOUT, else 10s)")
	fs.StringVar(&s.tokenFile, "token-file", getenv("VAULT_TOKEN_FILE"), "a file holding your Vault token, when VAULT_TOKEN is not set (default $VAULT_TOKEN_FILE, else ~/.vault-token)")
	// Flags may come after the files too, as with docker's own commands.
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return s, err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		s.files, rest = append(s.files, rest[0]), rest[1:]
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.files) == 0 {
		bad("no compose file given: swarmvault check [flags] COMPOSE_FILE... (see --help)")
	}
	if s.format != "table" && s.format != "json" {
		bad("-format %s is not a format: use table or json", s.format)
	}
	if s.driver == "" {
		bad("-driver is empty: give the name the plugin is installed as, e.g. vault")
	}
	if s.vault && s.stack == "" {
		bad("--vault needs --stack: POLICY_TEMPLATE gives each service policies by its name in the swarm, STACK_service")
	}
	if s.stack == "" {
		// Offline, the names only shape POLICY_TEMPLATE's errors; the
		// table says which stack name they were rendered for.
		s.stack = "stack"
	}
	var err error
	if s.opts.Policies, err = provider.ParsePolicyTemplate(*policyTemplate); err != nil {
		bad("%v", err)
	}
	if s.opts.AllowedTypes, err = provider.ParseAllowedTypes(*allowed); err != nil {
		bad("%v", err)
	}
	for _, d := range []struct {
		name, value string
		def         time.Duration
		to          *time.Duration
	}{
		{"TOKEN_TTL", *tokenTTL, provider.DefaultTokenTTL, &s.opts.TokenTTL},
		{"TOKEN_MAX_TTL", *tokenMaxTTL, provider.DefaultTokenMaxTTL, &s.opts.TokenMaxTTL},
		{"WRAP_MAX_TTL", *wrapMaxTTL, provider.DefaultWrapMaxTTL, &s.opts.WrapMaxTTL},
		{"VAULT_CLIENT_TIMEOUT", *timeout, provider.DefaultTimeout, &s.opts.Timeout},
	} {
		*d.to = d.def
		if d.value == "" {
			continue
		}
		v, err := parseutil.ParseDurationSecond(d.value)
		if err != nil || v <= 0 {
			bad("%s=%s is not a duration: use e.g. %s", d.name, d.value, d.def)
			continue
		}
		*d.to = v
	}
	if s.opts.TokenTTL > s.opts.TokenMaxTTL {
		bad("TOKEN_TTL=%s is longer than TOKEN_MAX_TTL=%s", s.opts.TokenTTL, s.opts.TokenMaxTTL)
	}
	return s, errors.Join(errs...)
}

// environ is the environment as docker stack deploy interpolates from it.
func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	return env
}

// vaultVerifier is a Provider acting with the operator's token, once that
// token is known to mint what the stack's secrets need.
func vaultVerifier(ctx context.Context, s settings, stderr io.Writer, st stack) (verifier, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	if os.Getenv("VAULT_ADDR") == "" {
		return nil, errors.New("VAULT_ADDR is not set: export VAULT_ADDR=https://vault.example.com:8200")
	}
	cfg.Timeout = s.opts.Timeout
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot make a Vault client: %w", err)
	}
	if client.Token() == "" {
		token, err := tokenFromFile(s.tokenFile)
		if err != nil {
			return nil, err
		}
		client.SetToken(token)
	}
	orphans := false
	for _, sec := range st.secrets {
		if plan, err := provider.ParsePlan(sec.labels); err == nil && plan.Type != provider.TypeKV {
			orphans = true
		}
	}
	if err := provider.CanMint(ctx, client, s.opts, orphans); err != nil {
		return nil, err
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(logrus.WarnLevel)
	return provider.New(client, log, s.opts), nil
}

// tokenFromFile reads the operator's token as the vault CLI finds it when
// VAULT_TOKEN is not set.
func tokenFromFile(file string) (string, error) {
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("no Vault token: set VAULT_TOKEN, or VAULT_TOKEN_FILE to a file holding one")
		}
		file = filepath.Join(home, ".vault-token")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("no Vault token: VAULT_TOKEN is not set and %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("no Vault token: %s is empty", file)
	}
	return token, nil
}
