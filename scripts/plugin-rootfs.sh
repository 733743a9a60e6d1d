#!/usr/bin/env bash
# scripts/plugin-rootfs.sh REF: prints the rootfs diff ID of the plugin REF
# names in its registry: what a manager that runs it shows with
#   docker plugin inspect -f '{{index .Config.rootfs.diff_ids 0}}' vault
# REF is REGISTRY/NAME@sha256:… (checked against the manifest it gets) or
# REGISTRY/NAME:TAG (no tag: latest); without a registry host, Docker Hub.
#
# It asks the registry's v2 API: the manifest (schema 2) → its config blob's
# digest → the config blob (checked against that digest) → rootfs.diff_ids.
# https first; plain http only when the host does not speak TLS on that port
# (as make push does for a registry without TLS); a certificate that does not
# verify is an error, not a reason to drop to http (CURL_CA_BUNDLE=ca.pem for
# a private CA).
#
# Environment: REGISTRY_USER and REGISTRY_PASSWORD, for a registry with basic
# auth, or for the token server of one with bearer tokens (Docker Hub style:
# WWW-Authenticate: Bearer realm=…,service=…,scope=…); without them a bearer
# registry is asked for an anonymous pull token. REGISTRY_TIMEOUT bounds each
# request (default 30 s).
#
# Needs curl, sed, grep, tr (and sha256sum, from coreutils, for the checks).
set -euo pipefail

prog=plugin-rootfs.sh
die() {
	echo "$prog: $*" >&2
	exit 1
}
[ $# = 1 ] && [ -n "$1" ] || {
	echo "usage: $0 REGISTRY/NAME@sha256:DIGEST | REGISTRY/NAME:TAG" >&2
	exit 2
}
ref=$1
timeout=${REGISTRY_TIMEOUT:-30}

# --- the reference -------------------------------------------------------
want_digest=""
case "$ref" in
*@*)
	want_digest=${ref#*@}
	ref=${ref%%@*}
	printf '%s' "$want_digest" | grep -Eq '^sha256:[0-9a-f]{64}$' ||
		die "$1: the digest after @ must be sha256: and 64 hex digits"
	;;
esac
first=${ref%%/*}
if [ "$first" = "$ref" ] || ! printf '%s' "$first" | grep -Eq '[.:]|^localhost$'; then
	# No registry host (name, user/name): Docker Hub, as docker does.
	host=registry-1.docker.io
	repo=$ref
	[ "${repo#*/}" != "$repo" ] || repo=library/$repo
else
	host=$first
	repo=${ref#*/}
	[ "$host" != docker.io ] && [ "$host" != index.docker.io ] || host=registry-1.docker.io
fi
last=${repo##*/}
tag=latest
if [ "${last#*:}" != "$last" ]; then
	tag=${last#*:}
	repo=${repo%:*}
fi
reference=${want_digest:-$tag}
printf '%s' "$repo" | grep -Eq '^[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$' ||
	die "$1: \"$repo\" is not a repository name (lower-case, digits, . _ - and /)"
printf '%s' "$reference" | grep -Eq '^(sha256:[0-9a-f]{64}|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$' ||
	die "$1: \"$reference\" is not a tag"

# --- HTTP -----------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

curl_args=(-sS --connect-timeout 10 --max-time "$timeout")
# A loopback registry is never reached through a proxy.
case "$host" in
localhost | localhost:* | 127.* | \[::1\] | \[::1\]:*) curl_args+=(--noproxy '*') ;;
esac

auth=() # curl arguments that authenticate, once the registry asked
# get URL: the body in $tmp/body, the headers in $tmp/headers (CR removed);
# prints the HTTP status (000: no HTTP answer, curl's reason in $tmp/err).
get() {
	local code
	code=$(curl "${curl_args[@]}" "${auth[@]}" -L -o "$tmp/body" -D "$tmp/headers.raw" -w '%{http_code}' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"$1" 2>"$tmp/err") || true
	tr -d '\r' <"$tmp/headers.raw" >"$tmp/headers" 2>/dev/null || : >"$tmp/headers"
	echo "${code:-000}"
}

# The scheme: https, unless the host answers TLS with something else.
base=https://$host
code=$(get "$base/v2/")
if [ "$code" = 000 ]; then
	if grep -qiE 'wrong version number|unexpected eof|packet length too long|record layer failure|SSL_ERROR_SYSCALL|reset by peer' "$tmp/err"; then
		base=http://$host
		code=$(get "$base/v2/")
	fi
	[ "$code" != 000 ] || die "no answer from $host: $(tr '\n' ' ' <"$tmp/err")"
fi
case "$base" in
http://*)
	[ -z "${REGISTRY_USER:-}" ] || case "$host" in
	localhost | localhost:* | 127.* | \[::1\] | \[::1\]:*) ;;
	*) echo "$prog: warning: $host has no TLS: REGISTRY_USER's password goes over plain http" >&2 ;;
	esac
	;;
esac

# header NAME: the value of the last NAME header (after redirects).
header() { grep -i "^$1:" "$tmp/headers" | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//'; }
# param NAME: a parameter of the WWW-Authenticate challenge in $challenge.
param() { printf '%s' "$challenge" | sed -n "s/.*[ ,]$1=\"\\([^\"]*\\)\".*/\\1/p"; }
# json_string KEY: the first string value of KEY in $tmp/body.
json_string() { tr -d '\n' <"$tmp/body" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }

have_creds() { [ -n "${REGISTRY_USER:-}" ] && [ -n "${REGISTRY_PASSWORD:-}" ]; }

# authenticate: answers the challenge of the 401 in $tmp/headers.
authenticate() {
	challenge=$(header WWW-Authenticate)
	case "$challenge" in
	[Bb]asic*)
		have_creds || die "$host asks for basic auth: set REGISTRY_USER and REGISTRY_PASSWORD"
		auth=(-u "$REGISTRY_USER:$REGISTRY_PASSWORD")
		;;
	[Bb]earer*)
		local realm service scope
		realm=$(param realm)
		service=$(param service)
		scope=$(param scope)
		[ -n "$realm" ] || die "$host asks for a bearer token but names no realm: WWW-Authenticate: $challenge"
		case "$realm" in
		https://*) ;;
		http://*) [ "${base%%://*}" = http ] || die "$host's token server $realm is not https: refusing to send credentials there" ;;
		*) die "$host's token server \"$realm\" is not an http(s) URL" ;;
		esac
		# The challenge of /v2/ names no scope: a pull of this repository.
		[ -n "$scope" ] || scope="repository:$repo:pull"
		local targs=(-G)
		[ -z "$service" ] || targs+=(--data-urlencode "service=$service")
		targs+=(--data-urlencode "scope=$scope")
		have_creds && targs+=(-u "$REGISTRY_USER:$REGISTRY_PASSWORD")
		local tcode
		tcode=$(curl "${curl_args[@]}" "${targs[@]}" -o "$tmp/body" -w '%{http_code}' "$realm" 2>"$tmp/err") || tcode=000
		[ "$tcode" = 200 ] || die "the token server $realm answered HTTP $tcode$( [ "$tcode" != 000 ] || printf ': %s' "$(tr '\n' ' ' <"$tmp/err")")$(have_creds || printf ' (REGISTRY_USER and REGISTRY_PASSWORD are not set: an anonymous pull token)')"
		local token
		token=$(json_string token)
		[ -n "$token" ] || token=$(json_string access_token)
		[ -n "$token" ] || die "the token server $realm gave no token"
		auth=(-H "Authorization: Bearer $token")
		;;
	"") die "$host answered HTTP 401 without a WWW-Authenticate challenge" ;;
	*) die "$host asks for an authentication this script does not speak: WWW-Authenticate: $challenge" ;;
	esac
}

# fetch PATH WHAT NAME: GET $base/v2/$repo/PATH (the WHAT of NAME),
# authenticating once on a 401.
fetch() {
	local code
	code=$(get "$base/v2/$repo/$1")
	if [ "$code" = 401 ] && [ ${#auth[@]} = 0 ]; then
		authenticate
		code=$(get "$base/v2/$repo/$1")
	fi
	case "$code" in
	200) ;;
	401 | 403) die "$host refused the $2 $3 (HTTP $code)$(have_creds || printf ': set REGISTRY_USER and REGISTRY_PASSWORD')" ;;
	404) die "$host has no $2 $3 (HTTP 404)" ;;
	000) die "no answer from $host for the $2 $3: $(tr '\n' ' ' <"$tmp/err")" ;;
	*) die "$host answered HTTP $code for the $2 $3: $(head -c 300 "$tmp/body" | tr '\n' ' ')" ;;
	esac
}

sha256_of() { sha256sum "$1" | sed 's/^\([0-9a-f]*\).*/sha256:\1/'; }

# --- manifest → config → rootfs ------------------------------------------
# A 401 on /v2/ is answered on the manifest's, whose challenge names the scope.
fetch "manifests/$reference" manifest "$repo:$reference"
if [ -n "$want_digest" ]; then
	got=$(sha256_of "$tmp/body")
	[ "$got" = "$want_digest" ] || die "the manifest $host sent for $want_digest has digest $got"
fi
manifest=$(tr -d '\n\t' <"$tmp/body")
media=$(header Content-Type)
case "$media" in
*manifest.list* | *image.index*) die "$1 is a manifest list (an index), not a plugin: a plugin has one manifest per architecture; pick the tag or digest of one" ;;
esac
# The config descriptor: {"mediaType": …, "size": …, "digest": "sha256:…"}
# (no nested objects), matched as one object.
config=$(printf '%s' "$manifest" | grep -oE '"config"[[:space:]]*:[[:space:]]*\{[^{}]*\}' | head -n 1) ||
	die "$1: the manifest has no config (schema 1, or not a manifest): $(printf '%s' "$manifest" | head -c 200)"
config_digest=$(printf '%s' "$config" | sed -n 's/.*"digest"[[:space:]]*:[[:space:]]*"\(sha256:[0-9a-f]\{64\}\)".*/\1/p')
config_type=$(printf '%s' "$config" | sed -n 's/.*"mediaType"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
[ -n "$config_digest" ] || die "$1: the manifest's config has no sha256 digest"
case "$config_type" in
application/vnd.docker.plugin.v1+json | "") ;;
*) die "$1 is not a plugin: its config is $config_type (a plugin's is application/vnd.docker.plugin.v1+json)" ;;
esac

fetch "blobs/$config_digest" "config blob" "$config_digest"
got=$(sha256_of "$tmp/body")
[ "$got" = "$config_digest" ] || die "the config blob $host sent for $config_digest has digest $got"
# "rootfs": {"type": "layers", "diff_ids": ["sha256:…"]}: no nested objects.
rootfs=$(tr -d '\n\t' <"$tmp/body" | grep -oE '"rootfs"[[:space:]]*:[[:space:]]*\{[^{}]*\}' | head -n 1) ||
	die "$1: the plugin's config has no rootfs"
diff_id=$(printf '%s' "$rootfs" | sed -n 's/.*"diff_ids"[[:space:]]*:[[:space:]]*\[[[:space:]]*"\(sha256:[0-9a-f]\{64\}\)".*/\1/p')
[ -n "$diff_id" ] || die "$1: the plugin's config has no rootfs.diff_ids: $rootfs"
echo "$diff_id"
