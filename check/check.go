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

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/settings"
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

The plugin settings that decide whether a secret is served are taken from
a flag, else from the environment variable of that name, else the plugin's
default: give the values of your docker plugin set. They are:
  %s

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

// pluginSettings are the plugin settings that decide whether a secret is
// served: the check reads them as the plugin does, from a flag, else the
// environment, else the plugin's default.
var pluginSettings = []string{"POLICY_TEMPLATE", "TOKEN_ROLE", "ALLOWED_TYPES", "TOKEN_TTL", "TOKEN_MAX_TTL", "WRAP_MAX_TTL", "VAULT_CLIENT_TIMEOUT"}

// flagName is the check's flag for a plugin setting: -token-ttl for
// TOKEN_TTL; -timeout for VAULT_CLIENT_TIMEOUT, each Vault check's deadline.
func flagName(setting string) string {
	if setting == "VAULT_CLIENT_TIMEOUT" {
		return "timeout"
	}
	return strings.ToLower(strings.ReplaceAll(setting, "_", "-"))
}

// options are the command's flags, environment applied.
type options struct {
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

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var s options
	fs := flag.NewFlagSet("swarmvault check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, strings.Join(pluginSettings, ", "))
		fs.PrintDefaults()
	}
	fs.StringVar(&s.stack, "stack", "", "the stack name of docker stack deploy: services and secrets are named STACK_name in the swarm, and POLICY_TEMPLATE sees those names (required with --vault)")
	fs.StringVar(&s.driver, "driver", "vault", "the name the plugin is installed as, as the files' driver: gives it")
	fs.StringVar(&s.format, "format", "table", "output: table or json")
	fs.BoolVar(&s.vault, "vault", false, "also ask Vault (VAULT_ADDR, your token): paths, fields, each service's right to read")
	// The plugin settings the check shares, each a flag named after it.
	shared := map[string]*string{}
	for _, name := range pluginSettings {
		set, _ := settings.Lookup(name)
		def := "$" + name
		if set.Default != "" {
			def += ", else " + set.Default
		}
		shared[name] = fs.String(flagName(name), getenv(name), fmt.Sprintf("the plugin's %s (default %s)", name, def))
	}
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
	cfg, err := settings.LoadOnly(func(name string) string { return *shared[name] }, pluginSettings...)
	if err != nil {
		errs = append(errs, err)
	}
	s.opts = cfg.Options()
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
func vaultVerifier(ctx context.Context, s options, stderr io.Writer, st stack) (verifier, error) {
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
