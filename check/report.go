package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// report is the JSON output: the rows and the exit code they give.
type report struct {
	Results []Row `json:"results"`
	Exit    int   `json:"exit"`
}

// write prints rows as a table (one line each, the problem last so that it
// can run long) or as JSON.
func write(w io.Writer, format string, rows []Row) error {
	if format == "json" {
		if rows == nil {
			rows = []Row{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(report{Results: rows, Exit: exitCode(rows)})
	}
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no secret of the compose files has this plugin's driver (see --driver)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSECRET\tSERVICE\tTYPE\tPOLICIES\tRESULT")
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.Status]++
		result := r.Status
		if r.Problem != "" {
			result += ": " + r.Problem
		} else if notes := notes(r); len(notes) > 0 {
			result += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(r.File), r.Secret, dash(r.Service), dash(r.Type), dash(strings.Join(r.Policies, ",")), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d ok, %d problems, %d unchecked, %d skipped\n",
		counts[StatusOK], counts[StatusProblem], counts[StatusUnchecked], counts[StatusSkipped])
	return err
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
