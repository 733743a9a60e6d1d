// Package docs holds the user documentation; its tests keep the documents
// true to the code: every error sentence the plugin can write is explained
// in troubleshooting.md, every link between the documents leads somewhere,
// and the README stays a door, not a manual.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// message is one sentence the product can write: an error it makes, or a
// warning or error it logs, as a skeleton (each formatting verb as …).
type message struct {
	skeleton string
	at       string // file:line, for the failure
}

// verb is a fmt verb with its flags, width, precision and index.
var verb = regexp.MustCompile(`%[-+# 0]*(\[\d+\])?[\d.*]*[a-zA-Z%]`)

// productDirs are skipped when looking for messages: not the product.
var notProduct = []string{"e2e", "bench", "docs"}

// productMessages parses every non-test Go file of the product and returns
// the first argument of each fmt.Errorf, errors.New and logger Warn…/Error…
// call that is a string (literals joined with +; any other operand is a
// …), and the sentences Config.Warnings appends.
func productMessages(t *testing.T) []message {
	t.Helper()
	var out []message
	err := filepath.WalkDir("..", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", p)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || slices.Contains(notProduct, rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		add := func(e ast.Expr) {
			if s, ok := skeleton(e); ok {
				out = append(out, message{s, rel + ":" + strconv.Itoa(fset.Position(e.Pos()).Line)})
			}
		}
		for _, decl := range f.Decls {
			fn, isFunc := decl.(*ast.FuncDecl)
			ast.Inspect(decl, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok || len(c.Args) == 0 {
					return true
				}
				if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "append" && isFunc && fn.Name.Name == "Warnings" {
					for _, a := range c.Args[1:] {
						add(a)
					}
					return true
				}
				sel, ok := c.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg := ""
				if id, ok := sel.X.(*ast.Ident); ok {
					pkg = id.Name
				}
				name := sel.Sel.Name
				switch {
				case pkg == "fmt" && name == "Errorf", pkg == "errors" && name == "New":
				case pkg != "fmt" && (strings.HasPrefix(name, "Warn") || strings.HasPrefix(name, "Error")):
				default:
					return true
				}
				add(c.Args[0])
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("found only %d messages in the product: is the walk wrong?", len(out))
	}
	return out
}

// skeleton is a string expression with its verbs and non-literal operands
// as …; ok is false for an expression with no literal at all.
func skeleton(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		if err != nil {
			return "", false
		}
		return verb.ReplaceAllString(s, "…"), true
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		l, lok := skeleton(e.X)
		r, rok := skeleton(e.Y)
		if !lok && !rok {
			return "", false
		}
		if !lok {
			l = "…"
		}
		if !rok {
			r = "…"
		}
		return l + r, true
	case *ast.ParenExpr:
		return skeleton(e.X)
	}
	return "", false
}

// docPatterns are the `Messages:` lines of troubleshooting.md: each code
// span is the start of the sentences its entry explains, with … where the
// message names something.
func docPatterns(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	patterns := map[string]string{}
	heading := ""
	span := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "### ") {
			heading = strings.TrimPrefix(line, "### ")
		}
		if rest, ok := strings.CutPrefix(line, "Messages: "); ok {
			for _, m := range span.FindAllStringSubmatch(rest, -1) {
				if prev, dup := patterns[m[1]]; dup {
					t.Errorf("troubleshooting.md lists `%s` under %q and %q", m[1], prev, heading)
				}
				patterns[m[1]] = heading
			}
		}
	}
	if len(patterns) == 0 {
		t.Fatal("troubleshooting.md has no Messages: lines")
	}
	return patterns
}

// Every sentence the plugin can write starts like one that
// troubleshooting.md explains, and every sentence it explains is one the
// plugin writes: a new message cannot ship undocumented, nor a removed one
// stay documented.
func TestTroubleshootingCoversEveryMessage(t *testing.T) {
	msgs := productMessages(t)
	patterns := docPatterns(t)
	used := map[string]bool{}
	var missing []string
	for _, m := range msgs {
		covered := false
		for p := range patterns {
			if strings.HasPrefix(m.skeleton, p) {
				covered, used[p] = true, true
			}
		}
		if !covered {
			missing = append(missing, m.at+": "+m.skeleton)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no entry of docs/troubleshooting.md explains %s (add its start to an entry's Messages: line)", m)
	}
	for p, h := range patterns {
		if !used[p] {
			t.Errorf("docs/troubleshooting.md %q lists `%s`, which no message of the product starts with", h, p)
		}
	}
}

// Every relative link of the README and docs/ names a file that exists,
// and an anchor a heading of that file makes.
func TestLinksLeadSomewhere(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md", "../SECURITY.md", "../CHANGELOG.md", "../bench/RESULTS.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
				continue
			}
			if anchor != "" && !slices.Contains(anchors(t, path), anchor) {
				t.Errorf("%s links to %s: %s has no heading with that anchor", f, target, path)
			}
		}
	}
}

// anchors are the GitHub anchors of a Markdown file's headings.
func anchors(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var a strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '…' && r != '—' && r != '–':
				a.WriteRune(r)
			}
		}
		out = append(out, a.String())
	}
	return out
}

// The README is the door: what it is, the two commands, the install
// checklist and the index, within 10 KB.
func TestREADMEIsADoor(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 10*1024 {
		t.Errorf("README.md is %d bytes: keep it within 10 KB and move the rest to docs/", len(b))
	}
	for _, want := range []string{"make demo", "make test", "## Install on a cluster", "## Documentation"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
}
