// Command vaultcli is a test tool, not a product: the docs e2e test's stand-in `vault` CLI.
//
// swarmvault's "docs that run" e2e test puts it on PATH as `vault`, because
// HashiCorp's CLI cannot be built where that test runs.
//
// It implements exactly the subset of the real CLI that the docs use, with the
// real CLI's syntax (Go flag parsing per subcommand, flags before positional
// arguments, -flag and --flag alike), its request bodies and its output, over
// Vault's HTTP API through github.com/hashicorp/vault/api. The behaviour is
// taken from hashicorp/vault's command/ package (v1.21): write.go, read.go,
// delete.go, policy_write.go, policy_delete.go, token_create.go,
// token_revoke.go, token_lookup.go, auth_enable.go, auth_disable.go,
// secrets_enable.go, secrets_disable.go, kv_put.go, kv_get.go,
// kv_metadata_delete.go, kv_helpers.go, unwrap.go, format.go,
// base_helpers.go (RawField, PrintRawField, PrintRaw), base.go, base_flags.go
// and main.go; K=V parsing follows hashicorp/go-secure-stdlib kv-builder.
//
// Implemented:
//
//	vault policy write NAME FILE|-
//	vault policy delete NAME
//	vault write [-f|-force] [-field=F] [-format=table|json] PATH [K=V|K=@file|K=-|-|@file ...]
//	vault read [-field=F] [-format=table|json|raw] PATH [K=V ...]
//	vault delete [-field=F] [-format=table|json] PATH [K=V ...]
//	vault token create [-policy=P ...] [-period=D] [-ttl=D] [-explicit-max-ttl=D] [-orphan]
//	                   [-role=R] [-display-name=N] [-renewable=BOOL] [-no-default-policy]
//	                   [-metadata=K=V ...] [-type=service|batch] [-use-limit=N] [-field=F] [-format=F]
//	vault token revoke [-accessor] [-self] [-mode=orphan|path] [TOKEN|ACCESSOR]
//	vault token lookup [-accessor] [-format=F] [TOKEN|ACCESSOR]
//	vault auth enable [-path=P] [-description=S] TYPE
//	vault auth disable PATH
//	vault secrets enable [-path=P] [-version=N] [-description=S] TYPE
//	vault secrets disable PATH
//	vault secrets tune [-default-lease-ttl=D] [-max-lease-ttl=D] [-description=S] [-version=N] PATH
//	vault kv put [-mount=M] [-cas=N] [-field=F] [-format=F] PATH K=V ...
//	vault kv get [-mount=M] [-version=N] [-field=F] [-format=F] PATH
//	vault kv metadata delete [-mount=M] PATH
//	vault unwrap [-field=F] [-format=F] [TOKEN]
//
// Every command also takes the real CLI's -address, -ca-cert, -namespace (-ns)
// and -wrap-ttl, and reads VAULT_ADDR, VAULT_TOKEN (else ~/.vault-token),
// VAULT_CACERT, VAULT_NAMESPACE, VAULT_WRAP_TTL, VAULT_FORMAT and the rest of
// api.Config.ReadEnvironment as the real CLI does.
//
// Anything else (another command, a flag not listed, -format=yaml, a flag after
// the positional arguments) exits 2 with "vault (the docs test's stand-in): …
// is not implemented" on stderr, so a doc cannot silently rely on something
// this stand-in does not do. Exit codes are the real CLI's otherwise: 1 for
// usage errors, 2 for errors from Vault.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/api"
)

const notImplementedFormat = "vault (the docs test's stand-in): %s is not implemented: " +
	"implement it in e2e/vaultcli or keep the docs to what it implements"

// exitNotImplemented is the exit code for anything this stand-in does not do.
const exitNotImplemented = 2

// maxLineLength is the real CLI's wrapping width for warnings.
const maxLineLength = 78

type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// noColor mirrors fatih/color's NoColor, which the real CLI's PrintRaw
	// consults: true when stdout is not a terminal (or NO_COLOR is set, or
	// TERM=dumb), and then -field output has no trailing newline.
	noColor bool
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, noColor: stdoutNoColor()}
	os.Exit(c.run(os.Args[1:]))
}

// stdoutNoColor approximates fatih/color's NoColor: NO_COLOR set, TERM=dumb,
// or stdout not a terminal (a character device, here; no isatty dependency).
func stdoutNoColor() bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return true
	}
	fi, err := os.Stdout.Stat()
	if err != nil {
		return true
	}
	return fi.Mode()&os.ModeCharDevice == 0
}

type commandFunc func(c *cli, name string, args []string) int

var commands = map[string]commandFunc{
	"policy write":       (*cli).policyWrite,
	"policy delete":      (*cli).policyDelete,
	"write":              (*cli).write,
	"read":               (*cli).read,
	"delete":             (*cli).delete,
	"token create":       (*cli).tokenCreate,
	"token revoke":       (*cli).tokenRevoke,
	"token lookup":       (*cli).tokenLookup,
	"auth enable":        (*cli).authEnable,
	"auth disable":       (*cli).authDisable,
	"secrets enable":     (*cli).secretsEnable,
	"secrets disable":    (*cli).secretsDisable,
	"secrets tune":       (*cli).secretsTune,
	"kv put":             (*cli).kvPut,
	"kv get":             (*cli).kvGet,
	"kv metadata delete": (*cli).kvMetadataDelete,
	"unwrap":             (*cli).unwrap,
}

// groups are the real CLI's parent commands (vault policy, vault kv, …): their
// next word names the subcommand.
var groups = map[string]bool{"policy": true, "token": true, "auth": true, "secrets": true, "kv": true, "kv metadata": true}

func (c *cli) run(args []string) int {
	name := ""
	n := 0
	for n < len(args) {
		next := strings.TrimSpace(name + " " + args[n])
		n++
		name = next
		if !groups[name] {
			break
		}
	}
	if run, ok := commands[name]; ok {
		return run(c, "vault "+name, args[n:])
	}
	what := fmt.Sprintf("%q", strings.TrimSpace("vault "+name))
	if name == "" {
		what = "vault with no command"
	}
	return c.notImplemented(what)
}

func (c *cli) notImplemented(what string) int {
	return c.failf(exitNotImplemented, notImplementedFormat, what)
}

// output, errorf and warn are the real CLI's ui.Output/Info (stdout) and
// ui.Error/Warn (stderr): each message gets a newline.
func (c *cli) output(s string) { fmt.Fprintln(c.stdout, s) }

func (c *cli) errorf(format string, a ...any) { fmt.Fprintf(c.stderr, format+"\n", a...) }

func (c *cli) warn(s string) { fmt.Fprintln(c.stderr, s) }

// failf prints an error as errorf does and returns code, for a command's
// many "print the error and exit" returns: 1 for a usage error, 2 for an
// error from Vault (or from reading a local file), as in the real CLI.
func (c *cli) failf(code int, format string, a ...any) int {
	c.errorf(format, a...)
	return code
}

// printRaw is the real CLI's PrintRaw: no trailing newline unless stdout is a
// terminal.
func (c *cli) printRaw(s string) int {
	if c.noColor {
		fmt.Fprint(c.stdout, s)
	} else {
		fmt.Fprintln(c.stdout, s)
	}
	return 0
}

// ---------------------------------------------------------------------------
// Flags, shared as the real CLI's FlagSetHTTP / FlagSetOutputField /
// FlagSetOutputFormat.

const (
	withField = 1 << iota
	withFormat
	withRawFormat // -format=raw allowed (vault read only)
)

type flags struct {
	c    *cli
	name string
	fs   *flag.FlagSet
	bits int

	address   string
	caCert    string
	namespace optString
	ns        optString
	wrapTTL   durationValue

	field  string
	format string
}

func (c *cli) newFlags(name string, bits int) *flags {
	f := &flags{c: c, name: name, bits: bits, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.address, "address", "", "")
	f.fs.StringVar(&f.caCert, "ca-cert", "", "")
	f.fs.Var(&f.namespace, "namespace", "")
	f.fs.Var(&f.ns, "ns", "")
	f.wrapTTL.d = new(time.Duration)
	f.fs.Var(&f.wrapTTL, "wrap-ttl", "")
	if bits&withField != 0 {
		f.fs.StringVar(&f.field, "field", "", "")
	}
	if bits&withFormat != 0 {
		def := os.Getenv("VAULT_FORMAT")
		if def == "" {
			def = "table"
		}
		f.fs.StringVar(&f.format, "format", def, "")
	} else {
		f.format = "table"
	}
	return f
}

func (f *flags) boolVar(p *bool, def bool, names ...string) {
	for _, n := range names {
		f.fs.BoolVar(p, n, def, "")
	}
}

func (f *flags) durationVar(p *time.Duration, name string) {
	f.fs.Var(&durationValue{d: p}, name, "")
}

// parse parses args and then checks the positional arguments with check; it
// returns them, or an exit code (>= 0) when the command must stop.
func (f *flags) parse(args []string, check argCheck) ([]string, int) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, f.c.notImplemented(fmt.Sprintf("help (-h, -help) of %q", f.name))
		}
		if undefined, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
			return nil, f.c.notImplemented(fmt.Sprintf("the flag %s of %q", undefined, f.name))
		}
		return nil, f.c.failf(1, "%s", err.Error())
	}
	pos := f.fs.Args()
	// The real CLI stops parsing flags at the first positional argument and
	// only warns about later ones ("Command flags must be provided before
	// positional arguments"), then takes them as data. That is never what a
	// doc means, so the stand-in refuses them.
	terminated := len(args) > len(pos) && args[len(args)-len(pos)-1] == "--"
	if !terminated {
		for _, a := range pos {
			if strings.HasPrefix(a, "-") && a != "-" {
				return nil, f.c.notImplemented(fmt.Sprintf("a flag after the positional arguments (%s) of %q "+
					"(the real CLI would not parse it as a flag)", a, f.name))
			}
		}
	}
	f.format = strings.ToLower(f.format)
	switch f.format {
	case "table", "json":
	case "raw":
		if f.bits&withRawFormat == 0 {
			return nil, f.c.failf(1, "This command does not support the -format=raw option.")
		}
	case "yaml", "yml", "pretty":
		return nil, f.c.notImplemented(fmt.Sprintf("-format=%s of %q", f.format, f.name))
	default:
		return nil, f.c.failf(1, "Invalid output format: %s", f.format)
	}
	if err := check(pos); err != nil {
		return nil, f.c.failf(1, "%s", err)
	}
	return pos, -1
}

// start is the prologue most commands share: parse (flags, then check on
// the positional arguments), then newClient. It returns the client and the
// positional arguments, or an exit code (>= 0) when the command must stop.
func (f *flags) start(args []string, check argCheck) (*api.Client, []string, int) {
	args, code := f.parse(args, check)
	if code >= 0 {
		return nil, nil, code
	}
	client, code := f.newClient()
	if code >= 0 {
		return nil, nil, code
	}
	return client, args, -1
}

// newClient is client for a command: it returns the client, or prints the
// error and returns exit code 2.
func (f *flags) newClient() (*api.Client, int) {
	client, err := f.client()
	if err != nil {
		return nil, f.c.failf(2, "%s", err)
	}
	return client, -1
}

// client builds the API client as the real CLI's BaseCommand.Client does.
func (f *flags) client() (*api.Client, error) {
	config := api.DefaultConfig()
	if err := config.ReadEnvironment(); err != nil {
		return nil, fmt.Errorf("failed to read environment: %w", err)
	}
	if f.address != "" {
		config.Address = f.address
	}
	if f.caCert != "" {
		skip, _ := strconv.ParseBool(os.Getenv(api.EnvVaultSkipVerify))
		t := &api.TLSConfig{
			CACert:        f.caCert,
			CAPath:        os.Getenv(api.EnvVaultCAPath),
			ClientCert:    os.Getenv(api.EnvVaultClientCert),
			ClientKey:     os.Getenv(api.EnvVaultClientKey),
			TLSServerName: os.Getenv(api.EnvVaultTLSServerName),
			Insecure:      skip,
		}
		if err := config.ConfigureTLS(t); err != nil {
			return nil, fmt.Errorf("failed to setup TLS config: %w", err)
		}
	}
	client, err := api.NewClient(config)
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	if os.Getenv(api.EnvVaultMaxRetries) == "" {
		client.SetMaxRetries(0)
	}
	client.SetWrappingLookupFunc(f.wrappingLookup)

	if client.Token() == "" {
		token, err := tokenFromHelper()
		if err != nil {
			return nil, fmt.Errorf("failed to get token from token helper: %w", err)
		}
		if token != "" {
			client.SetToken(token)
		}
	}

	namespace, set := os.LookupEnv(api.EnvVaultNamespace)
	if f.namespace.set {
		namespace, set = f.namespace.v, true
	}
	if f.ns.set {
		namespace, set = f.ns.v, true
	}
	if set {
		client.SetNamespace(canonicalizeNamespace(namespace))
	}
	return client, nil
}

// wrappingLookup is BaseCommand.DefaultWrappingLookupFunc.
func (f *flags) wrappingLookup(operation, path string) string {
	if *f.wrapTTL.d != 0 {
		return f.wrapTTL.d.String()
	}
	return api.DefaultWrappingLookupFunc(operation, path)
}

// tokenFromHelper is the real CLI's default (internal) token helper:
// ~/.vault-token, trimmed; no file means no token.
func tokenFromHelper() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil
	}
	b, err := os.ReadFile(filepath.Join(home, ".vault-token"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// canonicalizeNamespace is vault's helper/namespace.Canonicalize.
func canonicalizeNamespace(ns string) string {
	if ns == "" {
		return ""
	}
	ns = strings.TrimPrefix(ns, "/")
	if !strings.HasSuffix(ns, "/") {
		ns += "/"
	}
	return ns
}

type optString struct {
	v   string
	set bool
}

func (o *optString) String() string { return o.v }

func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }

// durationValue is the real CLI's DurationVar: parseutil.ParseDurationSecond
// ("24h", "5m", "300"), "system" meaning -1.
type durationValue struct{ d *time.Duration }

func (d *durationValue) String() string {
	if d.d == nil {
		return "0s"
	}
	return d.d.String()
}

func (d *durationValue) Set(s string) error {
	if s == "system" {
		s = "-1"
	}
	v, err := parseutil.ParseDurationSecond(s)
	if err != nil {
		return err
	}
	*d.d = v
	return nil
}

type stringSlice struct{ p *[]string }

func (s stringSlice) String() string {
	if s.p == nil {
		return ""
	}
	return strings.Join(*s.p, ",")
}

func (s stringSlice) Set(v string) error { *s.p = append(*s.p, strings.TrimSpace(v)); return nil }

type stringMap struct{ p *map[string]string }

func (s stringMap) String() string { return "" }

func (s stringMap) Set(v string) error {
	idx := strings.Index(v, "=")
	if idx == -1 {
		return fmt.Errorf("missing = in KV pair: %q", v)
	}
	if *s.p == nil {
		*s.p = make(map[string]string)
	}
	(*s.p)[v[:idx]] = v[idx+1:]
	return nil
}

// ---------------------------------------------------------------------------
// Positional argument checks (each command's "Not enough arguments" and
// "Too many arguments"; the messages are the real CLI's, capitals and all).

// argCheck checks a command's positional arguments once its flags are
// parsed (a closure may look at the flags too); an error is a usage error,
// printed as is, and the command exits 1.
type argCheck func(args []string) error

// exactArgs is the check of a command that takes exactly n arguments.
func exactArgs(n int) argCheck {
	return func(args []string) error {
		switch {
		case len(args) < n:
			return fmt.Errorf("Not enough arguments (expected %d, got %d)", n, len(args))
		case len(args) > n:
			return fmt.Errorf("Too many arguments (expected %d, got %d)", n, len(args))
		}
		return nil
	}
}

// atLeastOne is the check of a command that needs one argument or more;
// expected is how that command's message puts it ("1", "at least 1", ">1").
func atLeastOne(expected string) argCheck {
	return func(args []string) error {
		if len(args) < 1 {
			return fmt.Errorf("Not enough arguments (expected %s, got %d)", expected, len(args))
		}
		return nil
	}
}

// atMostOne is the check of a command with one optional argument.
func atMostOne(args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("Too many arguments (expected 0-1, got %d)", len(args))
	}
	return nil
}

// firstArg is the first argument, trimmed, or "" when there is none (the
// optional TOKEN of token revoke, token lookup and unwrap).
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return strings.TrimSpace(args[0])
}

// ---------------------------------------------------------------------------
// Path helpers (command/util.go, command/kv_helpers.go).

func ensureTrailingSlash(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

func sanitizePath(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimLeft(s, "/")
	s = strings.TrimSpace(s)
	return strings.TrimRight(s, "/")
}

// ---------------------------------------------------------------------------
// K=V data (go-secure-stdlib kv-builder, as the real CLI's parseArgsData).

func (c *cli) parseArgsData(args []string) (map[string]any, error) {
	var result map[string]any
	stdinUsed := false
	readJSON := func(r io.Reader) error {
		dec := json.NewDecoder(r)
		dec.UseNumber()
		return dec.Decode(&result)
	}
	for _, raw := range args {
		err := func() error {
			if result == nil {
				result = make(map[string]any)
			}
			if raw == "" {
				return nil
			}
			parts := strings.SplitN(raw, "=", 2)
			if len(parts) == 1 {
				if raw == "-" {
					if stdinUsed {
						return errors.New("stdin already consumed")
					}
					stdinUsed = true
					return readJSON(c.stdin)
				}
				if raw[0] == '@' {
					fh, err := os.Open(raw[1:])
					if err != nil {
						return err
					}
					defer fh.Close()
					return readJSON(fh)
				}
				return errors.New("format must be key=value")
			}
			key, value := parts[0], parts[1]
			switch {
			case strings.HasPrefix(value, "@"):
				b, err := os.ReadFile(value[1:])
				if err != nil {
					return fmt.Errorf("error reading file: %w", err)
				}
				value = string(b)
			case strings.HasPrefix(value, `\@`):
				value = value[1:]
			case value == "-":
				if stdinUsed {
					return errors.New("stdin already consumed")
				}
				stdinUsed = true
				b, err := io.ReadAll(c.stdin)
				if err != nil {
					return err
				}
				value = string(b)
			}
			// Repeated keys become a list.
			if existing, ok := result[key]; ok {
				list, ok := existing.([]any)
				if !ok {
					list = []any{existing}
				}
				result[key] = append(list, value)
				return nil
			}
			result[key] = value
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("invalid key/value pair %q: %w", raw, err)
		}
	}
	return result, nil
}

// parseArgsDataStringLists is the real CLI's helper of the same name (query
// data for read and delete).
func (c *cli) parseArgsDataStringLists(args []string) (map[string][]string, error) {
	raw, err := c.parseArgsData(args)
	if err != nil || raw == nil {
		return nil, err
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				out[k] = append(out[k], fmt.Sprint(e))
			}
		default:
			out[k] = []string{fmt.Sprint(v)}
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Output (command/format.go, command/base_helpers.go).

// rawField is the real CLI's RawField: auth fields first, else wrap_info
// fields, else data.
func rawField(secret *api.Secret, field string) any {
	switch {
	case secret.Auth != nil:
		switch field {
		case "token":
			return secret.Auth.ClientToken
		case "token_accessor":
			return secret.Auth.Accessor
		case "token_duration":
			return secret.Auth.LeaseDuration
		case "token_renewable":
			return secret.Auth.Renewable
		case "token_policies":
			return secret.Auth.TokenPolicies
		case "identity_policies":
			return secret.Auth.IdentityPolicies
		case "policies":
			return secret.Auth.Policies
		}
	case secret.WrapInfo != nil:
		switch field {
		case "wrapping_token":
			return secret.WrapInfo.Token
		case "wrapping_accessor":
			return secret.WrapInfo.Accessor
		case "wrapping_token_ttl":
			return secret.WrapInfo.TTL
		case "wrapping_token_creation_time":
			return secret.WrapInfo.CreationTime.Format(time.RFC3339Nano)
		case "wrapping_token_creation_path":
			return secret.WrapInfo.CreationPath
		case "wrapped_accessor":
			return secret.WrapInfo.WrappedAccessor
		}
	default:
		switch field {
		case "lease_duration", "refresh_interval":
			return secret.LeaseDuration
		case "lease_id":
			return secret.LeaseID
		case "request_id":
			return secret.RequestID
		case "renewable":
			return secret.Renewable
		case "data":
			if v, ok := secret.Data["data"]; ok {
				return v
			}
			return secret.Data
		}
	}
	if v, ok := secret.Data[field]; ok {
		return v
	}
	return nil
}

// printRawField is the real CLI's PrintRawField.
func (f *flags) printRawField(data any, field string) int {
	var val any
	switch data := data.(type) {
	case *api.Secret:
		val = rawField(data, field)
	case map[string]any:
		val = data[field]
	}
	if val == nil {
		return f.c.failf(1, "Field %q not present in secret", field)
	}
	if f.format == "table" || f.format == "raw" {
		return f.c.printRaw(fmt.Sprintf("%v", val))
	}
	b, err := json.MarshalIndent(val, "", "  ")
	if err != nil {
		return f.c.failf(1, "Error formatting output: %s", err)
	}
	return f.c.printRaw(string(b))
}

// outputSecret is the real CLI's OutputSecret.
func (f *flags) outputSecret(secret *api.Secret) int {
	if f.format == "json" {
		return f.outputJSON(secret)
	}
	f.tableSecret(secret)
	return 0
}

// outputFieldOrSecret prints the -field of secret when one is given, else
// the whole secret (the usual end of a command that gets a secret back).
func (f *flags) outputFieldOrSecret(secret *api.Secret) int {
	if f.field != "" {
		return f.printRawField(secret, f.field)
	}
	return f.outputSecret(secret)
}

// failWithSecret is the real CLI's end of a failed write, read or delete:
// the error, then whatever secret Vault sent with it, and exit code 2.
func (f *flags) failWithSecret(secret *api.Secret, format string, a ...any) int {
	f.c.errorf(format, a...)
	if secret != nil {
		f.outputSecret(secret)
	}
	return 2
}

// outputData is the real CLI's OutputData for a map.
func (f *flags) outputData(data map[string]any) int {
	if f.format == "json" {
		return f.outputJSON(data)
	}
	if len(data) == 0 {
		return 0
	}
	keys := sortedKeys(data)
	rows := [][]string{{"Key", "Value"}}
	for _, k := range keys {
		rows = append(rows, []string{k, valueString(k, data[k])})
	}
	f.c.output(tableOutput(rows))
	return 0
}

func (f *flags) outputJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return f.c.failf(1, "Could not parse output: %s", err)
	}
	f.c.output(string(b))
	return 0
}

func (f *flags) printWarnings(secret *api.Secret) {
	if secret == nil || len(secret.Warnings) == 0 {
		return
	}
	f.c.warn("WARNING! The following warnings were returned from Vault:\n")
	for _, w := range secret.Warnings {
		f.c.warn(wrapAtLengthWithPadding("* "+w, 2))
		f.c.warn("")
	}
}

// tableSecret is TableFormatter.OutputSecret (MFA requirements left out).
func (f *flags) tableSecret(secret *api.Secret) {
	if secret == nil {
		return
	}
	f.printWarnings(secret)
	var rows [][]string
	add := func(k string, v any) { rows = append(rows, []string{k, fmt.Sprintf("%v", v)}) }
	if secret.LeaseDuration > 0 {
		if secret.LeaseID != "" {
			add("lease_id", secret.LeaseID)
			add("lease_duration", humanDurationInt(secret.LeaseDuration))
			add("lease_renewable", secret.Renewable)
		} else {
			add("refresh_interval", humanDurationInt(secret.LeaseDuration))
		}
	}
	if a := secret.Auth; a != nil {
		add("token", a.ClientToken)
		add("token_accessor", a.Accessor)
		if a.LeaseDuration == 0 {
			add("token_duration", "∞")
		} else {
			add("token_duration", humanDurationInt(a.LeaseDuration))
		}
		add("token_renewable", a.Renewable)
		add("token_policies", fmt.Sprintf("%q", a.TokenPolicies))
		add("identity_policies", fmt.Sprintf("%q", a.IdentityPolicies))
		add("policies", fmt.Sprintf("%q", a.Policies))
		metaKeys := make([]string, 0, len(a.Metadata))
		for k := range a.Metadata {
			metaKeys = append(metaKeys, k)
		}
		sort.Strings(metaKeys)
		for _, k := range metaKeys {
			add("token_meta_"+k, a.Metadata[k])
		}
	}
	if w := secret.WrapInfo; w != nil {
		add("wrapping_token:", w.Token)
		add("wrapping_accessor:", w.Accessor)
		add("wrapping_token_ttl:", humanDurationInt(w.TTL))
		add("wrapping_token_creation_time:", w.CreationTime.String())
		add("wrapping_token_creation_path:", w.CreationPath)
		if w.WrappedAccessor != "" {
			add("wrapped_accessor:", w.WrappedAccessor)
		}
	}
	for _, k := range sortedKeys(secret.Data) {
		add(k, valueString(k, secret.Data[k]))
	}
	if len(rows) == 0 {
		return
	}
	f.c.output(tableOutput(append([][]string{{"Key", "Value"}}, rows...)))
}

// outputList is the real CLI's OutputList for a secret with data.keys.
func (f *flags) outputList(secret *api.Secret, keys []any) int {
	if f.format == "json" {
		return f.outputJSON(keys)
	}
	f.printWarnings(secret)
	if len(keys) == 0 {
		return 0
	}
	list := make([]string, len(keys))
	for i, k := range keys {
		s, ok := k.(string)
		if !ok {
			return f.c.failf(1, "Could not parse output: %v is not a string", k)
		}
		list[i] = s
	}
	sort.Strings(list)
	rows := [][]string{{"Keys"}}
	for _, k := range list {
		rows = append(rows, []string{k})
	}
	f.c.output(tableOutput(rows))
	return 0
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func valueString(k string, v any) string {
	if looksLikeDuration(k) {
		v = humanDurationInt(v)
	}
	return fmt.Sprintf("%v", v)
}

func looksLikeDuration(k string) bool {
	return k == "period" || strings.HasSuffix(k, "_period") ||
		k == "ttl" || strings.HasSuffix(k, "_ttl") ||
		k == "duration" || strings.HasSuffix(k, "_duration") ||
		k == "lease_max" || k == "ttl_max"
}

func humanDurationInt(i any) any {
	switch i := i.(type) {
	case int:
		return humanDuration(time.Duration(i) * time.Second)
	case int64:
		return humanDuration(time.Duration(i) * time.Second)
	case json.Number:
		if n, err := i.Int64(); err == nil {
			return humanDuration(time.Duration(n) * time.Second)
		}
	}
	return i
}

func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if idx := strings.Index(s, "h0m"); idx > 0 {
		s = s[:idx+1] + s[idx+3:]
	}
	return s
}

// tableOutput is the real CLI's tableOutput over columnize: a header row, a
// row of dashes under it, columns padded and glued by four spaces, empty
// cells shown as n/a.
func tableOutput(rows [][]string) string {
	if len(rows) == 0 {
		return ""
	}
	under := make([]string, len(rows[0]))
	for i, h := range rows[0] {
		under[i] = strings.Repeat("-", len(strings.TrimSpace(h)))
	}
	rows = append([][]string{rows[0], under}, rows[1:]...)
	var widths []int
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(row))
		for i, cell := range row {
			cell = strings.TrimSpace(cell)
			if cell == "" {
				cell = "n/a"
			}
			cells[r][i] = cell
			n := utf8.RuneCountInString(cell)
			if len(widths) <= i {
				widths = append(widths, n)
			} else if widths[i] < n {
				widths[i] = n
			}
		}
	}
	var b strings.Builder
	for _, row := range cells {
		for i, cell := range row {
			b.WriteString(cell)
			if i == len(row)-1 {
				b.WriteString("\n")
			} else {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell)))
				b.WriteString("    ")
			}
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// wrapAtLengthWithPadding wraps greedily at word boundaries (the real CLI
// uses kr/text, which balances lines differently).
func wrapAtLengthWithPadding(s string, pad int) string {
	width := maxLineLength - pad
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	lines = append(lines, line)
	for i := range lines {
		lines[i] = strings.Repeat(" ", pad) + lines[i]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// Commands.

func (c *cli) policyWrite(name string, args []string) int {
	f := c.newFlags(name, 0)
	client, args, code := f.start(args, exactArgs(2))
	if code >= 0 {
		return code
	}
	policyName := args[0]
	formattedName := strings.TrimSpace(strings.ToLower(policyName))
	file := strings.TrimSpace(args[1])
	var reader io.Reader
	if file == "-" {
		reader = c.stdin
	} else {
		fh, err := os.Open(file)
		if err != nil {
			return c.failf(2, "Error opening policy file: %s", err)
		}
		defer fh.Close()
		reader = fh
	}
	rules, err := io.ReadAll(reader)
	if err != nil {
		return c.failf(2, "Error reading policy: %s", err)
	}
	if err := client.Sys().PutPolicy(formattedName, string(rules)); err != nil {
		return c.failf(2, "Error uploading policy: %s", err)
	}
	if policyName != formattedName {
		c.warn(fmt.Sprintf("Policy name was converted from \"%s\" to \"%s\"", policyName, formattedName))
	}
	c.output("Success! Uploaded policy: " + formattedName)
	return 0
}

func (c *cli) policyDelete(name string, args []string) int {
	f := c.newFlags(name, 0)
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return code
	}
	policy := strings.TrimSpace(strings.ToLower(args[0]))
	if err := client.Sys().DeletePolicy(policy); err != nil {
		return c.failf(2, "Error deleting %s: %s", policy, err)
	}
	c.output("Success! Deleted policy: " + policy)
	return 0
}

func (c *cli) write(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	var force bool
	f.boolVar(&force, false, "force", "f")
	args, code := f.parse(args, func(args []string) error {
		if len(args) == 1 && !force {
			return errors.New("Must supply data or use -force")
		}
		return atLeastOne("1")(args)
	})
	if code >= 0 {
		return code
	}
	// As the real CLI, the data is read (stdin, @files) before the client
	// is made.
	p := sanitizePath(args[0])
	data, err := c.parseArgsData(args[1:])
	if err != nil {
		return c.failf(1, "Failed to parse K=V data: %s", err)
	}
	client, code := f.newClient()
	if code >= 0 {
		return code
	}
	secret, err := client.Logical().Write(p, data)
	return f.handleWriteSecretOutput(p, secret, err)
}

// handleWriteSecretOutput is the real CLI's function of the same name (the
// interactive MFA part left out).
func (f *flags) handleWriteSecretOutput(p string, secret *api.Secret, err error) int {
	if err != nil {
		return f.failWithSecret(secret, "Error writing data to %s: %s", p, err)
	}
	if secret == nil {
		if f.field == "" && f.format == "table" {
			f.c.output("Success! Data written to: " + p)
		}
		return 0
	}
	return f.outputFieldOrSecret(secret)
}

func (c *cli) read(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat|withRawFormat)
	client, args, code := f.start(args, atLeastOne("1"))
	if code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), client.ClientTimeout())
	defer cancel()
	p := sanitizePath(args[0])
	data, err := c.parseArgsDataStringLists(args[1:])
	if err != nil {
		return c.failf(1, "Failed to parse K=V data: %s", err)
	}
	if f.format == "raw" {
		resp, err := client.Logical().ReadRawWithDataWithContext(ctx, p, data)
		if err != nil {
			return c.failf(2, "Error reading: %s: %s", p, err)
		}
		if resp == nil || resp.Body == nil {
			return c.failf(2, "No value found at %s", p)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return c.failf(2, "Error reading: %s: %s", p, err)
		}
		c.output(string(b))
		return 0
	}
	secret, err := client.Logical().ReadWithDataWithContext(ctx, p, data)
	if err != nil {
		return c.failf(2, "Error reading %s: %s", p, err)
	}
	if secret == nil {
		return c.failf(2, "No value found at %s", p)
	}
	return f.outputFieldOrSecret(secret)
}

func (c *cli) delete(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	client, args, code := f.start(args, atLeastOne("at least 1"))
	if code >= 0 {
		return code
	}
	p := sanitizePath(args[0])
	data, err := c.parseArgsDataStringLists(args[1:])
	if err != nil {
		return c.failf(1, "Failed to parse string list data: %s", err)
	}
	secret, err := client.Logical().DeleteWithData(p, data)
	if err != nil {
		return f.failWithSecret(secret, "Error deleting %s: %s", p, err)
	}
	if secret == nil {
		if f.format == "table" {
			c.output("Success! Data deleted (if it existed) at: " + p)
		}
		return 0
	}
	return f.outputFieldOrSecret(secret)
}

func (c *cli) tokenCreate(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	var (
		displayName, role, tokenType string
		ttl, explicitMaxTTL, period  time.Duration
		renewable, orphan, noDefault bool
		useLimit                     int
		policies                     []string
		metadata                     map[string]string
	)
	f.fs.StringVar(&displayName, "display-name", "", "")
	f.durationVar(&ttl, "ttl")
	f.durationVar(&explicitMaxTTL, "explicit-max-ttl")
	f.durationVar(&period, "period")
	f.boolVar(&renewable, true, "renewable")
	f.boolVar(&orphan, false, "orphan")
	f.boolVar(&noDefault, false, "no-default-policy")
	f.fs.IntVar(&useLimit, "use-limit", 0, "")
	f.fs.StringVar(&role, "role", "", "")
	f.fs.StringVar(&tokenType, "type", "service", "")
	f.fs.Var(stringMap{&metadata}, "metadata", "")
	f.fs.Var(stringSlice{&policies}, "policy", "")
	client, _, code := f.start(args, exactArgs(0))
	if code >= 0 {
		return code
	}
	if tokenType == "batch" {
		renewable = false
	}
	// As the real CLI: -orphan is no_parent on auth/token/create (or the
	// role's endpoint), not auth/token/create-orphan; the durations are sent
	// as Go durations ("24h0m0s", "0s" when unset).
	tcr := &api.TokenCreateRequest{
		Policies:        policies,
		Metadata:        metadata,
		TTL:             ttl.String(),
		NoParent:        orphan,
		NoDefaultPolicy: noDefault,
		DisplayName:     displayName,
		NumUses:         useLimit,
		Renewable:       &renewable,
		ExplicitMaxTTL:  explicitMaxTTL.String(),
		Period:          period.String(),
		Type:            tokenType,
	}
	var secret *api.Secret
	var err error
	if role != "" {
		secret, err = client.Auth().Token().CreateWithRole(tcr, role)
	} else {
		secret, err = client.Auth().Token().Create(tcr)
	}
	if err != nil {
		return c.failf(2, "Error creating token: %s", err)
	}
	return f.outputFieldOrSecret(secret)
}

func (c *cli) tokenRevoke(name string, args []string) int {
	f := c.newFlags(name, 0)
	var accessor, self bool
	var mode string
	f.boolVar(&accessor, false, "accessor")
	f.boolVar(&self, false, "self")
	f.fs.StringVar(&mode, "mode", "", "")
	client, args, code := f.start(args, func(args []string) error {
		switch mode {
		case "", "orphan", "path":
		default:
			return fmt.Errorf("Invalid mode: %s", mode)
		}
		switch {
		case self && len(args) > 0:
			return fmt.Errorf("Too many arguments with -self (expected 0, got %d)", len(args))
		case !self && len(args) > 1:
			return fmt.Errorf("Too many arguments (expected 1 or -self, got %d)", len(args))
		case !self && len(args) < 1:
			return fmt.Errorf("Not enough arguments (expected 1 or -self, got %d)", len(args))
		case self && accessor:
			return errors.New("Cannot use -self with -accessor!")
		case self && mode != "":
			return errors.New("Cannot use -self with -mode!")
		case accessor && mode == "orphan":
			return errors.New("Cannot use -accessor with -mode=orphan!")
		case accessor && mode == "path":
			return errors.New("Cannot use -accessor with -mode=path!")
		}
		return nil
	})
	if code >= 0 {
		return code
	}
	var revoke func(string) error
	switch {
	case self:
		revoke = client.Auth().Token().RevokeSelf
	case accessor:
		revoke = client.Auth().Token().RevokeAccessor
	case mode == "orphan":
		revoke = client.Auth().Token().RevokeOrphan
	case mode == "path":
		revoke = client.Sys().RevokePrefix
	default:
		revoke = client.Auth().Token().RevokeTree
	}
	if err := revoke(firstArg(args)); err != nil {
		return c.failf(2, "Error revoking token: %s", err)
	}
	c.output("Success! Revoked token (if it existed)")
	return 0
}

func (c *cli) tokenLookup(name string, args []string) int {
	f := c.newFlags(name, withFormat)
	var accessor bool
	f.boolVar(&accessor, false, "accessor")
	client, args, code := f.start(args, func(args []string) error {
		switch {
		case accessor && len(args) < 1:
			return fmt.Errorf("Not enough arguments with -accessor (expected 1, got %d)", len(args))
		case accessor && len(args) > 1:
			return fmt.Errorf("Too many arguments with -accessor (expected 1, got %d)", len(args))
		}
		return atMostOne(args)
	})
	if code >= 0 {
		return code
	}
	token := firstArg(args)
	var secret *api.Secret
	var err error
	switch {
	case token == "":
		secret, err = client.Auth().Token().LookupSelf()
	case accessor:
		secret, err = client.Auth().Token().LookupAccessor(token)
	default:
		secret, err = client.Auth().Token().Lookup(token)
	}
	if err != nil {
		return c.failf(2, "Error looking up token: %s", err)
	}
	return f.outputSecret(secret)
}

// unsetTTL is what the real CLI's auth enable and secrets enable send for
// the TTLs they do not take here: a zero time.Duration's String.
const unsetTTL = "0s"

// enableTarget is what auth enable or secrets enable is asked to mount.
type enableTarget struct {
	typ         string // TYPE
	path        string // -path, else TYPE; with a trailing slash
	description string // -description
}

// startEnable is the prologue auth enable and secrets enable share: it adds
// -path and -description to f's flags, starts the command (one argument,
// TYPE) and resolves the target; a plugin is not implemented. It returns
// the client and the target, or an exit code (>= 0) when the command must
// stop.
func (f *flags) startEnable(args []string) (*api.Client, enableTarget, int) {
	var t enableTarget
	var mountPath string
	f.fs.StringVar(&mountPath, "path", "", "")
	f.fs.StringVar(&t.description, "description", "", "")
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return nil, t, code
	}
	t.typ = strings.TrimSpace(args[0])
	if t.typ == "plugin" {
		return nil, t, f.c.notImplemented(fmt.Sprintf("%q of a plugin (-plugin-name)", f.name))
	}
	if mountPath == "" {
		mountPath = t.typ
	}
	t.path = ensureTrailingSlash(mountPath)
	return client, t, -1
}

// versionOption is the mount options of -version (secrets enable and
// secrets tune): none unless a version is given.
func versionOption(version int) map[string]string {
	if version > 0 {
		return map[string]string{"version": strconv.Itoa(version)}
	}
	return nil
}

// disableMount is auth disable and secrets disable: PATH, sanitized and
// with a trailing slash, goes to disable; what names the mount in the
// messages ("auth method", "secrets engine").
func (c *cli) disableMount(name string, args []string, what string, disable func(*api.Sys, string) error) int {
	f := c.newFlags(name, 0)
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return code
	}
	p := ensureTrailingSlash(sanitizePath(args[0]))
	if err := disable(client.Sys(), p); err != nil {
		return c.failf(2, "Error disabling %s at %s: %s", what, p, err)
	}
	c.output(fmt.Sprintf("Success! Disabled the %s (if it existed) at: %s", what, p))
	return 0
}

func (c *cli) authEnable(name string, args []string) int {
	f := c.newFlags(name, 0)
	client, t, code := f.startEnable(args)
	if code >= 0 {
		return code
	}
	opts := &api.EnableAuthOptions{
		Type:        t.typ,
		Description: t.description,
		Config:      api.AuthConfigInput{DefaultLeaseTTL: unsetTTL, MaxLeaseTTL: unsetTTL},
	}
	if err := client.Sys().EnableAuthWithOptions(t.path, opts); err != nil {
		return c.failf(2, "Error enabling %s auth: %s", t.typ, err)
	}
	c.output(fmt.Sprintf("Success! Enabled %s auth method at: %s", t.typ, t.path))
	return 0
}

func (c *cli) authDisable(name string, args []string) int {
	return c.disableMount(name, args, "auth method", (*api.Sys).DisableAuth)
}

func (c *cli) secretsEnable(name string, args []string) int {
	f := c.newFlags(name, 0)
	var version int
	f.fs.IntVar(&version, "version", 0, "")
	client, t, code := f.startEnable(args)
	if code >= 0 {
		return code
	}
	// "kv-v2" goes to Vault as is: the server maps it to kv with version 2.
	input := &api.MountInput{
		Type:        t.typ,
		Description: t.description,
		Config:      api.MountConfigInput{DefaultLeaseTTL: unsetTTL, MaxLeaseTTL: unsetTTL},
		Options:     versionOption(version),
	}
	if err := client.Sys().Mount(t.path, input); err != nil {
		return c.failf(2, "Error enabling: %s", err)
	}
	c.output(fmt.Sprintf("Success! Enabled the %s secrets engine at: %s", t.typ, t.path))
	return 0
}

func (c *cli) secretsDisable(name string, args []string) int {
	return c.disableMount(name, args, "secrets engine", (*api.Sys).Unmount)
}

func (c *cli) secretsTune(name string, args []string) int {
	f := c.newFlags(name, 0)
	var defaultLeaseTTL, maxLeaseTTL time.Duration
	var description optString
	var version int
	f.durationVar(&defaultLeaseTTL, "default-lease-ttl")
	f.durationVar(&maxLeaseTTL, "max-lease-ttl")
	f.fs.Var(&description, "description", "")
	f.fs.IntVar(&version, "version", 0, "")
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return code
	}
	options := versionOption(version)
	mountPath := ensureTrailingSlash(sanitizePath(args[0]))
	// The body the real CLI's Sys().TuneMount (deprecated in the api
	// package) sends: options, both TTLs (ttlToAPI: "" when not given) and
	// force_no_cache always; the description only when given.
	defaultTTL, maxTTL, forceNoCache := ttlToAPI(defaultLeaseTTL), ttlToAPI(maxLeaseTTL), false
	tune := api.TuneMountConfigInput{
		Options:         &options,
		DefaultLeaseTTL: &defaultTTL,
		MaxLeaseTTL:     &maxTTL,
		ForceNoCache:    &forceNoCache,
	}
	if description.set {
		tune.Description = &description.v
	}
	if err := client.Sys().TuneMountAllowNil(mountPath, tune); err != nil {
		return c.failf(2, "Error tuning secrets engine %s: %s", mountPath, err)
	}
	c.output("Success! Tuned the secrets engine at: " + mountPath)
	return 0
}

// ttlToAPI is the real CLI's: "" for 0, "system" for a negative TTL.
func ttlToAPI(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d < 0 {
		return "system"
	}
	return d.String()
}

// kvPreflight is the real CLI's kvPreflightVersionRequest: the mount path and
// KV version of p, from sys/internal/ui/mounts/p (a 404, an old Vault, means
// version 1).
func kvPreflight(client *api.Client, p string) (string, int, error) {
	current := client.CurrentWrappingLookupFunc()
	client.SetWrappingLookupFunc(nil)
	defer client.SetWrappingLookupFunc(current)

	resp, err := client.Logical().ReadRawWithDataWithContext(context.Background(), "sys/internal/ui/mounts/"+p, nil)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode == 404 {
			return "", 1, nil
		}
		return "", 0, err
	}
	secret, err := api.ParseSecret(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if secret == nil {
		return "", 0, errors.New("nil response from pre-flight request")
	}
	mountPath, _ := secret.Data["path"].(string)
	options, _ := secret.Data["options"].(map[string]any)
	if v, _ := options["version"].(string); v == "2" {
		return mountPath, 2, nil
	}
	return mountPath, 1, nil
}

// addPrefixToKVPath is the real CLI's function of the same name.
func addPrefixToKVPath(p, mountPath, apiPrefix string, skipIfExists bool) string {
	if p == mountPath || p == strings.TrimSuffix(mountPath, "/") {
		return path.Join(mountPath, apiPrefix)
	}
	pathSuffix := strings.TrimPrefix(p, mountPath)
	for {
		// If the entire mountPath is included in the path, we are done
		if pathSuffix != p {
			break
		}
		// Trim the parts of the mountPath that are not included in the
		// path, for example, in cases where the mountPath contains
		// namespaces which are not included in the path.
		partialMountPath := strings.SplitN(mountPath, "/", 2)
		if len(partialMountPath) <= 1 || partialMountPath[1] == "" {
			break
		}
		mountPath = strings.TrimSuffix(partialMountPath[1], "/")
		pathSuffix = strings.TrimPrefix(pathSuffix, mountPath)
	}
	if skipIfExists {
		if strings.HasPrefix(pathSuffix, apiPrefix) || strings.HasPrefix(pathSuffix, "/"+apiPrefix) {
			return path.Join(mountPath, pathSuffix)
		}
	}
	return path.Join(mountPath, apiPrefix, pathSuffix)
}

// kvFullPath resolves a kv command's PATH argument and -mount to the API
// path, as kv put, kv get and kv metadata delete do, and tells whether the
// mount is KV v2. On v2 the path goes under the mount's apiPrefix ("data",
// "metadata"); on v1 it is the path itself, under the mount when -mount is
// given. kv put and kv metadata delete sanitize the argument (sanitize); kv
// get only trims a leading slash.
func kvFullPath(client *api.Client, arg, mount string, sanitize bool, apiPrefix string) (fullPath string, v2 bool, err error) {
	partial := strings.TrimPrefix(arg, "/")
	if sanitize {
		partial = sanitizePath(arg)
	}
	lookup := partial
	if mount != "" {
		lookup = sanitizePath(mount)
	}
	mountPath, version, err := kvPreflight(client, lookup)
	if err != nil {
		return "", false, err
	}
	switch {
	case version == 2 && mount != "":
		return addPrefixToKVPath(path.Join(mountPath, partial), mountPath, apiPrefix, false), true, nil
	case version == 2:
		return addPrefixToKVPath(partial, mountPath, apiPrefix, false), true, nil
	case mount != "":
		return path.Join(mountPath, partial), false, nil
	default:
		return partial, false, nil
	}
}

func padEqualSigns(header string, totalLen int) string {
	equalSigns := totalLen - (len(header) + 2)
	if equalSigns <= 0 {
		equalSigns = 4
	}
	if equalSigns%2 != 0 {
		equalSigns++
	}
	return fmt.Sprintf("%s %s %s", strings.Repeat("=", equalSigns/2), header, strings.Repeat("=", equalSigns/2))
}

func getHeaderForMap(header string, data map[string]any) string {
	maxKey := 0
	for k := range data {
		if len(k) > maxKey {
			maxKey = len(k)
		}
	}
	return padEqualSigns(header, maxKey+4+5)
}

func (c *cli) outputPath(p, title string) {
	c.output(padEqualSigns(title, len(p)))
	c.output(p)
	c.output("")
}

func (c *cli) kvPut(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	var mount string
	var cas int
	f.fs.IntVar(&cas, "cas", -1, "")
	f.fs.StringVar(&mount, "mount", "", "")
	client, args, code := f.start(args, func(args []string) error {
		if len(args) == 1 {
			return errors.New("Must supply data")
		}
		return atLeastOne(">1")(args)
	})
	if code >= 0 {
		return code
	}
	data, err := c.parseArgsData(args[1:])
	if err != nil {
		return c.failf(1, "Failed to parse K=V data: %s", err)
	}
	fullPath, v2, err := kvFullPath(client, args[0], mount, true, "data")
	if err != nil {
		return c.failf(2, "%s", err)
	}
	body := data
	if v2 {
		options := map[string]any{}
		if cas > -1 {
			options["cas"] = cas
		}
		body = map[string]any{"data": data, "options": options}
	}
	secret, err := client.Logical().Write(fullPath, body)
	if err != nil {
		return f.failWithSecret(secret, "Error writing data to %s: %s", fullPath, err)
	}
	if secret == nil {
		if f.format == "table" {
			c.output("Success! Data written to: " + fullPath)
		}
		return 0
	}
	if f.field != "" {
		return f.printRawField(secret, f.field)
	}
	if secret.WrapInfo != nil && secret.WrapInfo.TTL != 0 {
		return f.outputSecret(secret)
	}
	if f.format == "table" {
		c.outputPath(fullPath, "Secret Path")
		c.output(getHeaderForMap("Metadata", secret.Data))
		return f.outputData(secret.Data)
	}
	return f.outputSecret(secret)
}

func (c *cli) kvGet(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	var mount string
	var version int
	f.fs.IntVar(&version, "version", 0, "")
	f.fs.StringVar(&mount, "mount", "", "")
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return code
	}
	fullPath, v2, err := kvFullPath(client, args[0], mount, false, "data")
	if err != nil {
		return c.failf(2, "%s", err)
	}
	var params map[string][]string
	if v2 && version > 0 {
		params = map[string][]string{"version": {strconv.Itoa(version)}}
	}
	secret, err := client.Logical().ReadWithData(fullPath, params)
	if err != nil {
		return f.failWithSecret(secret, "Error reading %s: %s", fullPath, err)
	}
	if secret == nil {
		return c.failf(2, "No value found at %s", fullPath)
	}
	if f.field != "" {
		if !v2 {
			return f.printRawField(secret, f.field)
		}
		data, ok := secret.Data["data"]
		if !ok || data == nil {
			return c.failf(2, "No data found at %s", fullPath)
		}
		if f.field == "data" {
			if dataMap, ok := data.(map[string]any); ok {
				if _, ok := dataMap["data"]; ok {
					return f.printRawField(dataMap, f.field)
				}
			}
			return f.printRawField(secret, f.field)
		}
		return f.printRawField(data, f.field)
	}
	if secret.WrapInfo != nil || f.format != "table" {
		return f.outputSecret(secret)
	}
	f.printWarnings(secret)
	if v2 {
		c.outputPath(fullPath, "Secret Path")
	}
	if metadata, ok := secret.Data["metadata"].(map[string]any); ok {
		c.output(getHeaderForMap("Metadata", metadata))
		f.outputData(metadata)
		c.output("")
	}
	data := secret.Data
	if v2 && data != nil {
		data, _ = secret.Data["data"].(map[string]any)
	}
	if data != nil {
		c.output(getHeaderForMap("Data", data))
		f.outputData(data)
	}
	return 0
}

func (c *cli) kvMetadataDelete(name string, args []string) int {
	f := c.newFlags(name, 0)
	var mount string
	f.fs.StringVar(&mount, "mount", "", "")
	client, args, code := f.start(args, exactArgs(1))
	if code >= 0 {
		return code
	}
	fullPath, v2, err := kvFullPath(client, args[0], mount, true, "metadata")
	if err != nil {
		return c.failf(2, "%s", err)
	}
	if !v2 {
		return c.failf(1, "Metadata not supported on KV Version 1")
	}
	if secret, err := client.Logical().Delete(fullPath); err != nil {
		return f.failWithSecret(secret, "Error deleting %s: %s", fullPath, err)
	}
	c.output("Success! Data deleted (if it existed) at: " + fullPath)
	return 0
}

func (c *cli) unwrap(name string, args []string) int {
	f := c.newFlags(name, withField|withFormat)
	client, args, code := f.start(args, atMostOne)
	if code >= 0 {
		return code
	}
	secret, err := client.Logical().Unwrap(firstArg(args))
	if err != nil {
		return c.failf(2, "Error unwrapping: %s", err)
	}
	if secret == nil {
		if f.format == "table" {
			c.output("Successfully unwrapped. There was no data in the wrapped secret.")
		}
		return 0
	}
	if keys, ok := secret.Data["keys"].([]any); ok && f.field == "" {
		return f.outputList(secret, keys)
	}
	return f.outputFieldOrSecret(secret)
}
