package provider

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/secrets"
)

// badLabels are labels each of which alone makes a request fail: what a
// careless or hostile secret creator can write.
var badLabels = []map[string]string{
	{"vault.path": "secret/../kv1/app/db"},
	{"vault.path": "secret/./app/db"},
	{"vault.path": "secret//app/db"},
	{"vault.path": ".."},
	{"vault.path": "secret/app/db\nlevel=error msg=\"forged\""},
	{"vault.path": "secret/app/db\r\x1b[31m"},
	{"vault.path": "secret/app/db\u2028forged"},
	{"vault.path": "secret/" + strings.Repeat("p", 5000)},
	{"vault.path": "secret/app/\xff\xfe"},
	{"vault.path": ""},
	{"vault.format": "yaml\nlevel=error"},
	{"vault.format": strings.Repeat("f", 5000)},
	{"vault.version": "-1"},
	{"vault.version": "1e9999"},
	{"vault.version": "2\n"},
	{"vault.reuse": "maybe\x00"},
	{"vault.wrap": "forever\nand ever"},
	{"vault.wrap": "-5m"},
	{"vault.type": "pki\nlevel=error"},
	{"vault.type": strings.Repeat("t", 5000)},
	{"vault.token.ttl": "1y\n"},
	{"vault.token.policies": " , ,"},
	{"vault.feild": "password"},
	{"vault.x\nlevel=error msg=forged": "1"},
	{"vault." + strings.Repeat("k", 5000): "1"},
	{"vault.template": "{{.a"},
	{"vault.template": "{{template \"x\"}}"},
	{"vault.template": "{{.nope}}"},
	{"vault.template": "{{range .password}}{{end}}"},
	{"vault.format": "template"},
	{"vault.field": "nope\nlevel=error"},
	{"vault.field": strings.Repeat("n", 5000)},
	{"vault.param.x": "1"},
	{"vault.param.": "1"},
	{"dk.almbrand.docker.plugin.secretprovider.vault.path": "secret/other"},
	{"vault.wrap": "true", "vault.field": "nope"},
	{"vault.wrap": "true", "vault.reuse": "true"},
	{"vault.wrap": "true", "vault.format": "template"},
}

// goodLabels are labels that are fine on their own, mixed in so that the
// bad one is not always alone.
var goodLabels = []map[string]string{
	{"vault.path": "secret/app/db"},
	{"vault.field": "password"},
	{"vault.format": "json"},
	{"vault.format": "env"},
	{"vault.version": "1"},
	{"vault.reuse": "false"},
	{"com.docker.stack.namespace": "app"},
	{"unrelated.label": "x\ny"},
}

// malformedLabelSets makes n label sets, each with at least one bad label.
func malformedLabelSets(n int) []map[string]string {
	r := rand.New(rand.NewPCG(8, 200))
	var sets []map[string]string
	for len(sets) < n {
		set := map[string]string{}
		for range r.IntN(3) {
			for k, v := range goodLabels[r.IntN(len(goodLabels))] {
				set[k] = v
			}
		}
		for range 1 + r.IntN(2) {
			for k, v := range badLabels[r.IntN(len(badLabels))] {
				set[k] = v
			}
		}
		sets = append(sets, set)
	}
	// Every bad label at least once, alone and with a path.
	for i, bad := range badLabels {
		if i < n {
			sets[i] = bad
		}
	}
	return sets
}

// Malformed label sets through the real socket handler: each is answered
// with a one-line error of bounded length and no value, nothing panics,
// and the plugin serves a good request afterwards.
func TestMalformedLabelSetsThroughTheSocket(t *testing.T) {
	vault := newFakeVault(t)
	p, logs := newTestProvider(t, vault.URL, Options{})
	client, _, _ := serve(t, p)
	post := func(labels map[string]string) secrets.Response {
		t.Helper()
		body, err := json.Marshal(Request{Request: secrets.Request{SecretName: "db_pw", SecretLabels: labels, ServiceName: "app", TaskID: "t1"}, NodeID: "n1"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post("http://plugin"+getPath, "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("the plugin stopped answering: %v", err)
		}
		defer resp.Body.Close()
		var r secrets.Response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		if (r.Err != "") != (resp.StatusCode == http.StatusInternalServerError) {
			t.Errorf("status %d with Err %q", resp.StatusCode, r.Err)
		}
		return r
	}

	sets := malformedLabelSets(250)
	for i, labels := range sets {
		r := post(labels)
		desc := fmt.Sprintf("set %d %q", i, labels)
		switch {
		case r.Err == "":
			t.Errorf("%s: served %d bytes", desc, len(r.Value))
		case len(r.Value) != 0:
			t.Errorf("%s: a value with the error", desc)
		case strings.ContainsAny(r.Err, "\n\r\u2028") || len(r.Err) > MaxErrLen:
			t.Errorf("%s: Err is not one bounded line (%d bytes): %q", desc, len(r.Err), r.Err)
		case strings.Contains(r.Err, "internal error"):
			t.Errorf("%s: the request panicked: %s", desc, r.Err)
		case strings.Contains(r.Err, "s3cr3t"):
			t.Errorf("%s: Err holds the value: %s", desc, r.Err)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("a log line that is not an entry of its own (forged?): %q", line)
		}
		if len(line) > 2*MaxErrLen {
			t.Errorf("a log line of %d bytes", len(line))
		}
	}
	if r := post(map[string]string{"vault.path": "secret/app/db", "vault.field": "password"}); r.Err != "" || string(r.Value) != testPassword {
		t.Errorf("after %d malformed requests: Value %q Err %q", len(sets), r.Value, r.Err)
	}
}
