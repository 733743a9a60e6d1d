package provider

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
)

// DefaultPolicyTemplate names each task's policy after its service.
const DefaultPolicyTemplate = "{{.ServiceName}}"

// PolicyTemplate is the operator's POLICY_TEMPLATE: it decides which Vault
// policies a task's token gets. Only the operator writes it; nothing in a
// secret's labels reaches it, so labels can never widen what a task reads.
type PolicyTemplate struct {
	text string
	tmpl *template.Template
	// perRequest is set when the template calls serviceLabel, which must be
	// bound to each request's labels on a clone; otherwise the parsed
	// template is executed as it is (safe for concurrent use).
	perRequest bool
}

// policyData is what POLICY_TEMPLATE sees of a request.
type policyData struct {
	ServiceName, ServiceID, SecretName, TaskName, TaskID, NodeID string
}

// policyName is what a policy name may be here: Vault allows more, but these
// characters are all a template needs, and none of them (a comma, a space, a
// brace) can split one name into several or reach another template.
var policyName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// badPolicyError is a rendered name swarmvault never hands out.
type badPolicyError struct{ msg string }

func (e *badPolicyError) Error() string { return e.msg }

// errNoLabel stands in for serviceLabel at parse time; each execution binds
// the request's own labels.
var errNoLabel = errors.New("serviceLabel is bound per request")

// ParsePolicyTemplate parses POLICY_TEMPLATE once, at start, so a typo stops
// the plugin with an error naming the setting instead of failing every task.
func ParsePolicyTemplate(text string) (*PolicyTemplate, error) {
	if strings.TrimSpace(text) == "" {
		text = DefaultPolicyTemplate
	}
	t, err := template.New("POLICY_TEMPLATE").Option("missingkey=error").
		Funcs(template.FuncMap{"serviceLabel": func(string) (string, error) { return "", errNoLabel }}).
		Parse(text)
	if err != nil {
		return nil, fmt.Errorf("POLICY_TEMPLATE does not parse: %w", err)
	}
	pt := &PolicyTemplate{text: text, tmpl: t, perRequest: strings.Contains(text, "serviceLabel")}
	// A template that names root, or a name Vault cannot have, whatever the
	// service: say so at start, not at every task.
	sample := Request{NodeID: "node"}
	sample.ServiceName, sample.ServiceID, sample.SecretName, sample.TaskName, sample.TaskID = "service", "id", "secret", "task", "id"
	var bad *badPolicyError
	if _, err := pt.render(sample, func(string) (string, error) { return "label", nil }); errors.As(err, &bad) {
		return nil, err
	}
	return pt, nil
}

// Policies renders the template for one request: a comma-separated list,
// blanks dropped, sorted and deduplicated. An error fails this request only.
func (p *PolicyTemplate) Policies(req Request) ([]string, error) {
	labels := req.ServiceLabels
	return p.render(req, func(key string) (string, error) {
		v, ok := labels[key]
		if !ok {
			return "", fmt.Errorf("service %s has no label %s", req.ServiceName, showKey(key))
		}
		// Whoever deploys a service writes its labels: a comma or a
		// space would let them add policies the template does not name.
		if !policyName.MatchString(v) {
			return "", fmt.Errorf("service %s label %s=%s is not a Vault policy name: use letters, digits, -, _ and . only", req.ServiceName, showKey(key), quote(v))
		}
		return v, nil
	})
}

// render executes the template for req, serviceLabel bound to label, and
// checks every name it gives.
func (p *PolicyTemplate) render(req Request, label func(string) (string, error)) ([]string, error) {
	t := p.tmpl
	if p.perRequest {
		var err error
		if t, err = p.tmpl.Clone(); err != nil {
			return nil, fmt.Errorf("POLICY_TEMPLATE cannot be used: %w", err)
		}
		t.Funcs(template.FuncMap{"serviceLabel": label})
	}
	var b bytes.Buffer
	data := policyData{
		ServiceName: req.ServiceName, ServiceID: req.ServiceID, SecretName: req.SecretName,
		TaskName: req.TaskName, TaskID: req.TaskID, NodeID: req.NodeID,
	}
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("POLICY_TEMPLATE %s failed for service %s: %v", p.text, req.ServiceName, templateCause(err))
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range strings.Split(b.String(), ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "" || seen[s]:
			continue
		case !policyName.MatchString(s):
			return nil, &badPolicyError{fmt.Sprintf("POLICY_TEMPLATE %s gives %s for service %s, which is not a Vault policy name: use letters, digits, -, _ and . only", p.text, quote(s), req.ServiceName)}
		case strings.EqualFold(s, "root"):
			// Vault lowercases policy names: Root is root.
			return nil, &badPolicyError{fmt.Sprintf("POLICY_TEMPLATE %s gives policy root to service %s: swarmvault never hands out root", p.text, req.ServiceName)}
		}
		seen[s] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("POLICY_TEMPLATE %s gives no policy for service %s: check the template or the service's labels", p.text, req.ServiceName)
	}
	sort.Strings(out)
	return out, nil
}

// templateCause drops text/template's position prefix from an error a
// function returned, which says all the operator needs.
func templateCause(err error) error {
	var ee template.ExecError
	if errors.As(err, &ee) {
		if inner := errors.Unwrap(ee.Err); inner != nil {
			return inner
		}
	}
	return err
}

// subset checks that every policy in asked is in granted, and names the
// first that is not.
func subset(asked, granted []string) (string, bool) {
	g := map[string]bool{}
	for _, p := range granted {
		g[p] = true
	}
	for _, p := range asked {
		if !g[p] {
			return p, false
		}
	}
	return "", true
}
