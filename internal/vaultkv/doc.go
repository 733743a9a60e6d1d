// Package vaultkv owns what swarmvault asks of Vault's KV engine and how it
// reads Vault's refusals: which mount a path lives on and its KV version
// (Lookup, Cache), the get, put, create-only put, list and delete of a
// secret on KV v1 or v2 alike, and the API path of its data (Mount), and
// which failure a Vault error is, for any Vault call (Forbidden,
// InvalidToken, StatusIs, BadRequestSaying, ErrorText).
//
// It words no advice for a user: its errors are Vault's, or sentinels and
// types the caller turns into a sentence that names its own setting (a
// label for the request path, STATE_PATH for the leader).
package vaultkv
