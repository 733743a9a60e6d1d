package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// envEntry is a setting as plugin/config.json declares it: Docker's
// PluginEnv, with its fields in the order the file has them.
type envEntry struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Settable    []string `json:"settable"`
	Value       string   `json:"value"`
}

// ConfigEnv is the "env" list of plugin/config.json, indented as it
// stands in the file (two spaces, one level in).
func ConfigEnv() []byte {
	entries := make([]envEntry, len(Table))
	for i, s := range Table {
		help := s.Help
		if !strings.HasPrefix(help, "`") {
			help = strings.ToUpper(help[:1]) + help[1:] // a sentence, unless it starts with a literal
		}
		entries[i] = envEntry{Name: s.Name, Description: strings.ReplaceAll(help, "`", ""), Settable: []string{"value"}, Value: s.Default}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // <plugin> and <role> stay readable
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(entries); err != nil {
		panic(err) // strings only
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// MarkdownTable is the docs' table of settings.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| setting | meaning | default |\n|---|---|---|\n")
	for _, s := range Table {
		def := s.WhenUnset
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Name, strings.ReplaceAll(s.Help, "|", `\|`), def)
	}
	return b.String()
}
