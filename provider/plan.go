package provider

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-secure-stdlib/parseutil"

	"github.com/swarmvault/swarmvault/internal/suggest"
)

// Label names read from a secret (docker secret create --label, or labels: in
// a compose file). They are the whole per-secret interface: the engine never
// sends driver_opts to the plugin.
const (
	LabelPath     = "vault.path"
	LabelField    = "vault.field"
	LabelFormat   = "vault.format"
	LabelTemplate = "vault.template"
	LabelVersion  = "vault.version"
	LabelType     = "vault.type"
	LabelWrap     = "vault.wrap"
	LabelReuse    = "vault.reuse"
	// LabelRotate opts a secret into rotation: a new KV version rolls the
	// services that use it, and credentials (vault.type=token, read,
	// write) roll their task's service before they reach their max TTL.
	LabelRotate = "vault.rotate"
	// LabelGroup names a group of a task's secrets from one source: those
	// that name the same source and group share one Vault call (one
	// credential); another group gets its own.
	LabelGroup = "vault.group"
	// LabelTokenTTL and LabelTokenPolicies shape a vault.type=token secret.
	LabelTokenTTL      = "vault.token.ttl"
	LabelTokenPolicies = "vault.token.policies"
)

// Type says what a secret's value is.
type Type string

// The types of vault.type.
const (
	// TypeKV reads a KV v1 or v2 secret.
	TypeKV Type = "kv"
	// TypeToken mints a Vault token for the task.
	TypeToken Type = "token"
	// TypeRead is any logical read (vault read), e.g. database/creds/app.
	TypeRead Type = "read"
	// TypeWrite is a logical write with vault.param.* (vault write), e.g.
	// pki/issue/web.
	TypeWrite Type = "write"
)

// labelParamPrefix starts the labels that give a read's query parameters
// or a write's body: vault.param.common_name=web.example.com.
const labelParamPrefix = "vault.param."

// legacyPrefix is the label prefix of the Docker secret provider plugin
// this one replaces. Its labels are accepted as aliases, so that stacks
// written for that plugin deploy unchanged.
const legacyPrefix = "dk.almbrand.docker.plugin.secretprovider."

// Format says how a Vault secret's data becomes the bytes of the secret file.
type Format string

// The formats of vault.format.
const (
	// FormatRaw writes a string field as its bytes and anything else as JSON.
	FormatRaw Format = "raw"
	// FormatJSON always writes JSON, a string field as a JSON string.
	FormatJSON Format = "json"
	// FormatEnv writes KEY=value lines, keys sorted.
	FormatEnv Format = "env"
	// FormatTemplate executes vault.template over the secret's data.
	FormatTemplate Format = "template"
)

// Plan is what one secret's labels ask for, validated before any Vault call.
type Plan struct {
	// Path is the Vault path as a user types it for `vault kv get`,
	// e.g. secret/myapp/db; the mount's KV version decides the API path.
	Path string
	// Field selects one key of the secret's data; empty means all of it.
	Field string
	// Format says how the data is written.
	Format Format
	// Template is the parsed vault.template, set only for FormatTemplate.
	Template *template.Template
	// Version is the KV v2 version to read; 0 means the latest.
	Version int
	// Reuse lets Swarm share one value among the tasks of a node.
	Reuse bool
	// Rotate: the leader rolls the services using the secret when its
	// value changes in Vault, or before its credentials end (vault.rotate).
	Rotate bool
	// Type is what the value is: a KV read or a new token.
	Type Type
	// Wrap asks for the value response-wrapped; WrapTTL 0 means the
	// operator's default TTL.
	Wrap    bool
	WrapTTL time.Duration
	// TokenTTL (0: the operator's default) and TokenPolicies (nil: all the
	// task's policies) shape the token a TypeToken value is, or the token a
	// TypeRead or TypeWrite reads with (whose leases end with it).
	TokenTTL      time.Duration
	TokenPolicies []string
	// Params are a TypeRead's query parameters or a TypeWrite's body.
	Params map[string]string
	// Group is vault.group: the task's secrets that name one source share
	// its answer within a group ("" is the default group).
	Group string
}

// where names the secret's source in errors: its Vault path, or what it mints.
func (p Plan) where() string {
	if p.Type == TypeToken {
		return "a task token"
	}
	return "Vault path " + p.Path
}

// label is a label value with the key the user wrote, so that an error names
// the label exactly as it appears in their stack file.
type label struct {
	key, value string
}

// ParsePlan validates a secret's labels. Unknown vault.* labels are refused
// rather than ignored: a typo such as vault.feild would otherwise deliver the
// whole secret where one field was meant.
func ParsePlan(labels map[string]string) (Plan, error) {
	known, err := vaultLabels(labels)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Path: strings.Trim(known[LabelPath].value, "/"), Field: known[LabelField].value, Format: FormatRaw, Type: TypeKV}
	if l, ok := known[LabelPath]; ok && p.Path != "" {
		if err := checkPath(l.key, p.Path); err != nil {
			return Plan{}, err
		}
	}
	for _, step := range []func(map[string]label) error{
		func(known map[string]label) error { return p.parseSource(known, labels) },
		p.parseTokenLabels,
		p.parseWrap,
		p.parseFormat,
		p.parseVersionAndReuse,
		p.parseGroup,
	} {
		if err := step(known); err != nil {
			return Plan{}, err
		}
	}
	switch {
	case p.Reuse && p.Type != TypeKV:
		// A token is good for one task: shared, a second task would get
		// another task's identity.
		return Plan{}, fmt.Errorf("label %s=true cannot apply to %s: each task needs its own value", showKey(known[LabelReuse].key), p.where())
	case p.Reuse && p.Wrap:
		// A wrapping token is good once: shared, a second task would get
		// one already unwrapped.
		wrap := "true"
		if p.WrapTTL > 0 {
			wrap = p.WrapTTL.String()
		}
		return Plan{}, fmt.Errorf("label %s=true cannot apply with %s=%s: a wrapping token unwraps once, so each task needs its own; remove one of them (%s)",
			showKey(known[LabelReuse].key), showKey(known[LabelWrap].key), wrap, p.where())
	}
	return p, nil
}

// WrapsAtSource tells whether vault.wrap has Vault wrap its own answer:
// the call that makes the value is answered response-wrapped, and the
// wrapping token's creation path names that call.
func (p Plan) WrapsAtSource() bool { return p.Wrap && !p.WrapsSelection() }

// WrapCreationPath is the creation path a task finds when it looks up
// the wrapping token of a vault.wrap secret before it unwraps (with
// sys/wrapping/lookup), or "" without vault.wrap. A KV path's depends on
// its mount's version, which only Vault knows: both are given.
func (p Plan) WrapCreationPath(tokenRole string) string {
	switch {
	case !p.Wrap:
		return ""
	case p.WrapsSelection():
		return wrapPath
	case p.Type == TypeToken && tokenRole != "":
		return "auth/token/create/" + tokenRole
	case p.Type == TypeToken:
		return "auth/token/create-orphan"
	case p.Type != TypeKV:
		return p.Path
	}
	mount, rest, _ := strings.Cut(p.Path, "/")
	return fmt.Sprintf("%s/data/%s on a KV v2 mount %s/, %s on KV v1", mount, rest, mount, p.Path)
}

// WrapsSelection tells whether vault.wrap wraps what vault.field,
// vault.format or vault.template cut out of Vault's answer: Vault cannot
// wrap at its source what it never answered, so the selected value goes to
// sys/wrapping/wrap, and that is the wrapping token's creation path. A
// vault.type=token secret's field is token unless it says otherwise, which
// is the token create's answer as Vault wraps it.
func (p Plan) WrapsSelection() bool {
	field := p.Field != ""
	if p.Type == TypeToken {
		field = p.Field != "token"
	}
	return p.Wrap && (field || p.Format != FormatRaw)
}

// parseSource reads what the value comes from: vault.type, the path (not
// for a token), vault.param.* (read and write only).
func (p *Plan) parseSource(known map[string]label, labels map[string]string) error {
	if l, ok := known[LabelType]; ok {
		switch l.value {
		case "kv":
		case "token", "vault_token": // vault_token: the legacy plugin's name
			p.Type = TypeToken
		case "read":
			p.Type = TypeRead
		case "write":
			p.Type = TypeWrite
		default:
			return fmt.Errorf("label %s=%s is not supported: use kv, read, write or token", showKey(l.key), quote(l.value))
		}
	}
	params, err := paramLabels(labels)
	if err != nil {
		return err
	}
	for name, l := range params {
		if p.Type != TypeRead && p.Type != TypeWrite {
			return fmt.Errorf("label %s applies only to %s=read or write (%s)", showKey(l.key), LabelType, p.where())
		}
		if p.Params == nil {
			p.Params = map[string]string{}
		}
		p.Params[name] = l.value
	}
	if p.Type != TypeToken && p.Path == "" {
		return fmt.Errorf("label %s is missing: set it to the Vault path of the secret, e.g. %s=secret/myapp/db", LabelPath, LabelPath)
	}
	if l, ok := known[LabelVersion]; ok && p.Type != TypeKV {
		return fmt.Errorf("label %s applies only to %s=kv (%s)", showKey(l.key), LabelType, p.where())
	}
	if p.Type == TypeToken {
		if l, ok := known[LabelPath]; ok {
			return fmt.Errorf("label %s has no meaning with %s=token: remove it", showKey(l.key), LabelType)
		}
		if p.Field == "" {
			p.Field = "token"
		}
	}
	return nil
}

// parseTokenLabels reads vault.token.ttl and vault.token.policies, which
// shape a task's own token: the one a token secret is, or a read or write is
// made with.
func (p *Plan) parseTokenLabels(known map[string]label) error {
	if p.Type == TypeKV {
		for _, name := range []string{LabelTokenTTL, LabelTokenPolicies} {
			if l, ok := known[name]; ok {
				return fmt.Errorf("label %s applies only to %s=token, read or write (%s)", showKey(l.key), LabelType, p.where())
			}
		}
		return nil
	}
	if l, ok := known[LabelTokenTTL]; ok {
		d, err := parseutil.ParseDurationSecond(l.value)
		if err != nil || d <= 0 {
			return fmt.Errorf("label %s=%s is not a duration: use e.g. 1h", showKey(l.key), quote(l.value))
		}
		p.TokenTTL = d
	}
	if l, ok := known[LabelTokenPolicies]; ok {
		for _, pol := range strings.Split(l.value, ",") {
			if pol = strings.TrimSpace(pol); pol != "" {
				p.TokenPolicies = append(p.TokenPolicies, pol)
			}
		}
		if len(p.TokenPolicies) == 0 {
			return fmt.Errorf("label %s is empty: name policies, or remove it to give the task all its policies", showKey(l.key))
		}
	}
	return nil
}

// parseWrap reads vault.wrap: true (the operator's TTL), false, or a TTL.
func (p *Plan) parseWrap(known map[string]label) error {
	l, ok := known[LabelWrap]
	if !ok || l.value == "false" {
		return nil
	}
	p.Wrap = true
	if l.value != "true" {
		d, err := parseutil.ParseDurationSecond(l.value)
		if err != nil || d <= 0 {
			return fmt.Errorf("label %s=%s is neither true nor a TTL: use e.g. %s=5m (%s)", showKey(l.key), quote(l.value), LabelWrap, p.where())
		}
		p.WrapTTL = d
	}
	return nil
}

// parseFormat reads vault.format and vault.template.
func (p *Plan) parseFormat(known map[string]label) error {
	if l, ok := known[LabelFormat]; ok {
		switch f := Format(l.value); f {
		case FormatRaw, FormatJSON, FormatEnv, FormatTemplate:
			p.Format = f
		default:
			return fmt.Errorf("label %s=%s is not a format: use raw, json, env or template (%s)", showKey(l.key), quote(l.value), p.where())
		}
	}
	if l, ok := known[LabelTemplate]; ok {
		if _, set := known[LabelFormat]; !set {
			p.Format = FormatTemplate
		}
		if p.Format != FormatTemplate {
			return fmt.Errorf("label %s is set but %s=%s: set %s=template or remove %s (%s)", showKey(l.key), showKey(known[LabelFormat].key), p.Format, LabelFormat, showKey(l.key), p.where())
		}
		// missingkey=error: a template naming a field the secret lacks fails
		// the task instead of writing "<no value>" into a connection string.
		t, err := template.New(LabelTemplate).Option("missingkey=error").Parse(l.value)
		if err != nil {
			// text/template quotes the template text, invalid bytes and all.
			return fmt.Errorf("label %s does not parse: %s (%s)", showKey(l.key), clip(oneLine(err.Error()), 256), p.where())
		}
		p.Template = t
	}
	if p.Format == FormatTemplate && p.Template == nil {
		return fmt.Errorf("label %s=template needs a %s label (%s)", showKey(known[LabelFormat].key), LabelTemplate, p.where())
	}
	return nil
}

// maxGroup bounds vault.group, a name and never a value.
const maxGroup = 64

// parseGroup reads vault.group: a short name of printable characters.
func (p *Plan) parseGroup(known map[string]label) error {
	l, ok := known[LabelGroup]
	if !ok {
		return nil
	}
	if l.value == "" || len(l.value) > maxGroup || strings.ContainsFunc(l.value, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("label %s=%s is not a group name: use up to %d letters, digits or punctuation, e.g. %s=second (%s)", showKey(l.key), quote(l.value), maxGroup, LabelGroup, p.where())
	}
	p.Group = l.value
	return nil
}

// parseVersionAndReuse reads vault.version and vault.reuse.
func (p *Plan) parseVersionAndReuse(known map[string]label) error {
	if l, ok := known[LabelVersion]; ok {
		v, err := strconv.Atoi(l.value)
		if err != nil || v < 1 {
			return fmt.Errorf("label %s=%s is not a version number: use a positive integer (%s)", showKey(l.key), quote(l.value), p.where())
		}
		p.Version = v
	}
	for _, b := range []struct {
		name string
		to   *bool
	}{{LabelReuse, &p.Reuse}, {LabelRotate, &p.Rotate}} {
		name, to := b.name, b.to
		if l, ok := known[name]; ok {
			b, err := strconv.ParseBool(l.value)
			if err != nil {
				return fmt.Errorf("label %s=%s is not a boolean: use true or false (%s)", showKey(l.key), quote(l.value), p.where())
			}
			*to = b
		}
	}
	if l, ok := known[LabelVersion]; ok && p.Rotate {
		return fmt.Errorf("label %s=true cannot apply with %s=%s: a pinned version never changes; remove one of them (%s)", LabelRotate, showKey(l.key), quote(l.value), p.where())
	}
	return nil
}

// knownLabels are the vault.* labels besides vault.param.*, in the order
// errors list them.
var knownLabels = []string{LabelPath, LabelField, LabelFormat, LabelTemplate, LabelVersion, LabelType, LabelWrap, LabelReuse, LabelRotate, LabelGroup, LabelTokenTTL, LabelTokenPolicies}

// nearest is the one name of names within two edits of s (vault.feild,
// vault.paht), or "" when none or several are.
func nearest(s string, names []string) string {
	found := ""
	for _, n := range names {
		if suggest.Distance(s, n) <= 2 {
			if found != "" {
				return ""
			}
			found = n
		}
	}
	return found
}

// vaultLabels picks the vault.* labels (and their legacy aliases) out of a
// secret's labels, keyed by canonical name.
func vaultLabels(labels map[string]string) (map[string]label, error) {
	known := map[string]label{}
	// Sorted, so that with two conflicting spellings the error is the same
	// every time.
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		name := strings.TrimPrefix(k, legacyPrefix)
		if !strings.HasPrefix(name, "vault.") || strings.HasPrefix(name, labelParamPrefix) {
			continue
		}
		if !slices.Contains(knownLabels, name) {
			if near := nearest(name, knownLabels); near != "" {
				return nil, fmt.Errorf("label %s is not a swarmvault label: did you mean %s?", showKey(k), near)
			}
			return nil, fmt.Errorf("label %s is not a swarmvault label: use %s, %s<name>", showKey(k), strings.Join(knownLabels, ", "), labelParamPrefix)
		}
		if prev, dup := known[name]; dup && prev.value != labels[k] {
			return nil, fmt.Errorf("labels %s and %s disagree: keep one of them", showKey(prev.key), showKey(k))
		}
		known[name] = label{key: k, value: labels[k]}
	}
	return known, nil
}

// paramLabels picks the vault.param.* labels (and their legacy aliases) out
// of a secret's labels, keyed by parameter name. Two spellings of one
// parameter with different values are refused, as for every other label:
// otherwise map order would pick one at random.
func paramLabels(labels map[string]string) (map[string]label, error) {
	params := map[string]label{}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		name, ok := strings.CutPrefix(strings.TrimPrefix(k, legacyPrefix), labelParamPrefix)
		if !ok {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("label %s names no parameter: use %s<name>", showKey(k), labelParamPrefix)
		}
		if prev, dup := params[name]; dup && prev.value != labels[k] {
			return nil, fmt.Errorf("labels %s and %s disagree: keep one of them", showKey(prev.key), showKey(k))
		}
		params[name] = label{key: k, value: labels[k]}
	}
	return params, nil
}

// maxPathLen bounds vault.path. Vault itself sets no limit, but no real path
// comes near it, and every error and log line quotes the path.
const maxPathLen = 512

// checkPath refuses a vault.path that Vault would not read as written. The
// Vault client cleans a request path (path.Join), so secret/../kv1/app would
// read kv1/app while the log, the error and the token's metadata name the
// first; an empty segment is cleaned away likewise. Control characters would
// break the log line that names the path.
func checkPath(key, path string) error {
	if len(path) > maxPathLen {
		return fmt.Errorf("label %s is %d bytes long: a Vault path here is at most %d", showKey(key), len(path), maxPathLen)
	}
	for _, r := range path {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return fmt.Errorf("label %s=%s holds a control or non-printing character: write the path as plain text", showKey(key), quote(path))
		}
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("label %s=%s has an empty, . or .. segment, which Vault would resolve to another path: name the path itself, e.g. secret/myapp/db", showKey(key), quote(path))
		}
	}
	return nil
}

// query is a vault.type=read's vault.param.* labels as the query of its
// read: the same for a task's read and for rotation's.
func (p Plan) query() map[string][]string {
	q := map[string][]string{}
	for k, v := range p.Params {
		q[k] = []string{v}
	}
	return q
}

// LegacyLabel is the name of label under the legacy plugin's prefix,
// which is accepted as an alias of it.
func LegacyLabel(label string) string { return legacyPrefix + label }
