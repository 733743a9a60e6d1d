package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/suggest"
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
	// Status is problem when Problems has any; else unchecked when Reason
	// is set; else ok, or skipped.
	Status string `json:"status"`
	// WrapPath is the creation path the task should find when it looks
	// up its wrapping token (sys/wrapping/lookup) before it unwraps, for a
	// vault.wrap secret.
	WrapPath string `json:"wrap_creation_path,omitempty"`
	// SharesWith are the service's other secrets that a task gets from
	// the same Vault call as this one (the same source and vault.group):
	// one credential, one lease.
	SharesWith []string `json:"shares_call_with,omitempty"`

	// Problems are every reason the plugin would refuse the secret to the
	// service's tasks, each the plugin's own sentence where the plugin
	// has one.
	Problems []string `json:"problems,omitempty"`
	// Reason is why the check could not tell (unchecked), or did not
	// look (skipped). A row with problems may have one too: what the
	// check could not judge beyond them.
	Reason string `json:"reason,omitempty"`
	// Problem is the first of Problems, else Reason: the one sentence of
	// the check's first output, for the readers written for it.
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

// idsUnknown is the reason of a row whose policies depend on those IDs.
const idsUnknown = "POLICY_TEMPLATE uses an ID Swarm gives only when it creates the service or task: the check cannot tell which policies the task gets"

// checker judges each use of a secret with the plugin's own code.
type checker struct {
	opts   provider.Options
	driver string
	// offline decides what Check and CheckLabels decide; anyType the
	// same with every vault.type allowed, to see past ALLOWED_TYPES.
	offline, anyType *provider.Provider
	// beforeVault runs Verify up to its first Vault call, which never
	// leaves the process (nil when no such client could be made: why).
	beforeVault *provider.Provider
	noVault     *noVault
	noVaultErr  error
	// vault asks Vault, with --vault.
	vault verifier
}

// run checks every secret of st: through v when given, else offline.
func run(ctx context.Context, st stack, opts provider.Options, v verifier) []Row {
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := checker{opts: opts, driver: st.driver, vault: v}
	c.offline = provider.New(nil, log, opts)
	allTypes := opts
	allTypes.AllowedTypes = nil
	c.anyType = provider.New(nil, log, allTypes)
	c.noVault = &noVault{}
	if client, err := c.noVault.client(); err != nil {
		c.noVaultErr = err
	} else {
		c.beforeVault = provider.New(client, log, opts)
	}
	var rows []Row
	for _, u := range st.undefined {
		rows = append(rows, finish(Row{File: u.file, Secret: u.secret, Service: u.service,
			Problems: []string{fmt.Sprintf("service %s uses secret %s, which no secrets: entry of the compose files defines: docker stack deploy refuses it", u.service, u.secret)}}))
	}
	for _, e := range st.unattached {
		problem := fmt.Sprintf("config %s embeds {{ secret %q }}, but no secret of service %s has the target %s: {{ secret }} takes the target name of a secret attached to the same service", e.config, e.target, e.service, e.target)
		if len(e.targets) > 0 {
			problem += " (its secrets' targets: " + strings.Join(e.targets, ", ") + ")"
		}
		rows = append(rows, finish(Row{File: e.file, Secret: e.target, Service: e.service, Problems: []string{problem}}))
	}
	for _, s := range st.secrets {
		if s.external {
			for _, svc := range s.users {
				rows = append(rows, Row{File: s.file, Secret: s.key, Name: s.name, Service: svc.name, Status: StatusSkipped,
					Reason:  "external: created outside these files, which hold neither its driver nor its labels",
					Problem: "external: created outside these files, which hold neither its driver nor its labels"})
			}
			continue
		}
		if len(s.users) == 0 {
			rows = append(rows, c.use(ctx, s, nil))
			continue
		}
		for _, svc := range s.users {
			rows = append(rows, c.use(ctx, s, &svc))
		}
	}
	sharedCalls(rows)
	return rows
}

// use judges svc's use of s (svc nil: s unused), gathering every problem
// the stages of the plugin's decision find, each stage asked even when
// another failed as long as it does not depend on that one: the driver;
// the labels (and what CheckLabels decides after ALLOWED_TYPES); the
// service's POLICY_TEMPLATE; then, with both, what Check and Verify decide
// before any Vault call (a vault.type=token template, vault.token.policies
// within the template's policies). Vault is asked only when all that
// passes: the plugin would not ask it otherwise.
func (c *checker) use(ctx context.Context, s secret, svc *service) Row {
	r := Row{File: s.file, Secret: s.key, Name: s.name}
	if s.driver != c.driver {
		r.Problems = append(r.Problems, driverProblem(s, c.driver))
	}
	plan, err := c.offline.CheckLabels(s.labels)
	labelsOK := err == nil
	if err != nil {
		r.Problems = append(r.Problems, provider.Message(s.name, err))
		if provider.OutcomeOf(err) == provider.OutcomeConfig {
			// ALLOWED_TYPES refused the type; what CheckLabels checks
			// after it is asked with every type allowed.
			if _, err := c.anyType.CheckLabels(s.labels); err != nil {
				r.Problems = append(r.Problems, provider.Message(s.name, err))
			}
		}
	}
	r.Type, r.Path = string(plan.Type), plan.Path
	r.WrapPath = plan.WrapCreationPath(c.opts.TokenRole)
	if svc == nil {
		return finish(r)
	}
	r.Service = svc.name
	req := request(s, *svc, 0)
	policies, err := c.opts.Policies.Policies(req)
	switch {
	case err != nil:
		r.Problems = append(r.Problems, provider.Message(s.name, err)+movedLabelsHint(c.opts.Policies, req, svc.containerLabels, err))
	case !c.samePolicies(policies, request(s, *svc, 1)):
		r.Reason = idsUnknown
	default:
		r.Policies = policies
	}
	if !labelsOK || r.Policies == nil {
		return finish(r)
	}
	if _, _, err := c.offline.Check(req); err != nil {
		r.Problems = append(r.Problems, provider.Message(s.name, err))
		return finish(r)
	}
	if why, err := c.verifyBeforeVault(ctx, req, plan); err != nil || why != "" {
		if err != nil {
			r.Problems = append(r.Problems, provider.Message(s.name, err))
		}
		r.Reason = why
		return finish(r)
	}
	if len(r.Problems) > 0 {
		return finish(r)
	}
	if c.vault == nil {
		r.source, _ = provider.Source(plan, policies)
		return finish(r)
	}
	plan, policies, err = c.vault.Verify(ctx, req)
	switch provider.OutcomeOf(err) {
	case provider.OutcomeOK:
		r.Policies = policies
		r.source, _ = provider.Source(plan, policies)
	case provider.OutcomeUnavailable, provider.OutcomeInternal:
		r.Reason = provider.Message(s.name, err)
	default:
		r.Problems = append(r.Problems, provider.Message(s.name, err))
	}
	return finish(r)
}

// verifyBeforeVault runs Verify through a Vault client whose every call
// fails at once, in this process. An error Verify returns before its
// first call is one the plugin gives on the request alone, with the same
// sentence: a vault.token.policies policy that POLICY_TEMPLATE does not
// give the service (taskTokenFor). An error at or after that call says
// nothing of the stack, and is dropped. why is set when no such client
// could be made and the plan has what only Verify judges.
func (c *checker) verifyBeforeVault(ctx context.Context, req provider.Request, plan provider.Plan) (why string, err error) {
	if c.beforeVault == nil {
		if plan.TokenPolicies == nil {
			return "", nil
		}
		return fmt.Sprintf("the check cannot tell whether POLICY_TEMPLATE gives the policies of label %s: %v", provider.LabelTokenPolicies, c.noVaultErr), nil
	}
	calls := c.noVault.calls.Load()
	if _, _, err := c.beforeVault.Verify(ctx, req); err != nil && c.noVault.calls.Load() == calls {
		return "", err
	}
	return "", nil
}

// noVault is the transport of a Vault client that reaches no Vault: each
// call fails at once, and is counted.
type noVault struct{ calls atomic.Int64 }

var errNoVault = errors.New("swarmvault check offline: no Vault is asked")

func (n *noVault) RoundTrip(*http.Request) (*http.Response, error) {
	n.calls.Add(1)
	return nil, errNoVault
}

// client is a Vault client over n, holding no token. The Vault API reads
// the environment's VAULT_* settings to make any client, and fails when
// they are wrong; nothing of them is used.
func (n *noVault) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("the environment's Vault settings are wrong: %w", cfg.Error)
	}
	cfg.Address, cfg.MaxRetries = "http://swarmvault-check.invalid", 0
	cfg.HttpClient = &http.Client{Transport: n}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("the environment's Vault settings are wrong: %w", err)
	}
	client.ClearToken()
	return client, nil
}

// samePolicies tells whether POLICY_TEMPLATE gives other, the request
// with the other stand-in IDs, the policies it gave with the first.
func (c *checker) samePolicies(policies []string, other provider.Request) bool {
	again, err := c.opts.Policies.Policies(other)
	return err == nil && slices.Equal(policies, again)
}

// finish sets a row's status (and Problem) from what was found.
func finish(r Row) Row {
	switch {
	case len(r.Problems) > 0:
		r.Status, r.Problem = StatusProblem, r.Problems[0]
	case r.Reason != "":
		r.Status, r.Problem = StatusUnchecked, r.Reason
	default:
		r.Status = StatusOK
	}
	return r
}

// driverProblem is the problem of a secret with swarmvault labels whose
// driver is not the plugin's: the engine never asks the plugin for it.
func driverProblem(s secret, driver string) string {
	labels := vaultLabelPrefix(s.labels)
	switch {
	case s.driver == "":
		return fmt.Sprintf("secret %s has %s labels but no driver, so docker stack deploy reads it from its file: set driver: %s", s.name, labels, driver)
	case suggest.Distance(s.driver, driver) <= 2:
		return fmt.Sprintf("secret %s has %s labels but driver %s, not %s: did you mean driver: %s?", s.name, labels, showName(s.driver), driver, driver)
	}
	return fmt.Sprintf("secret %s has %s labels but driver %s, not %s: set driver: %s (or --driver %s if the plugin is installed under that name)", s.name, labels, showName(s.driver), driver, driver, showName(s.driver))
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

// exitCode is ExitProblem when any row has a problem, else ExitUnchecked
// when any could not be judged, else ExitOK. A problem wins: it is certain
// whatever the unchecked rows turn out to be, and a pipeline that lets
// ExitUnchecked pass (a POLICY_TEMPLATE with .TaskID is unchecked at
// every run) must still stop on it.
func exitCode(rows []Row) int {
	code := ExitOK
	for _, r := range rows {
		switch r.Status {
		case StatusProblem:
			return ExitProblem
		case StatusUnchecked:
			code = ExitUnchecked
		}
	}
	return code
}
