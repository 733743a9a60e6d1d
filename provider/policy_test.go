package provider

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/secrets"
)

func policyRequest() Request {
	return Request{
		Request: secrets.Request{
			SecretName: "db_pw", ServiceName: "shop_web", ServiceID: "svc1", TaskName: "shop_web.1.t1", TaskID: "t1",
			ServiceLabels: map[string]string{"team": "payments", "env": "prod", "evil": "a,root", "spaced": "a, swarmvault-plugin",
				"newline": "a\nlevel=error msg=forged", "root": "root", "Root": "Root"},
		},
		NodeID: "n1",
	}
}

// policyTemplateCases are TestPolicyTemplate's cases; the fuzz targets start from them too.
var policyTemplateCases = []struct {
	name, text string
	want       string
	wantErr    string
}{
	{name: "default is the service name", text: "", want: "shop_web"},
	{name: "several, blanks dropped, sorted, deduplicated", text: "{{.ServiceName}}, base,,base , {{.NodeID}}", want: "base,n1,shop_web"},
	{name: "service label", text: `team-{{serviceLabel "team"}},{{serviceLabel "env"}}`, want: "prod,team-payments"},
	{name: "every field", text: "{{.ServiceName}}-{{.ServiceID}}-{{.SecretName}}-{{.TaskName}}-{{.TaskID}}-{{.NodeID}}", want: "shop_web-svc1-db_pw-shop_web.1.t1-t1-n1"},
	// Whoever deploys a service must not pick a policy the template does
	// not name (the README's own example template).
	{
		name: "a comma in a service label", text: `team-{{serviceLabel "evil"}}`,
		wantErr: `POLICY_TEMPLATE team-{{serviceLabel "evil"}} failed for service shop_web: service shop_web label evil="a,root" is not a Vault policy name: use letters, digits, -, _ and . only`,
	},
	{
		name: "a comma and a space in a service label", text: `team-{{serviceLabel "spaced"}}`,
		wantErr: `POLICY_TEMPLATE team-{{serviceLabel "spaced"}} failed for service shop_web: service shop_web label spaced="a, swarmvault-plugin" is not a Vault policy name: use letters, digits, -, _ and . only`,
	},
	{
		name: "a newline in a service label is quoted", text: `{{serviceLabel "newline"}}`,
		wantErr: `POLICY_TEMPLATE {{serviceLabel "newline"}} failed for service shop_web: service shop_web label newline="a\nlevel=error msg=forged" is not a Vault policy name: use letters, digits, -, _ and . only`,
	},
	{
		name: "a service label that is root", text: `{{serviceLabel "root"}}`,
		wantErr: `POLICY_TEMPLATE {{serviceLabel "root"}} gives policy root to service shop_web: swarmvault never hands out root`,
	},
	{
		name: "Root is root", text: `{{serviceLabel "Root"}}`,
		wantErr: `POLICY_TEMPLATE {{serviceLabel "Root"}} gives policy root to service shop_web: swarmvault never hands out root`,
	},
	{
		name: "missing service label fails the request", text: `{{serviceLabel "tier"}}`,
		wantErr: `POLICY_TEMPLATE {{serviceLabel "tier"}} failed for service shop_web: service shop_web has no label tier`,
	},
	{
		name: "empty result", text: `{{if false}}x{{end}} , `,
		wantErr: "POLICY_TEMPLATE {{if false}}x{{end}} ,  gives no policy for service shop_web: check the template or the service's labels",
	},
	{
		name: "unknown field", text: `{{.Labels}}`,
		wantErr: `POLICY_TEMPLATE {{.Labels}} failed for service shop_web: template: POLICY_TEMPLATE:1:2: executing "POLICY_TEMPLATE" at <.Labels>: can't evaluate field Labels in type provider.policyData`,
	},
}

func TestPolicyTemplate(t *testing.T) {

	for _, tt := range policyTemplateCases {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicyTemplate(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Policies(policyRequest())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tt.want {
				t.Errorf("policies %v, want %s", got, tt.want)
			}
		})
	}
}

// A template that gives root, or a name that is no policy, whatever the
// service, is refused at start; one that gives nothing for some services
// only fails their requests.
func TestPolicyTemplateCheckedAtStart(t *testing.T) {
	for text, want := range map[string]string{
		"{{.ServiceName}},root":  "POLICY_TEMPLATE {{.ServiceName}},root gives policy root to service service: swarmvault never hands out root",
		"{{.ServiceName}} admin": `POLICY_TEMPLATE {{.ServiceName}} admin gives "service admin" for service service, which is not a Vault policy name: use letters, digits, -, _ and . only`,
		"{{.ServiceName}};base":  `POLICY_TEMPLATE {{.ServiceName}};base gives "service;base" for service service, which is not a Vault policy name: use letters, digits, -, _ and . only`,
	} {
		if _, err := ParsePolicyTemplate(text); err == nil || err.Error() != want {
			t.Errorf("%s: err %v, want %s", text, err, want)
		}
	}
	if _, err := ParsePolicyTemplate(`{{if eq .ServiceName "web"}}web{{end}}`); err != nil {
		t.Errorf("a template that gives no policy to some services: %v", err)
	}
}

func TestPolicyTemplateParseError(t *testing.T) {
	_, err := ParsePolicyTemplate("{{.ServiceName")
	if want := "POLICY_TEMPLATE does not parse: template: POLICY_TEMPLATE:1: unclosed action"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// The seed proof-of-concept failed every later request after one template
// error; here each request binds its own labels, concurrently.
func TestPolicyTemplateErrorFailsOnlyItsRequest(t *testing.T) {
	p, err := ParsePolicyTemplate(`{{serviceLabel "team"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := policyRequest()
			if i%2 == 1 {
				req.ServiceLabels = nil
			}
			got, err := p.Policies(req)
			switch {
			case i%2 == 0 && (err != nil || got[0] != "payments"):
				t.Errorf("request %d: %v %v", i, got, err)
			case i%2 == 1 && err == nil:
				t.Errorf("request %d without the label succeeded: %v", i, got)
			}
		}()
	}
	wg.Wait()
}

func TestSubset(t *testing.T) {
	if p, ok := subset([]string{"a"}, []string{"a", "b"}); !ok || p != "" {
		t.Error("a ⊆ {a,b}")
	}
	if p, ok := subset([]string{"a", "root"}, []string{"a", "b"}); ok || p != "root" {
		t.Errorf("root ⊄ {a,b}: got %q %v", p, ok)
	}
}

// A template without serviceLabel is executed as parsed, from many
// requests at once.
func TestPolicyTemplateSharedConcurrently(t *testing.T) {
	p := mustPolicies(t, "{{.ServiceName}},base")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := policyRequest()
			req.ServiceName = fmt.Sprintf("svc%d", i)
			got, err := p.Policies(req)
			if err != nil || strings.Join(got, ",") != "base,"+req.ServiceName {
				t.Errorf("request %d: %v %v", i, got, err)
			}
		}()
	}
	wg.Wait()
}
