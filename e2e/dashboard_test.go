//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dashboardFile is the Grafana dashboard operators import (ops/).
const dashboardFile = "../ops/grafana/swarmvault.json"

// dashboardRateInterval stands for Grafana's $__rate_interval: about what
// a dashboard over a few hours of a 15s scrape gives.
const dashboardRateInterval = "1m"

// dashboardPanel is what the check reads of a panel; a collapsed row holds
// its panels.
type dashboardPanel struct {
	ID      int              `json:"id"`
	Title   string           `json:"title"`
	Type    string           `json:"type"`
	Panels  []dashboardPanel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// dashboardQuery is one target of a panel.
type dashboardQuery struct{ panel, expr string }

// readDashboard returns the dashboard's queries, as written, and the query
// of its instance variable (label_values(metric, label)).
func readDashboard(t *testing.T) (queries []dashboardQuery, instanceVar string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			n := 0
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					queries = append(queries, dashboardQuery{name + " " + tg.RefID, tg.Expr})
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s has no query", name)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Name == "instance" {
			instanceVar = v.Definition
		}
	}
	return queries, instanceVar
}

// promAPI gets a Prometheus API path; the data, or why there is none.
func promAPI(t *testing.T, path string) (json.RawMessage, error) {
	t.Helper()
	code, body := httpGet(t, "http://"+prometheusAddr+path)
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	switch err := json.Unmarshal([]byte(body), &r); {
	case err != nil:
		return nil, fmt.Errorf("HTTP %d: %s", code, strings.TrimSpace(body))
	case r.Status != "success" || code != http.StatusOK:
		return nil, fmt.Errorf("HTTP %d: %s", code, r.Error)
	}
	return r.Data, nil
}

// promResults is how many series (or a scalar: 1) an instant query gives.
func promResults(t *testing.T, q string) (int, error) {
	t.Helper()
	data, err := promAPI(t, "/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	if d.ResultType == "scalar" || d.ResultType == "string" {
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(d.Result, &series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// testDashboard runs every query of the dashboard against the e2e's
// Prometheus, as Grafana sends it with All instances selected, and wants
// data from each: a query that returns nothing is a panel an operator sees
// empty. It runs once the plugin has served, renewed, revoked and rolled
// (the lifecycle tests), in the same plugin process: a counter has no series
// before its first event, and a plugin restart drops them all.
func testDashboard(t *testing.T) {
	queries, instanceVar := readDashboard(t)
	if len(queries) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}

	// The instance variable, as Grafana fills it: label_values(metric,
	// label) is the label's values among the metric's series.
	m := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`).FindStringSubmatch(instanceVar)
	if m == nil {
		t.Fatalf("the instance variable's query is %q, want label_values(metric, label)", instanceVar)
	}
	data, err := promAPI(t, "/api/v1/label/"+m[2]+"/values?match[]="+url.QueryEscape(m[1]))
	var instances []string
	if err == nil {
		err = json.Unmarshal(data, &instances)
	}
	if err != nil || len(instances) == 0 {
		t.Fatalf("%s gives no instance (%v)", instanceVar, err)
	}
	// All, multi-value: each value escaped for a regex inside a PromQL
	// string (Grafana's prometheus escaping), joined with |.
	escaped := make([]string, len(instances))
	for i, v := range instances {
		escaped[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	instance := strings.Join(escaped, "|")
	if len(escaped) > 1 {
		instance = "(" + instance + ")"
	}
	vars := strings.NewReplacer("$__rate_interval", dashboardRateInterval, "$instance", instance)
	t.Logf("%s: %v", instanceVar, instances)

	for _, q := range queries {
		expr := vars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable the check does not fill: %s", q.panel, q.expr)
			continue
		}
		// A few seconds for a scrape (one a second) that would bring a
		// series; a query that stays empty is the panel's failure.
		var n int
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(time.Second) {
			n, err = promResults(t, expr)
			if (err == nil && n > 0) || time.Now().After(deadline) {
				break
			}
		}
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", q.panel, expr, err)
		case n == 0:
			t.Errorf("%s: %s returns no data", q.panel, expr)
		default:
			t.Logf("%s: %d series: %s", q.panel, n, expr)
		}
	}
}
