package vaultkv

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
)

// StatusIs tells whether err holds a Vault answer of HTTP status code.
func StatusIs(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// Forbidden tells whether Vault refused err's call with 403: the token
// lacks a permission, is not valid, or (sys/internal/ui/mounts) the path
// is on no mount.
func Forbidden(err error) bool { return StatusIs(err, http.StatusForbidden) }

// InvalidToken tells a refused token from a token that lacks a permission:
// Vault answers 403 to both, and adds "invalid token" only for a token it
// no longer knows (expired, revoked). Only then does logging in again
// help; for a missing permission it would be a login per request.
func InvalidToken(err error) bool {
	return saying(err, http.StatusForbidden, "invalid token")
}

// BadRequestSaying tells whether Vault refused err's call with 400 and an
// error that contains any of texts: Vault's only way to say which 400 it
// is (an unknown accessor, a failed check-and-set).
func BadRequestSaying(err error, texts ...string) bool {
	return saying(err, http.StatusBadRequest, texts...)
}

func saying(err error, code int, texts ...string) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != code {
		return false
	}
	for _, e := range re.Errors {
		for _, t := range texts {
			if strings.Contains(e, t) {
				return true
			}
		}
	}
	return false
}

// ErrorText is err's text for an error sentence, with a Vault response
// error in it shown as "HTTP <status>: <causes>" on one line:
// api.ResponseError's own text spans lines and repeats the method and URL.
// For a *api.ResponseError itself, it is that short form alone.
func ErrorText(err error) string {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return err.Error()
	}
	short := "HTTP " + strconv.Itoa(re.StatusCode) + ": " + causes(re)
	return strings.Replace(err.Error(), re.Error(), short, 1)
}

// causes is the text of Vault's error list, one line: Vault (and the
// multierror lists it sends) put each cause on its own line with a bullet.
func causes(re *api.ResponseError) string {
	var parts []string
	for _, e := range re.Errors {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line == "" || strings.HasSuffix(line, "errors occurred:") || strings.HasSuffix(line, "error occurred:") {
				continue
			}
			parts = append(parts, line)
		}
	}
	if len(parts) == 0 {
		// A proxy's answer, or Vault's without a body.
		return "no reason given"
	}
	return strings.Join(parts, "; ")
}

// NotServing says why Vault answered that it cannot serve anyone now,
// whatever the call and its token: sealed, not the active node, or a rate
// limit quota (HTTP 429). what is the fact and fix what an operator does;
// ok is false for any other error. fix names no retry: what retries is
// the caller's to say. Such an answer is about Vault, not about
// the policies or the labels a task's error would otherwise point at.
func NotServing(err error) (what, fix string, ok bool) {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return "", "", false
	}
	switch {
	case saying(err, http.StatusServiceUnavailable, "Vault is sealed"):
		return "Vault is sealed", "unseal it (vault operator unseal)", true
	case re.StatusCode == http.StatusServiceUnavailable:
		return "Vault cannot serve now (HTTP 503: " + causes(re) + ")", "check vault status on its nodes (an active node, unsealed)", true
	case re.StatusCode == http.StatusTooManyRequests:
		return "Vault's rate limit quota refused the call (HTTP 429: " + causes(re) + ")",
			"raise the quota (vault read sys/quotas/rate-limit/<name>) or start fewer tasks at once", true
	}
	return "", "", false
}
