package check

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
)

// Statuses of a row.
const (
	StatusOK        = "ok"
	StatusProblem   = "problem"   // the plugin would refuse the secret: Problem says why
	StatusUnchecked = "unchecked" // the check could not tell: Problem says why
	StatusSkipped   = "skipped"   // an external secret: not in these files
)

// Row is the result for one service's use of one secret, or for a secret
// no service uses (Service empty).
type Row struct {
	File     string   `json:"file,omitempty"`
	Secret   string   `json:"secret"` // its key under secrets:
	Name     string   `json:"name"`   // its name in the swarm
	Service  string   `json:"service,omitempty"`
	Type     string   `json:"type,omitempty"`
	Path     string   `json:"path,omitempty"`
	Policies []string `json:"policies,omitempty"`
	Status   string   `json:"status"`
	// WrapPath is the creation path the task should find when it looks
	// up its wrapping token (sys/wrapping/lookup) before it unwraps, for a
	// vault.wrap secret.
	WrapPath string `json:"wrap_creation_path,omitempty"`
	// SharesWith are the service's other secrets that a task gets from
	// the same Vault call as this one (the same source and vault.group):
	// one credential, one lease.
	SharesWith []string `json:"shares_call_with,omitempty"`

	// Problem is the plugin's own sentence for the task, or why the check
	// could not tell.
	Problem string `json:"problem,omitempty"`

	source string // provider.Source, for SharesWith
}

// verifier asks Vault; *provider.Provider is one.
type verifier interface {
	Verify(ctx context.Context, req provider.Request) (provider.Plan, []string, error)
}

// IDs that swarm gives only when it creates a service and its tasks: the
// check renders POLICY_TEMPLATE with two sets of stand-ins, and a template
// whose policies differ between them depends on what it cannot know.
var idSets = [2]struct{ service, task, node string }{
	{"checkservice0000000000000", "checktask0000000000000000", "checknode0000000000000000"},
	{"checkservice1111111111111", "checktask1111111111111111", "checknode1111111111111111"},
}

// run checks every secret of st: through v when given, else offline.
func run(ctx context.Context, st stack, opts provider.Options, v verifier) []Row {
	log := logrus.New()
	log.SetOutput(io.Discard)
	offline := provider.New(nil, log, opts)
	var rows []Row
	for _, u := range st.undefined {
		rows = append(rows, Row{File: u.file, Secret: u.secret, Service: u.service, Status: StatusProblem,
			Problem: fmt.Sprintf("service %s uses secret %s, which no secrets: entry of the compose files defines: docker stack deploy refuses it", u.service, u.secret)})
	}
	for _, e := range st.unattached {
		problem := fmt.Sprintf("config %s embeds {{ secret %q }}, but no secret of service %s has the target %s: {{ secret }} takes the target name of a secret attached to the same service", e.config, e.target, e.service, e.target)
		if len(e.targets) > 0 {
			problem += " (its secrets' targets: " + strings.Join(e.targets, ", ") + ")"
		}
		rows = append(rows, Row{File: e.file, Secret: e.target, Service: e.service, Status: StatusProblem, Problem: problem})
	}
	for _, s := range st.secrets {
		base := Row{File: s.file, Secret: s.key, Name: s.name}
		if s.external {
			for _, svc := range s.users {
				r := base
				r.Service, r.Status = svc.name, StatusSkipped
				r.Problem = "external: created outside these files, which hold neither its driver nor its labels"
				rows = append(rows, r)
			}
			continue
		}
		if len(s.users) == 0 {
			plan, err := offline.CheckLabels(s.labels)
			rows = append(rows, result(base, plan, nil, s.name, opts.TokenRole, err))
			continue
		}
		for _, svc := range s.users {
			req := request(s, svc, 0)
			plan, policies, err := offline.Check(req)
			if err == nil {
				if other, oerr := opts.Policies.Policies(request(s, svc, 1)); oerr == nil && !slices.Equal(policies, other) {
					r := result(base, plan, nil, s.name, opts.TokenRole, nil)
					r.Service, r.Status = svc.name, StatusUnchecked
					r.Problem = "POLICY_TEMPLATE uses an ID Swarm gives only when it creates the service or task: the check cannot tell which policies the task gets"
					rows = append(rows, r)
					continue
				}
				if v != nil {
					plan, policies, err = v.Verify(ctx, req)
				}
			}
			r := result(base, plan, policies, s.name, opts.TokenRole, err)
			r.Service = svc.name
			rows = append(rows, r)
		}
	}
	sharedCalls(rows)
	return rows
}

// sharedCalls tells each row which other secrets of its service a task
// gets from the same Vault call.
func sharedCalls(rows []Row) {
	groups := map[[2]string][]int{}
	for i, r := range rows {
		if r.source != "" {
			k := [2]string{r.Service, r.source}
			groups[k] = append(groups[k], i)
		}
	}
	for _, members := range groups {
		for _, i := range members {
			for _, j := range members {
				if i != j {
					rows[i].SharesWith = append(rows[i].SharesWith, rows[j].Secret)
				}
			}
		}
	}
}

// request is what the engine would send for a task of svc, with stand-ins
// from idSets[set] for the IDs.
func request(s secret, svc service, set int) provider.Request {
	ids := idSets[set]
	var req provider.Request
	req.SecretName, req.SecretLabels = s.name, s.labels
	req.ServiceName, req.ServiceLabels, req.ServiceID = svc.name, svc.labels, ids.service
	req.TaskID, req.NodeID = ids.task, ids.node
	// Swarm names a replicated service's tasks by slot, a global one's by
	// node.
	req.TaskName = svc.name + ".1"
	if svc.global {
		req.TaskName = svc.name + "." + ids.node
	}
	return req
}

// result is a row for err: nil is ok; Vault out of reach or a fault of the
// check itself is unchecked; anything else is the plugin's refusal.
func result(r Row, plan provider.Plan, policies []string, name, tokenRole string, err error) Row {
	r.Type, r.Path, r.Policies = string(plan.Type), plan.Path, policies
	r.WrapPath = plan.WrapCreationPath(tokenRole)
	if err == nil && policies != nil {
		r.source, _ = provider.Source(plan, policies)
	}
	switch provider.OutcomeOf(err) {
	case provider.OutcomeOK:
		r.Status = StatusOK
	case provider.OutcomeUnavailable, provider.OutcomeInternal:
		r.Status, r.Problem = StatusUnchecked, provider.Message(name, err)
	default:
		r.Status, r.Problem = StatusProblem, provider.Message(name, err)
	}
	return r
}

// exitCode: a problem wins over a row that could not be checked.
func exitCode(rows []Row) int {
	code := ExitOK
	for _, r := range rows {
		switch r.Status {
		case StatusProblem:
			return ExitProblem
		case StatusUnchecked:
			code = ExitError
		}
	}
	return code
}
