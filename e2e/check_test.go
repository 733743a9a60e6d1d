//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkRow is a row of swarmvault check -format json.
type checkRow struct {
	Secret, Name, Service, Status, Problem string
	Policies                               []string
}

// swarmvaultCheck runs the plugin's own binary (bin/swarmvault, what the
// plugin's rootfs holds) as swarmvault check --vault, with the plugin's
// settings of configurePlugin and env for the compose files'
// interpolation, as root: the operator's token. It returns the exit code
// and the rows.
func swarmvaultCheck(t *testing.T, role, stack string, env []string, files ...string) (int, []checkRow) {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("..", "bin", "swarmvault"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"check", "--vault", "--stack", stack, "--driver", pluginName,
		"--token-role", role, "--policy-template", "{{.ServiceName}}", "-format", "json"}
	cmd := exec.Command(bin, append(args, files...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("swarmvault check: %v (make e2e builds bin/swarmvault)", err)
	}
	var out struct {
		Results []checkRow
		Exit    int
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("swarmvault check exited %d without JSON: %v; stderr: %s", code, err, stderr.String())
	}
	if out.Exit != code {
		t.Errorf("swarmvault check's JSON says exit %d, the process %d", out.Exit, code)
	}
	return code, out.Results
}

// testCheckFlagsStack: swarmvault check flags each mistake of a stack, and
// the deployed stack fails exactly as it said: each task refused, with the
// check's sentence in the leader's dockerd log.
func testCheckFlagsStack(t *testing.T, f *fixture, run string) {
	stack := run + "flag"
	services := []string{"typo", "nofield", "denied", "badtype", "pinned"}
	for _, svc := range services {
		f.servicePolicy(t, stack+"_"+svc, "secret/data/"+run+"/*", f.kv1+"/*")
	}
	env := []string{
		"SWARMVAULT_DRIVER=" + pluginName,
		"SWARMVAULT_APP_IMAGE=" + testImage,
		"SWARMVAULT_PATH=secret/" + run + "/db",
		"SWARMVAULT_DENIED_PATH=secret/" + run + "-other/db",
		"SWARMVAULT_KV1_PATH=" + f.kv1 + "/app",
	}
	code, rows := swarmvaultCheck(t, f.role, stack, env, "testdata/flagged.yml")
	if code != 1 {
		t.Errorf("swarmvault check exited %d on a stack with a mistake per service, want 1", code)
	}
	problems := map[string]string{}
	for _, r := range rows {
		if r.Status != "problem" {
			t.Errorf("service %s, secret %s: %s, want a problem", r.Service, r.Secret, r.Status)
			continue
		}
		problems[strings.TrimPrefix(r.Service, stack+"_")] = r.Problem
	}
	for want, sentence := range map[string]string{
		"typo":    "label vault.feild is not a swarmvault label: did you mean vault.field?",
		"nofield": "label vault.field=\"pasword\" names no field of Vault path secret/" + run + "/db",
		"denied":  "permission denied to read Vault path secret/" + run + "-other/db",
		"badtype": "label vault.type=\"secret\" is not supported",
		"pinned":  "mount " + f.kv1 + "/ is KV v1, which keeps no versions",
	} {
		if !strings.Contains(problems[want], sentence) {
			t.Errorf("swarmvault check on service %s: %q, want it to say %q", want, problems[want], sentence)
		}
	}
	if t.Failed() {
		return
	}

	mark := logMark(t)
	dockerEnv(t, env, "stack", "deploy", "--compose-file", "testdata/flagged.yml", stack)
	t.Cleanup(func() {
		tryDocker("stack", "rm", stack)
		waitGone(t, "label=com.docker.stack.namespace="+stack)
	})
	for _, svc := range services {
		// The check's sentence is the plugin's log line, word for word.
		waitForLogLine(t, mark, problems[svc])
		if ids := runningContainers(t, stack+"_"+svc); len(ids) != 0 {
			t.Errorf("service %s runs, though swarmvault check flagged it: %s", svc, taskStates(stack+"_"+svc))
		}
	}
}
