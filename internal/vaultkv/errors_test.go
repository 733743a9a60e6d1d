package vaultkv

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

func responseError(code int, msgs ...string) error {
	return &api.ResponseError{HTTPMethod: "PUT", URL: "http://vault:8200/v1/some/path", StatusCode: code, Errors: msgs}
}

func TestClassifiers(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		err                             error
		forbidden, invalidToken, status bool
		gone                            bool
	}{
		{name: "nil", err: nil},
		{name: "not Vault's", err: errors.New("permission denied; invalid token; invalid accessor")},
		{name: "invalid token", err: responseError(403, "permission denied", "invalid token"),
			forbidden: true, invalidToken: true},
		{name: "invalid token, wrapped", err: fmt.Errorf("renewing: %w", responseError(403, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n")),
			forbidden: true, invalidToken: true},
		{name: "no permission", err: responseError(403, "1 error occurred:\n\t* permission denied\n\n"),
			forbidden: true},
		{name: "invalid token but 400", err: responseError(400, "invalid token"), status: true},
		{name: "unknown accessor", err: responseError(400, "invalid accessor"), status: true, gone: true},
		{name: "lease not found", err: fmt.Errorf("renew: %w", responseError(400, "lease not found")), status: true, gone: true},
		{name: "other 400", err: responseError(400, "missing client token"), status: true},
		{name: "not found but 404", err: responseError(404, "not found")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Forbidden(tc.err); got != tc.forbidden {
				t.Errorf("Forbidden = %v", got)
			}
			if got := InvalidToken(tc.err); got != tc.invalidToken {
				t.Errorf("InvalidToken = %v", got)
			}
			if got := StatusIs(tc.err, http.StatusBadRequest); got != tc.status {
				t.Errorf("StatusIs(400) = %v", got)
			}
			if got := BadRequestSaying(tc.err, "invalid accessor", "not found"); got != tc.gone {
				t.Errorf("BadRequestSaying = %v", got)
			}
		})
	}
	if !StatusIs(responseError(503, "sealed"), http.StatusServiceUnavailable) {
		t.Error("StatusIs(503) is false for a 503")
	}
	if BadRequestSaying(responseError(400, "check-and-set parameter did not match the current version")) {
		t.Error("BadRequestSaying with no texts is true")
	}
}

func TestErrorText(t *testing.T) {
	re := responseError(400, "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n", "lease not found")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"response error", re, "HTTP 400: permission denied; invalid token; lease not found"},
		{"wrapped", fmt.Errorf("cannot renew: %w", re), "cannot renew: HTTP 400: permission denied; invalid token; lease not found"},
		{"no causes", responseError(404), "HTTP 404: no reason given"},
		{"not Vault's", errors.New("dial tcp: connection refused"), "dial tcp: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorText(tc.err); got != tc.want {
				t.Errorf("ErrorText:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
