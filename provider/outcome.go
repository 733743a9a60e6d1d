package provider

import (
	"errors"
	"time"
)

// Observer is told how each secret request ended, for metrics;
// *metrics.Metrics implements it. typ is the secret's vault.type ("" when
// its labels could not be read), outcome one of the Outcome values.
type Observer interface {
	Request(typ, outcome string, took time.Duration)
}

// Outcomes of a request, a short fixed list so that they can be metric
// labels.
const (
	OutcomeOK          = "ok"
	OutcomeLabel       = "label_error"       // the secret's labels are wrong
	OutcomeConfig      = "config_error"      // POLICY_TEMPLATE or ALLOWED_TYPES refuse it
	OutcomeRefetch     = "refetch_refused"   // a repeated fetch (ErrRefetch)
	OutcomeDenied      = "denied"            // Vault said 403
	OutcomeUnavailable = "vault_unavailable" // no answer in time, or none at all
	OutcomeVault       = "vault_error"       // any other failure with Vault
	OutcomeInternal    = "internal"          // a panic, recovered
)

// classified is an error with its outcome; its text is the error's own.
type classified struct {
	error
	outcome string
}

func (c classified) Unwrap() error { return c.error }

// classify marks err with its outcome.
func classify(err error, outcome string) error { return classified{err, outcome} }

// OutcomeOf tells a failed request's outcome: the one it was marked with,
// or OutcomeVault; OutcomeOK for nil.
func OutcomeOf(err error) string {
	var c classified
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrRefetch):
		return OutcomeRefetch
	case errors.As(err, &c):
		return c.outcome
	}
	return OutcomeVault
}
