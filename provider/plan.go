package provider

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
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
)

// legacyPrefix is the label prefix of the seed proof-of-concept. Its labels are
// accepted as aliases so that stacks written for it deploy unchanged.
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

	path := strings.Trim(known[LabelPath].value, "/")
	if path == "" {
		return Plan{}, fmt.Errorf("label %s is missing: set it to the Vault path of the secret, e.g. %s=secret/myapp/db", LabelPath, LabelPath)
	}
	p := Plan{Path: path, Field: known[LabelField].value, Format: FormatRaw}

	if l, ok := known[LabelType]; ok && l.value != "kv" {
		return Plan{}, fmt.Errorf("label %s=%s is not supported by this version of swarmvault (supported: kv) for Vault path %s", l.key, l.value, path)
	}
	if l, ok := known[LabelWrap]; ok {
		// Refused, not ignored: the user asked that no plain value leave Vault.
		return Plan{}, fmt.Errorf("label %s is not supported by this version of swarmvault: remove it to deliver Vault path %s unwrapped", l.key, path)
	}

	if l, ok := known[LabelFormat]; ok {
		switch f := Format(l.value); f {
		case FormatRaw, FormatJSON, FormatEnv, FormatTemplate:
			p.Format = f
		default:
			return Plan{}, fmt.Errorf("label %s=%s is not a format: use raw, json, env or template (Vault path %s)", l.key, l.value, path)
		}
	}
	if l, ok := known[LabelTemplate]; ok {
		if _, set := known[LabelFormat]; !set {
			p.Format = FormatTemplate
		}
		if p.Format != FormatTemplate {
			return Plan{}, fmt.Errorf("label %s is set but %s=%s: set %s=template or remove %s (Vault path %s)", l.key, known[LabelFormat].key, p.Format, LabelFormat, l.key, path)
		}
		// missingkey=error: a template naming a field the secret lacks fails
		// the task instead of writing "<no value>" into a connection string.
		t, err := template.New(LabelTemplate).Option("missingkey=error").Parse(l.value)
		if err != nil {
			return Plan{}, fmt.Errorf("label %s does not parse: %v (Vault path %s)", l.key, err, path)
		}
		p.Template = t
	}
	if p.Format == FormatTemplate && p.Template == nil {
		return Plan{}, fmt.Errorf("label %s=template needs a %s label (Vault path %s)", known[LabelFormat].key, LabelTemplate, path)
	}

	if l, ok := known[LabelVersion]; ok {
		v, err := strconv.Atoi(l.value)
		if err != nil || v < 1 {
			return Plan{}, fmt.Errorf("label %s=%s is not a version number: use a positive integer (Vault path %s)", l.key, l.value, path)
		}
		p.Version = v
	}
	if l, ok := known[LabelReuse]; ok {
		b, err := strconv.ParseBool(l.value)
		if err != nil {
			return Plan{}, fmt.Errorf("label %s=%s is not a boolean: use true or false (Vault path %s)", l.key, l.value, path)
		}
		p.Reuse = b
	}
	return p, nil
}

// vaultLabels picks the vault.* labels (and their legacy aliases) out of a
// secret's labels, keyed by canonical name.
func vaultLabels(labels map[string]string) (map[string]label, error) {
	known := map[string]label{}
	// Sorted, so that with two conflicting spellings the error is the same
	// every time.
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.TrimPrefix(k, legacyPrefix)
		if !strings.HasPrefix(name, "vault.") {
			continue
		}
		switch name {
		case LabelPath, LabelField, LabelFormat, LabelTemplate, LabelVersion, LabelType, LabelWrap, LabelReuse:
		default:
			return nil, fmt.Errorf("label %s is not a swarmvault label: use %s", k, strings.Join([]string{LabelPath, LabelField, LabelFormat, LabelTemplate, LabelVersion, LabelReuse}, ", "))
		}
		if prev, dup := known[name]; dup && prev.value != labels[k] {
			return nil, fmt.Errorf("labels %s and %s disagree: keep one of them", prev.key, k)
		}
		known[name] = label{key: k, value: labels[k]}
	}
	return known, nil
}
