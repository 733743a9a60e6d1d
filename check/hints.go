package check

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/swarmvault/swarmvault/provider"
)

// movedLabelsHint is what to add to POLICY_TEMPLATE's failure for req when
// labels it needs are among the service's top-level labels: (its
// containers'), not its deploy.labels, which are all the plugin sees. The
// plugin's own template says which: labels are moved over one at a time,
// each kept when it changes how the template fails (or makes it pass).
func movedLabelsHint(pt *provider.PolicyTemplate, req provider.Request, container map[string]string, failed error) string {
	var candidates []string
	for _, k := range slices.Sorted(maps.Keys(container)) {
		if _, ok := req.ServiceLabels[k]; !ok {
			candidates = append(candidates, k)
		}
	}
	labels, msg := req.ServiceLabels, failed.Error()
	var moved []string
	for msg != "" {
		found := false
		for _, k := range candidates {
			if slices.Contains(moved, k) {
				continue
			}
			try := map[string]string{k: container[k]}
			maps.Copy(try, labels)
			req.ServiceLabels = try
			_, err := pt.Policies(req)
			if got := errText(err); got != msg {
				labels, msg, found = try, got, true
				moved = append(moved, k)
				break
			}
		}
		if !found {
			break
		}
	}
	if len(moved) == 0 {
		return ""
	}
	names, verb, them := strings.Join(moved, ", "), "is", "it"
	if len(moved) > 1 {
		verb, them = "are", "them"
	}
	return " (" + names + " " + verb + " in the service's labels:, which go to its containers; the plugin reads deploy.labels: move " + them + " under deploy: labels:)"
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// editDistance is the Levenshtein distance of a and b, in bytes, with a
// transposition counted as one edit: within 2, a name is taken for a typo
// of the other (vaultt, vualt).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 3 // a typo of a short name is not long
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// plainName is a name that reads unambiguously as it is in a sentence.
var plainName = regexp.MustCompile(`^[A-Za-z0-9._/:@-]{1,128}$`)

// showName renders a name from the compose files (a driver) for a
// sentence: as written when plain, Go-quoted otherwise.
func showName(s string) string {
	if plainName.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}
