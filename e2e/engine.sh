#!/usr/bin/env bash
# A current Docker Engine for the test bed, next to Debian's 20.10 (API
# 1.41): dockerd from moby v2 (module proxy) and the runc its containers
# need (Debian 12's runc 1.1.5 fails with `namespace {"time" ""} does not
# exist`), built once per machine and cached by version. The route was
# measured first: ../shared/notes/testbed.md, "A current Docker Engine".
#
#   e2e/engine.sh build   build (or reuse) both; prints the directory that
#                         holds dockerd and runc (put it first on PATH)
set -euo pipefail

moby_version=v2.0.0-beta.24
runc_version=v1.4.3
cache="${XDG_CACHE_HOME:-$HOME/.cache}/swarmvault"
dir="$cache/engine-moby-$moby_version-runc-$runc_version"

log() { printf 'engine.sh: %s\n' "$*" >&2; }

build() {
	if [ -x "$dir/dockerd" ] && [ -x "$dir/runc" ]; then
		echo "$dir"
		return
	fi
	mkdir -p "$cache"
	exec 9>"$cache/engine.lock"
	flock 9
	if [ -x "$dir/dockerd" ] && [ -x "$dir/runc" ]; then
		echo "$dir"
		return
	fi
	# runc's seccomp support links libseccomp (cgo): without it tasks fail
	# with "seccomp: config provided but seccomp not supported".
	if ! dpkg -s libseccomp-dev pkg-config >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || { log "need root to install libseccomp-dev and pkg-config"; exit 1; }
		log "installing libseccomp-dev and pkg-config"
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq libseccomp-dev pkg-config >/dev/null
	fi
	local tmp
	tmp=$(mktemp -d "$cache/.engine-XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	log "building dockerd $moby_version (once per machine; minutes) -> $dir"
	mkdir -p "$tmp/mod" "$tmp/bin"
	(cd "$tmp/mod" && go mod init engine >/dev/null 2>&1 &&
		GOFLAGS=-mod=mod GOBIN="$tmp/bin" CGO_ENABLED=1 go install \
			-tags "exclude_graphdriver_btrfs exclude_graphdriver_devicemapper" \
			"github.com/moby/moby/v2/cmd/dockerd@$moby_version")
	log "building runc $runc_version with seccomp"
	# runc's go.mod has replace lines, so go install …@version refuses it:
	# build it from its module's source.
	local src
	src=$(cd "$tmp/mod" && go mod download -json "github.com/opencontainers/runc@$runc_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	cp -r "$src" "$tmp/runc"
	chmod -R u+w "$tmp/runc"
	(cd "$tmp/runc" && CGO_ENABLED=1 go build -mod=mod -trimpath -tags seccomp -o "$tmp/bin/runc" .)
	mkdir -p "$dir.new"
	mv "$tmp/bin/dockerd" "$tmp/bin/runc" "$dir.new/"
	rm -rf "$dir"
	mv "$dir.new" "$dir"
	echo "$dir"
}

case "${1:-}" in
build) build ;;
*)
	echo "usage: $0 build" >&2
	exit 2
	;;
esac
