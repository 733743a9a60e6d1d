package check

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	composetypes "github.com/docker/cli/cli/compose/types"
	"github.com/docker/docker/api/types/versions"

	"github.com/swarmvault/swarmvault/provider"
)

// stackLabel is the label docker stack deploy adds to every service and
// secret it creates (docker/cli's convert.LabelNamespace): the plugin sees it
// among the secret's labels and POLICY_TEMPLATE's serviceLabel may read it.
const stackLabel = "com.docker.stack.namespace"

// stack is what check needs of a stack: its driver secrets and the
// services that use them, named as docker stack deploy names them in the
// swarm.
type stack struct {
	// driver is the plugin's name, as the files' driver: gives it.
	driver  string
	secrets []secret
	// undefined are the services' references to secrets no file defines,
	// which docker stack deploy refuses.
	undefined []use
	// unattached are the {{ secret "x" }} of templated configs whose x is
	// no target of a secret attached to the service.
	unattached []embed
}

// embed is a {{ secret "target" }} in a templated config a service uses.
type embed struct {
	file, service, config, target string
	targets                       []string // of the secrets the service has
}

// secret is one driver secret of the compose files, or one with vault.*
// labels and another driver.
type secret struct {
	key    string // its key under secrets:
	name   string // its name in the swarm: stack_key, or name:
	file   string // the last file that defines it (later files override)
	driver string // its driver:, which the plugin's name should be
	// external secrets exist already: their driver and labels are not in
	// the files.
	external bool
	labels   map[string]string
	users    []service
}

// service is a service that uses a secret.
type service struct {
	name   string // in the swarm: stack_service
	labels map[string]string
	// containerLabels are the service's top-level labels:, which docker
	// stack deploy gives its containers, not the service.
	containerLabels map[string]string
	// global services name their tasks after nodes, not slots.
	global bool
}

// use is a service's reference to a secret, in the last file that
// defines the service.
type use struct {
	file, service, secret string
}

// loadStack reads compose files as docker stack deploy does (docker/cli's
// own loader: the files merged in order, ${VAR:-default} interpolated from
// env, the schema checked) and returns the secrets whose driver is driver,
// and those with vault.* labels and another driver (a typo the plugin would
// never see). "-" reads stdin. namespace is the stack name.
func loadStack(files []string, stdin io.Reader, env map[string]string, namespace, driver string) (stack, error) {
	details, err := configDetails(files, stdin, env)
	if err != nil {
		return stack{}, err
	}
	cfg, err := loader.Load(details)
	if err != nil {
		if fpe, ok := err.(*loader.ForbiddenPropertiesError); ok {
			var props []string
			for name, why := range fpe.Properties {
				props = append(props, name+" ("+why+")")
			}
			sort.Strings(props)
			return stack{}, fmt.Errorf("the compose files use options docker stack deploy refuses: %s", strings.Join(props, "; "))
		}
		return stack{}, fmt.Errorf("docker stack deploy could not load the compose files: %w%s", err, versionHint(details))
	}
	scope := func(name string) string { return namespace + "_" + name }

	st := stack{driver: driver}
	byKey := map[string]int{}
	keys := make([]string, 0, len(cfg.Secrets))
	for key := range cfg.Secrets {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		sc := cfg.Secrets[key]
		if sc.Driver != driver && !sc.External.External && vaultLabelPrefix(sc.Labels) == "" {
			continue
		}
		s := secret{key: key, name: scope(key), file: definedIn(details.ConfigFiles, "secrets", key), driver: sc.Driver, external: sc.External.External}
		if sc.Name != "" {
			s.name = sc.Name
		}
		if !s.external {
			s.labels = withStackLabel(sc.Labels, namespace)
		}
		byKey[key] = len(st.secrets)
		st.secrets = append(st.secrets, s)
	}
	sort.Slice(cfg.Services, func(i, j int) bool { return cfg.Services[i].Name < cfg.Services[j].Name })
	for _, svc := range cfg.Services {
		user := service{
			name: scope(svc.Name),
			// A swarm service's labels are the compose deploy.labels;
			// labels: at the service's top level go to its containers.
			labels:          withStackLabel(svc.Deploy.Labels, namespace),
			containerLabels: svc.Labels,
			global:          svc.Deploy.Mode == "global",
		}
		st.unattached = append(st.unattached, unattachedSecrets(cfg, svc, user.name)...)
		for _, ref := range svc.Secrets {
			if _, ok := cfg.Secrets[ref.Source]; !ok {
				st.undefined = append(st.undefined, use{file: definedIn(details.ConfigFiles, "services", svc.Name), service: user.name, secret: ref.Source})
				continue
			}
			if i, ok := byKey[ref.Source]; ok {
				st.secrets[i].users = append(st.secrets[i].users, user)
			}
		}
	}
	// Keep external secrets only where a service uses them: each is a row
	// saying it was not checked.
	kept := st.secrets[:0]
	for _, s := range st.secrets {
		if !s.external || len(s.users) > 0 {
			kept = append(kept, s)
		}
	}
	st.secrets = kept
	return st, nil
}

// secretCall is a {{ secret "x" }} of a Go template, as Swarm's template
// driver renders it (swarmkit's template package): x is the target name
// of a secret attached to the same service.
var secretCall = regexp.MustCompile(`\{\{-?\s*secret\s+"([^"]*)"\s*-?\}\}`)

// unattachedSecrets finds the {{ secret "x" }} of the service's templated
// configs (template_driver: golang) whose x is no target of its secrets: the
// task fails to start, with an error that names neither the config nor
// the plugin.
func unattachedSecrets(cfg *composetypes.Config, svc composetypes.ServiceConfig, service string) []embed {
	var targets []string
	for _, ref := range svc.Secrets {
		target := ref.Target
		if target == "" {
			target = ref.Source // docker stack deploy's default
		}
		targets = append(targets, target)
	}
	var out []embed
	for _, ref := range svc.Configs {
		c, ok := cfg.Configs[ref.Source]
		if !ok || c.TemplateDriver != "golang" || c.File == "" {
			continue
		}
		text, err := os.ReadFile(c.File)
		if err != nil {
			continue // docker stack deploy says so itself
		}
		for _, m := range secretCall.FindAllStringSubmatch(string(text), -1) {
			if !slices.Contains(targets, m[1]) {
				out = append(out, embed{file: c.File, service: service, config: ref.Source, target: m[1], targets: targets})
			}
		}
	}
	return out
}

// vaultLabelPrefix is the prefix of the swarmvault labels among labels,
// as an error names it: vault.*, or the legacy plugin's; "" for none.
func vaultLabelPrefix(labels map[string]string) string {
	legacy := false
	for k := range labels {
		switch {
		case strings.HasPrefix(k, "vault."):
			return "vault.*"
		case strings.HasPrefix(k, provider.LegacyLabel("vault.")):
			legacy = true
		}
	}
	if legacy {
		return provider.LegacyLabel("vault.*")
	}
	return ""
}

// driverSecretsVersion is the first compose file version whose schema
// has secrets with driver: (docker/cli's config_schema_v3.8.json): with
// an older version: the loader refuses the key.
const driverSecretsVersion = "3.8"

// versionHint is what to add to the loader's error when the files'
// version (the first file's, which stands for all) is older than the
// driver: key of their secrets.
func versionHint(details composetypes.ConfigDetails) string {
	if !versions.LessThan(details.Version, driverSecretsVersion) {
		return ""
	}
	for _, f := range details.ConfigFiles {
		entries, _ := f.Config["secrets"].(map[string]any)
		for _, key := range slices.Sorted(maps.Keys(entries)) {
			if sc, ok := entries[key].(map[string]any); ok && sc["driver"] != nil {
				return fmt.Sprintf(" (secret %s of %s has a driver:, which needs compose file version %s or later, and %s says version: %q: set version: %q in each file)",
					key, f.Filename, driverSecretsVersion, details.ConfigFiles[0].Filename, details.Version, driverSecretsVersion)
			}
		}
	}
	return ""
}

func withStackLabel(labels map[string]string, namespace string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[stackLabel] = namespace
	return out
}

// definedIn names the last of files whose section (secrets:, services:)
// holds key.
func definedIn(files []composetypes.ConfigFile, section, key string) string {
	name := ""
	for _, f := range files {
		if entries, ok := f.Config[section].(map[string]any); ok {
			if _, ok := entries[key]; ok {
				name = f.Filename
			}
		}
	}
	return name
}

// configDetails is docker/cli's stack loader GetConfigDetails (which is
// deprecated there, and whose package would bring the whole CLI): the
// working directory is the first file's, and env is the environment.
func configDetails(files []string, stdin io.Reader, env map[string]string) (composetypes.ConfigDetails, error) {
	var details composetypes.ConfigDetails
	if files[0] == "-" {
		wd, err := os.Getwd()
		if err != nil {
			return details, err
		}
		details.WorkingDir = wd
	} else {
		abs, err := filepath.Abs(files[0])
		if err != nil {
			return details, err
		}
		details.WorkingDir = filepath.Dir(abs)
	}
	for _, name := range files {
		var b []byte
		var err error
		if name == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return details, fmt.Errorf("cannot read compose file: %w", err)
		}
		dict, err := loader.ParseYAML(b)
		if err != nil {
			return details, fmt.Errorf("compose file %s is not YAML docker stack deploy reads: %w", name, err)
		}
		details.ConfigFiles = append(details.ConfigFiles, composetypes.ConfigFile{Filename: name, Config: dict})
	}
	// As docker stack deploy: the first file's version stands for all.
	details.Version = schema.Version(details.ConfigFiles[0].Config)
	details.Environment = env
	return details, nil
}
