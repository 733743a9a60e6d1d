package check

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/settings"
	"github.com/swarmvault/swarmvault/internal/suggest"
	"github.com/swarmvault/swarmvault/provider"
)

// Exit codes, for CI pipelines. A problem wins over unchecked (see
// exitCode); ExitError means no rows were judged at all.
const (
	ExitOK        = 0 // every secret would be served
	ExitProblem   = 1 // at least one would not: the output says why
	ExitError     = 2 // the check could not run (files, flags, Vault)
	ExitUnchecked = 3 // no problem, but a row the check could not judge
)

const usage = `Usage: swarmvault check [flags] COMPOSE_FILE...

Checks the swarmvault secrets of compose files before docker stack deploy:
the files are read as the deploy reads them (merged in order, ${VAR:-default}
from the environment; - is stdin). Offline, each secret's labels and each
service's POLICY_TEMPLATE go through the plugin's own code, and each problem
of a secret for a service is a line of its own. With --vault, a token is
minted for each service as the plugin would mint it, and Vault says whether
the path and field exist and the service may read them; nothing read is
printed.

The plugin settings that decide whether a secret is served are taken from
a flag, else from the environment variable of that name, else the plugin's
default: give the values of your docker plugin set. They are:
  %s
The output's first line (with --format json, its settings) says the value
of each, and of --driver and --stack, and where it came from: flag, env or
default.

--vault uses VAULT_ADDR (and VAULT_CACERT, VAULT_NAMESPACE, ...) and your
token: VAULT_TOKEN, else VAULT_TOKEN_FILE, else ~/.vault-token. It needs what
the plugin's token has: update on auth/token/create/<TOKEN_ROLE>, or on
auth/token/create and create-orphan (with sudo) without a role.

Exit status:
  0  every secret would be served
  1  a problem: a secret would not be served (the output says why)
  2  the check could not run: a file that does not load, a bad flag, or,
     with --vault, no VAULT_ADDR or token, Vault out of reach, or a token
     without the plugin's rights
  3  unchecked: no problem, but a secret the check could not judge: a
     POLICY_TEMPLATE that uses a service, task or node ID (Swarm makes them
     at the deploy), or Vault that did not answer for it (the rows say why)
A problem wins over unchecked: a 1 is certain whatever the unchecked
secrets turn out to be, so a pipeline that lets 3 pass still stops on it.

Examples:
  swarmvault check --stack myapp docker-compose.yml
  swarmvault check --stack myapp --vault --policy-template '{{.ServiceName}}' \
      --format json docker-compose.yml docker-compose.prod.yml

Flags:
`

// pluginSettings are the plugin settings that decide whether a secret is
// served: the check reads them as the plugin does, from a flag, else the
// environment, else the plugin's default.
var pluginSettings = []string{"POLICY_TEMPLATE", "TOKEN_ROLE", "ALLOWED_TYPES", "TOKEN_TTL", "TOKEN_MAX_TTL", "WRAP_MAX_TTL", "VAULT_CLIENT_TIMEOUT"}

// flagName is the check's flag for a plugin setting: --token-ttl for
// TOKEN_TTL; --timeout for VAULT_CLIENT_TIMEOUT, each Vault check's deadline.
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
	// settings are those in effect, as the output shows them.
	settings []shown
}

// shown is a setting in effect as the output shows it: its value, and
// where it came from (flag, env or default). No token is ever one.
type shown struct {
	Name  string `json:"-"`
	Value string `json:"value"`
	From  string `json:"from"`
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
	if err := write(stdout, s.format, s.settings, rows); err != nil {
		fmt.Fprintf(stderr, "swarmvault check: %v\n", err)
		return ExitError
	}
	return exitCode(rows)
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var s options
	fs := flag.NewFlagSet("swarmvault check", flag.ContinueOnError)
	// The flag package's own usage and errors write flags with one dash:
	// both are ours, below.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&s.stack, "stack", "", "the stack name of docker stack deploy: services and secrets are named STACK_name in the swarm, and POLICY_TEMPLATE sees those names (required with --vault)")
	fs.StringVar(&s.driver, "driver", "vault", "the name the plugin is installed as, as the files' driver: gives it (default vault)")
	fs.StringVar(&s.format, "format", "table", "output: table or json (default table)")
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
		if err := fs.Parse(rest); errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, usage, strings.Join(pluginSettings, ", "))
			printFlags(stderr, fs)
			return s, err
		} else if err != nil {
			return s, flagError(err, fs)
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
		bad("--format %s is not a format: use table or json", s.format)
	}
	if s.driver == "" {
		bad("--driver is empty: give the name the plugin is installed as, e.g. vault")
	}
	if s.vault && s.stack == "" {
		bad("--vault needs --stack: POLICY_TEMPLATE gives each service policies by its name in the swarm, STACK_service")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if s.stack == "" {
		// Offline, the names only shape POLICY_TEMPLATE's errors; the
		// settings line says which stack name they were rendered for.
		s.stack = "stack"
		given["stack"] = false
	}
	cfg, err := settings.LoadOnly(func(name string) string { return *shared[name] }, pluginSettings...)
	if err != nil {
		errs = append(errs, err)
	}
	s.opts = cfg.Options()
	for _, name := range pluginSettings {
		set, _ := settings.Lookup(name)
		sh := shown{Name: name, Value: *shared[name], From: "env"}
		switch {
		case sh.Value == "":
			// As the plugin reads it: an empty value is the default.
			sh.Value, sh.From = set.Default, "default"
		case given[flagName(name)]:
			sh.From = "flag"
		}
		s.settings = append(s.settings, sh)
	}
	for _, f := range []struct{ name, value string }{{"driver", s.driver}, {"stack", s.stack}} {
		sh := shown{Name: f.name, Value: f.value, From: "default"}
		if given[f.name] {
			sh.From = "flag"
		}
		s.settings = append(s.settings, sh)
	}
	if s.vault {
		s.settings = append(s.settings, shown{Name: "VAULT_ADDR", Value: redactURL(getenv("VAULT_ADDR")), From: "env"})
	}
	return s, errors.Join(errs...)
}

// flagArgs name the value of each flag that takes one, in the help.
var flagArgs = map[string]string{
	"stack": "NAME", "driver": "NAME", "format": "table|json", "token-file": "FILE",
	"policy-template": "TEMPLATE", "token-role": "ROLE", "allowed-types": "TYPES",
	"token-ttl": "DURATION", "token-max-ttl": "DURATION", "wrap-max-ttl": "DURATION", "timeout": "DURATION",
}

// printFlags lists fs's flags as the help and the errors write them, with
// two dashes (the flag package's PrintDefaults writes one).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		head := "  --" + f.Name
		if arg := flagArgs[f.Name]; arg != "" {
			head += " " + arg
		}
		fmt.Fprintf(w, "%s\n      %s\n", head, f.Usage)
	})
}

// oneDash is a flag name as the flag package's errors write it: -name.
var oneDash = regexp.MustCompile(`(^|[ :])-([A-Za-z][A-Za-z0-9-]*)`)

// flagError is a parse error of fs, with flags written --name, and for an
// unknown flag the one it may be a typo of.
func flagError(err error, fs *flag.FlagSet) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		near, best := "", 3 // within two edits, the nearest
		fs.VisitAll(func(f *flag.Flag) {
			if d := suggest.Distance(name, f.Name); d < best {
				near, best = f.Name, d
			}
		})
		if near != "" {
			return fmt.Errorf("--%s is not a flag: did you mean --%s? (see --help)", name, near)
		}
		return fmt.Errorf("--%s is not a flag (see --help)", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value: --%s %s (see --help)", name, name, cmp.Or(flagArgs[name], "VALUE"))
	}
	return errors.New(oneDash.ReplaceAllString(msg, "$1--$2"))
}

// redactURL is an address without the password it may hold.
func redactURL(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return "(not a URL)" // the Vault client refuses it before any output
	}
	return u.Redacted()
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
