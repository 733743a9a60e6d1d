package settings

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite plugin/config.json's env list and the docs' settings table from the table (make settings)")

// The files that describe the settings to users say what the table says:
// a setting added, renamed or given another default in the table and not
// there fails here, and make settings writes them again.
func TestGeneratedFilesMatchTheTable(t *testing.T) {
	for _, f := range []struct {
		path, begin, end string
		want             string
	}{
		{"../../plugin/config.json", "  \"env\": ", "\n}", string(ConfigEnv())},
		{"../../docs/settings.md", "edit the table, not these lines -->\n", "<!-- settings: end -->", MarkdownTable()},
	} {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		i := strings.Index(s, f.begin)
		j := strings.Index(s[max(i, 0):], f.end)
		if i < 0 || j < 0 {
			t.Fatalf("%s: no %q ... %q around the generated part", f.path, f.begin, f.end)
		}
		i += len(f.begin)
		j += i - len(f.begin)
		if got := s[i:j]; got != f.want {
			if *update {
				if err := os.WriteFile(f.path, []byte(s[:i]+f.want+s[j:]), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s differs from internal/settings/table.go (run make settings): %s", f.path, firstDifference(got, f.want))
		}
	}
}

// plugin/config.json stays what Docker reads: every env entry settable,
// described, with the table's default; nothing else in it is generated.
func TestConfigJSONDeclaresEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../../plugin/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		Env []envEntry
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		t.Fatal(err)
	}
	if len(pc.Env) != len(Table) {
		t.Fatalf("config.json declares %d settings, the table has %d", len(pc.Env), len(Table))
	}
	for i, e := range pc.Env {
		if s := Table[i]; e.Name != s.Name || e.Value != s.Default || e.Description == "" || len(e.Settable) != 1 || e.Settable[0] != "value" {
			t.Errorf("env %d: %+v, want %s=%q, described, settable [value]", i, e, s.Name, s.Default)
		}
	}
}

// firstDifference says where two texts part: the first line that differs.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d is\n\t%s\nwhere the table gives\n\t%s", i+1, gl, wl)
		}
	}
	return "they differ"
}
