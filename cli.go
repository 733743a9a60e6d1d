package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	dockerapi "github.com/docker/docker/api"

	"github.com/swarmvault/swarmvault/check"
	"github.com/swarmvault/swarmvault/internal/suggest"
	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// Exit codes of the command line. check has its own (the same 0 and 2).
const (
	exitOK     = 0
	exitFailed = 1 // the plugin could not start or stopped on an error
	exitUsage  = 2 // the command line is wrong: nothing was done
)

// pluginFlags are the flags of the plugin mode, the one dockerd runs.
type pluginFlags struct {
	socket, dockerSocket, cpuProfile string
	logTimestamps                    bool
}

// commands are the first arguments that name a command; any other that
// does not start with - is refused, so that a typo never starts the plugin.
var commands = []string{"check", "version", "help"}

// usage is the top-level help. It is written out rather than made by
// PrintDefaults, which shows each flag with one dash: Go's flag package
// takes one or two, and the help uses two throughout.
var usage = fmt.Sprintf(`swarmvault: HashiCorp Vault secrets for Docker Swarm services. The binary is
the Docker managed plugin (a secret driver serving Swarm's secretprovider
interface from Vault) and the checker of compose files that use it.

Usage:
  swarmvault [flags]
      The plugin itself, as dockerd runs it: serves the plugin API on --socket
      until SIGTERM.
  swarmvault check [flags] COMPOSE_FILE...
      Checks the vault secrets of compose files before docker stack deploy
      (swarmvault check --help).
  swarmvault version [--format text|json]
      Prints the version, commit, Go version, platform and the Docker Engine
      API version (also swarmvault --version).
  swarmvault help [COMMAND]
      Prints this help, or a command's (also swarmvault --help, -h).

Flags of the plugin (plugin/config.json gives --log-timestamps=false):
  --socket PATH          Unix socket to serve the plugin API on
                         (default %s)
  --docker-socket PATH   Docker socket to use, for tests and the bench harness;
                         the managed plugin always uses its docker-socket
                         mount, the default (default %s)
  --cpuprofile FILE      write a CPU profile to FILE until the plugin stops
                         (for bench/)
  --log-timestamps=BOOL  start text log lines with their time (default true)

The plugin's settings are environment variables (VAULT_ADDR, VAULT_AUTH_METHOD,
...), set with docker plugin set <plugin> NAME=value: see docs/settings.md.

Exit status: 0 done; 1 the plugin could not start, or stopped on an error;
2 the command line is wrong (swarmvault check has its own, see its help).
`, provider.SocketPath, swarm.Socket)

const versionUsage = `Usage: swarmvault version [--format text|json]

Prints what this binary is. As text, one item a line:
  swarmvault VERSION
  commit: REVISION[ (modified)]      (unknown when the build recorded none)
  go: GO_VERSION
  platform: GOOS/GOARCH
  docker-api: up to API_VERSION, negotiated down with older engines
--format json prints the same as one object: version, commit, modified, go,
platform, docker_api.
`

// cli reads the command line (args without the program's name). When the
// plugin is to run, it returns the plugin's flags; otherwise it has done
// what args ask, or refused them, and returns nil and the exit code. A
// command, a typo or a bad flag never starts the plugin: they are all
// answered before the plugin's settings are read.
func cli(args []string, stdin io.Reader, stdout, stderr io.Writer) (*pluginFlags, int) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
			return nil, versionCmd(args[1:], stdout, stderr)
		}
		return pluginMode(args, stdout, stderr)
	}
	switch args[0] {
	case "check":
		// The compose checker for operators and CI: the plugin's own
		// parsers, without serving anything.
		return nil, check.Main(args[1:], stdin, stdout, stderr)
	case "version":
		return nil, versionCmd(args[1:], stdout, stderr)
	case "help":
		return nil, helpCmd(args[1:], stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "swarmvault: %s\n", unknownCommand(args[0]))
	return nil, exitUsage
}

// pluginMode parses the plugin's flags.
func pluginMode(args []string, stdout, stderr io.Writer) (*pluginFlags, int) {
	var f pluginFlags
	fs := flag.NewFlagSet("swarmvault", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the usage is ours, and the error is printed below
	fs.StringVar(&f.socket, "socket", provider.SocketPath, "")
	fs.StringVar(&f.dockerSocket, "docker-socket", swarm.Socket, "")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "")
	// plugin/config.json passes false: dockerd stamps every line it logs
	// for a plugin, and a second time in the text would only be noise.
	fs.BoolVar(&f.logTimestamps, "log-timestamps", true, "")
	showVersion := fs.Bool("version", false, "")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return nil, exitOK
	case err != nil:
		fmt.Fprintf(stderr, "swarmvault: %s\n\n%s", twoDashes(err), usage)
		return nil, exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "swarmvault: unexpected argument %q after the flags: a command comes first (swarmvault help lists the commands)\n", fs.Arg(0))
		return nil, exitUsage
	case *showVersion:
		return nil, versionCmd(nil, stdout, stderr)
	}
	return &f, exitOK
}

// flagName is a flag's name in the flag package's errors, which write it
// with one dash.
var flagName = regexp.MustCompile(`(: | for | for flag )-([A-Za-z])`)

// twoDashes is the text of a flag parsing error with the flag written as
// the help writes it.
func twoDashes(err error) string {
	s := err.Error()
	if loc := flagName.FindStringSubmatchIndex(s); loc != nil {
		at := loc[4] // the flag name's first letter
		s = s[:at] + "-" + s[at:]
	}
	return s
}

func helpCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "swarmvault help: one command at most, not %d\n", len(args))
		return exitUsage
	}
	switch args[0] {
	case "check":
		// Asked for, the help is the output: stdout, where check's own
		// --help writes it to stderr.
		return check.Main([]string{"--help"}, stdin, stdout, stdout)
	case "version":
		fmt.Fprint(stdout, versionUsage)
		return exitOK
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "swarmvault help: %s\n", unknownCommand(args[0]))
	return exitUsage
}

// unknownCommand is the refusal of a first argument that names no
// command, with the command it is closest to when there is one.
func unknownCommand(arg string) string {
	if c := closest(arg); c != "" {
		return fmt.Sprintf("unknown command %q: did you mean %s? (swarmvault help lists the commands)", arg, c)
	}
	return fmt.Sprintf("unknown command %q (swarmvault help lists the commands; the plugin itself runs with no command)", arg)
}

// closest is the command arg is a prefix of, or at most two edits from;
// "" if none.
func closest(arg string) string {
	arg = strings.ToLower(arg)
	best, bestDist := "", 3
	for _, c := range commands {
		if len(arg) >= 2 && strings.HasPrefix(c, arg) {
			return c
		}
		if d := suggest.Distance(arg, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// versionInfo is what swarmvault version prints.
type versionInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// DockerAPI is the Docker Engine API version the plugin's Docker client
	// (swarm.Dial) asks for at most: the library's default, which the
	// client negotiates down to an older engine's own.
	DockerAPI string `json:"docker_api"`
}

// buildVersion is this binary's versionInfo: the commit from the build's
// VCS stamp, when the build recorded one.
func buildVersion(bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{
		Version:   version,
		Commit:    "unknown",
		Go:        runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		DockerAPI: dockerapi.DefaultVersion,
	}
	if !ok || bi == nil {
		return v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				v.Commit = s.Value
			}
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v versionInfo) text() string {
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("swarmvault %s\ncommit: %s\ngo: %s\nplatform: %s\ndocker-api: up to %s, negotiated down with older engines\n",
		v.Version, commit, v.Go, v.Platform, v.DockerAPI)
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("swarmvault version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	format := fs.String("format", "text", "")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, versionUsage)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "swarmvault version: %s\n\n%s", twoDashes(err), versionUsage)
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "swarmvault version: unexpected argument %q\n\n%s", fs.Arg(0), versionUsage)
		return exitUsage
	}
	v := buildVersion(debug.ReadBuildInfo())
	switch *format {
	case "text":
		fmt.Fprint(stdout, v.text())
	case "json":
		b, _ := json.Marshal(v) // strings and a bool: cannot fail
		fmt.Fprintf(stdout, "%s\n", b)
	default:
		fmt.Fprintf(stderr, "swarmvault version: --format %s is not a format: use text or json\n", *format)
		return exitUsage
	}
	return exitOK
}
