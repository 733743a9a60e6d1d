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
