package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// Each command, typo and bad flag is answered by cli itself: it returns no
// plugin flags, so main never reaches realMain (the settings, the socket).
func TestCLIAnswersWithoutServing(t *testing.T) {
	versionText := buildVersion(debug.ReadBuildInfo()).text()
	for _, tt := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
		stdoutPrefix   string
	}{
		{name: "version", args: []string{"version"}, stdout: versionText},
		{name: "--version", args: []string{"--version"}, stdout: versionText},
		{name: "-version", args: []string{"-version"}, stdout: versionText},
		{name: "--version after plugin flags", args: []string{"--socket", "/x", "--version"}, stdout: versionText},
		{name: "help", args: []string{"help"}, stdout: usage},
		{name: "--help", args: []string{"--help"}, stdout: usage},
		{name: "-h", args: []string{"-h"}, stdout: usage},
		{name: "help help", args: []string{"help", "help"}, stdout: usage},
		{name: "help version", args: []string{"help", "version"}, stdout: versionUsage},
		{name: "version --help", args: []string{"version", "--help"}, stdout: versionUsage},
		{name: "help check", args: []string{"help", "check"}, stdoutPrefix: "Usage: swarmvault check [flags] COMPOSE_FILE...\n"},
		{name: "a typo", args: []string{"chek"}, code: 2,
			stderr: `swarmvault: unknown command "chek": did you mean check? (swarmvault help lists the commands)` + "\n"},
		{name: "a transposition", args: []string{"versoin"}, code: 2,
			stderr: `swarmvault: unknown command "versoin": did you mean version? (swarmvault help lists the commands)` + "\n"},
		{name: "a prefix", args: []string{"he"}, code: 2,
			stderr: `swarmvault: unknown command "he": did you mean help? (swarmvault help lists the commands)` + "\n"},
		{name: "no command near", args: []string{"serve"}, code: 2,
			stderr: `swarmvault: unknown command "serve" (swarmvault help lists the commands; the plugin itself runs with no command)` + "\n"},
		{name: "help of a typo", args: []string{"help", "chek"}, code: 2,
			stderr: `swarmvault help: unknown command "chek": did you mean check? (swarmvault help lists the commands)` + "\n"},
		{name: "an unknown flag", args: []string{"--bogus"}, code: 2,
			stderr: "swarmvault: flag provided but not defined: --bogus\n\n" + usage},
		{name: "a bad flag value", args: []string{"-log-timestamps=maybe"}, code: 2,
			stderr: `swarmvault: invalid boolean value "maybe" for --log-timestamps: parse error` + "\n\n" + usage},
		{name: "a flag without its value", args: []string{"--socket"}, code: 2,
			stderr: "swarmvault: flag needs an argument: --socket\n\n" + usage},
		{name: "a command after flags", args: []string{"--socket", "/x", "check"}, code: 2,
			stderr: `swarmvault: unexpected argument "check" after the flags: a command comes first (swarmvault help lists the commands)` + "\n"},
		{name: "a version format", args: []string{"version", "--format", "yaml"}, code: 2,
			stderr: "swarmvault version: --format yaml is not a format: use text or json\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			flags, code := cli(tt.args, strings.NewReader(""), &stdout, &stderr)
			if flags != nil {
				t.Fatalf("cli(%q) would start the plugin", tt.args)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if tt.stdoutPrefix != "" {
				if !strings.HasPrefix(stdout.String(), tt.stdoutPrefix) {
					t.Errorf("stdout:\n%s\nwant it to start with:\n%s", stdout.String(), tt.stdoutPrefix)
				}
			} else if stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tt.stdout)
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tt.stderr)
			}
		})
	}
}

// No command, or flags only: the plugin, with the flags dockerd gives.
func TestCLIPluginMode(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want pluginFlags
	}{
		{"no arguments", nil, pluginFlags{socket: provider.SocketPath, dockerSocket: swarm.Socket, logTimestamps: true}},
		{"as plugin/config.json runs it", []string{"-log-timestamps=false"}, pluginFlags{socket: provider.SocketPath, dockerSocket: swarm.Socket}},
		{"every flag, two dashes", []string{"--socket", "/s", "--docker-socket", "/d", "--cpuprofile", "/p", "--log-timestamps=false"}, pluginFlags{socket: "/s", dockerSocket: "/d", cpuProfile: "/p"}},
		{"every flag, one dash (bench/)", []string{"-socket", "/s", "-docker-socket", "/d", "-cpuprofile", "/p"}, pluginFlags{socket: "/s", dockerSocket: "/d", cpuProfile: "/p", logTimestamps: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			flags, code := cli(tt.args, strings.NewReader(""), &stdout, &stderr)
			if flags == nil || code != 0 {
				t.Fatalf("cli(%q) = %v, %d; stderr %s", tt.args, flags, code, stderr.String())
			}
			if *flags != tt.want {
				t.Errorf("flags %+v, want %+v", *flags, tt.want)
			}
			if stdout.Len()+stderr.Len() != 0 {
				t.Errorf("the plugin mode printed %q %q", stdout.String(), stderr.String())
			}
		})
	}
}

// The help names every mode and writes every plugin flag with two dashes.
func TestUsageListsTheModesAndFlags(t *testing.T) {
	for _, want := range []string{
		"swarmvault [flags]\n", "swarmvault check [flags] COMPOSE_FILE...\n", "swarmvault version [--format text|json]\n",
		"swarmvault help [COMMAND]\n", "swarmvault check --help", "--version", "--help",
		"--socket PATH", "--docker-socket PATH", "--cpuprofile FILE", "--log-timestamps=BOOL",
		"(default " + provider.SocketPath + ")", "(default " + swarm.Socket + ")",
	} {
		if !strings.Contains(usage, want) {
			t.Errorf("the usage lacks %q", want)
		}
	}
	if oneDash := regexp.MustCompile(`(^|[\s(])-[a-z]{2,}`).FindString(usage); oneDash != "" {
		t.Errorf("the usage writes a flag with one dash: %q", oneDash)
	}
	for i, line := range strings.Split(usage, "\n") {
		if len(line) > 80 {
			t.Errorf("usage line %d is %d wide: %s", i+1, len(line), line)
		}
	}
}

func TestVersionInfo(t *testing.T) {
	stamped := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.modified", Value: "true"},
	}}
	v := buildVersion(stamped, true)
	platform := runtime.GOOS + "/" + runtime.GOARCH
	want := "swarmvault dev\n" +
		"commit: 0123456789abcdef0123456789abcdef01234567 (modified)\n" +
		"go: " + runtime.Version() + "\n" +
		"platform: " + platform + "\n" +
		"docker-api: up to " + v.DockerAPI + ", negotiated down with older engines\n"
	if v.text() != want {
		t.Errorf("text:\n%s\nwant:\n%s", v.text(), want)
	}
	b, _ := json.Marshal(v)
	wantJSON := `{"version":"dev","commit":"0123456789abcdef0123456789abcdef01234567","modified":true,"go":"` + runtime.Version() +
		`","platform":"` + platform + `","docker_api":"` + v.DockerAPI + `"}`
	if string(b) != wantJSON {
		t.Errorf("json %s\nwant %s", b, wantJSON)
	}

	for _, bi := range []*debug.BuildInfo{nil, {}, {Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "false"}}}} {
		if v := buildVersion(bi, bi != nil); v.Commit != "unknown" || v.Modified || !strings.HasPrefix(v.text(), "swarmvault dev\ncommit: unknown\n") {
			t.Errorf("without a VCS stamp: %+v", v)
		}
	}

	// The version swarm.Dial's client asks for before negotiating down:
	// the library's, not a number of ours.
	c, err := client.NewClientWithOpts(client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	if v.DockerAPI != c.ClientVersion() || !regexp.MustCompile(`^1\.\d+$`).MatchString(v.DockerAPI) {
		t.Errorf("docker_api %s, the client's %s", v.DockerAPI, c.ClientVersion())
	}
}

func TestVersionJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if _, code := cli([]string{"--version", "--format", "json"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var v versionInfo
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.Version != version || v.Go != runtime.Version() || v.DockerAPI == "" {
		t.Errorf("%s: %+v %v", stdout.String(), v, err)
	}
}

func TestClosestCommand(t *testing.T) {
	for arg, want := range map[string]string{
		"chek": "check", "CHECK": "check", "cehck": "check", "versoin": "version", "ver": "version",
		"hlep": "help", "hel": "help", "serve": "", "x": "", "": "", "run": "",
	} {
		if got := closest(arg); got != want {
			t.Errorf("closest(%q) = %q, want %q", arg, got, want)
		}
	}
}
