//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// docker runs the docker CLI and returns its stdout; a failure fails the test
// with stderr. The tests drive Docker exactly as a user does.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := tryDocker(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func tryDocker(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dockerEnv runs docker with extra environment (stack deploy interpolation).
func dockerEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// waitFor polls cond until it returns true or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runningContainers returns the IDs of the running containers of a service.
func runningContainers(t *testing.T, service string) []string {
	t.Helper()
	out := docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service, "--filter", "status=running")
	return strings.Fields(out)
}

// waitRunning waits until n tasks of service run, and returns their containers.
func waitRunning(t *testing.T, service string, n int) []string {
	t.Helper()
	return waitRunningWithin(t, service, n, 90*time.Second)
}

// waitRunningWithin is waitRunning with a patience of its own.
func waitRunningWithin(t *testing.T, service string, n int, patience time.Duration) []string {
	t.Helper()
	var ids []string
	waitFor(t, fmt.Sprintf("%d running tasks of %s", n, service), patience, func() (bool, string) {
		ids = runningContainers(t, service)
		return len(ids) == n, taskStates(service)
	})
	return ids
}

// taskStates describes a service's tasks for failure messages.
func taskStates(service string) string {
	out, _ := tryDocker("service", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", service)
	return strings.TrimSpace(out)
}

// readSecretFile reads /run/secrets/<name> inside a running container. exec
// without a TTY gives the bytes unchanged.
func readSecretFile(t *testing.T, container, name string) []byte {
	t.Helper()
	cmd := exec.Command("docker", "exec", container, "cat", "/run/secrets/"+name)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("reading /run/secrets/%s in %s: %v: %s", name, container, err, stderr.String())
	}
	return stdout.Bytes()
}

// createService starts a busybox service on the host network (all traffic
// stays on loopback) that sleeps with the given secrets attached.
func createService(t *testing.T, name string, extra []string, secretNames ...string) {
	t.Helper()
	args := []string{"service", "create", "--detach", "--name", name, "--network", "host"}
	for _, s := range secretNames {
		args = append(args, "--secret", s)
	}
	args = append(args, extra...)
	args = append(args, testImage, "sleep", "3600")
	docker(t, args...)
	t.Cleanup(func() { tryDocker("service", "rm", name) })
}

// createDriverSecret makes a secret served by the plugin, as
// `docker secret create --driver … --label …` does.
func createDriverSecret(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	args := []string{"secret", "create", "--driver", pluginName}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, name)
	docker(t, args...)
	t.Cleanup(func() { removeSecret(name) })
}

// removeSecret removes a secret, retrying while a service being removed
// still uses it.
func removeSecret(name string) {
	for i := 0; i < 40; i++ {
		if _, err := tryDocker("secret", "rm", name); err == nil || strings.Contains(err.Error(), "No such secret") {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
