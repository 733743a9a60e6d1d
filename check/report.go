package check

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
)

// report is the JSON output: the settings in effect, the rows and the exit
// code they give.
type report struct {
	Settings map[string]shown `json:"settings"`
	Results  []Row            `json:"results"`
	Exit     int              `json:"exit"`
}

// write prints rows as a table (after a line of the settings in effect;
// one line per problem, the sentence last so that it can run long) or as
// JSON.
func write(w io.Writer, format string, settings []shown, rows []Row) error {
	if format == "json" {
		if rows == nil {
			rows = []Row{}
		}
		byName := make(map[string]shown, len(settings))
		for _, s := range settings {
			byName[s.Name] = s
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report{Settings: byName, Results: rows, Exit: exitCode(rows)})
	}
	if _, err := fmt.Fprintln(w, settingsLine(settings)); err != nil {
		return err
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no secret of the compose files has this plugin's driver (see --driver)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSECRET\tSERVICE\tTYPE\tPOLICIES\tRESULT")
	counts := map[string]int{}
	for _, r := range rows {
		for _, result := range results(r) {
			counts[strings.SplitN(result, ":", 2)[0]]++
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.File), r.Secret, dash(r.Service), dash(r.Type), dash(strings.Join(r.Policies, ",")), result)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d ok, %d problems, %d unchecked, %d skipped\n",
		counts[StatusOK], counts[StatusProblem], counts[StatusUnchecked], counts[StatusSkipped])
	return err
}

// results are a row's lines in the table's RESULT column: one per problem,
// then why it is unchecked or skipped; or ok, with its notes.
func results(r Row) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, StatusProblem+": "+p)
	}
	switch {
	case r.Reason != "" && r.Status == StatusSkipped:
		out = append(out, StatusSkipped+": "+r.Reason)
	case r.Reason != "":
		out = append(out, StatusUnchecked+": "+r.Reason)
	case len(out) == 0:
		result := r.Status
		if notes := notes(r); len(notes) > 0 {
			result += " (" + strings.Join(notes, "; ") + ")"
		}
		out = append(out, result)
	}
	return out
}

// settingsLine is the table's first line: each setting in effect, where
// it came from.
func settingsLine(settings []shown) string {
	parts := []string{"settings:"}
	for _, s := range settings {
		parts = append(parts, fmt.Sprintf("%s=%s (%s)", s.Name, shellWord(s.Value), s.From))
	}
	return strings.Join(parts, " ")
}

// bare is a value that reads as one word as it is: {{.ServiceName}},
// kv,read, 1h.
var bare = regexp.MustCompile(`^[A-Za-z0-9_.,:/{}@%+=-]+$`)

// shellWord writes a value as one word, as it could be given to docker
// plugin set: bare, else single-quoted, else Go-quoted when it holds
// control characters (which a terminal would act on).
func shellWord(v string) string {
	switch {
	case bare.MatchString(v):
		return v
	case strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }):
		return strconv.Quote(v)
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// notes are what an ok row tells beyond ok: the secrets one Vault call
// serves with it, and where its wrapping token is made.
func notes(r Row) []string {
	var n []string
	if len(r.SharesWith) > 0 {
		n = append(n, "one Vault call with "+strings.Join(r.SharesWith, ", "))
	}
	if r.WrapPath != "" {
		n = append(n, "a wrapping token made at "+r.WrapPath)
	}
	return n
}
