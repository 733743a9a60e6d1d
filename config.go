package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
)

// config is the plugin's configuration. It comes from the environment only,
// because that is all `docker plugin set` can give a managed plugin.
//
// Precedence, highest first: a value given with `docker plugin set` (or as
// KEY=value on `docker plugin install`); the value declared in
// plugin/config.json; the default below, which applies when the binary runs
// outside Docker. Vault's own variable names and parsing are used wherever
// Vault has them.
type config struct {
	// VaultAddr is Vault's address, e.g. https://vault.example.com:8200. VAULT_ADDR, required.
	VaultAddr string
	// CACert is a PEM file of CAs to verify Vault's certificate with. VAULT_CACERT.
	CACert string
	// SkipVerify turns off TLS verification (tests only). VAULT_SKIP_VERIFY, default false.
	SkipVerify bool
	// Token is the plugin's own Vault token as a value. VAULT_TOKEN.
	Token string
	// TokenFile is a file holding the plugin's own Vault token. VAULT_TOKEN_FILE.
	TokenFile string
	// Timeout bounds the Vault calls of one request. VAULT_CLIENT_TIMEOUT, default 10s.
	Timeout time.Duration
	// LogLevel is logrus's level: debug, info, warn, error. LOG_LEVEL, default info.
	LogLevel logrus.Level
	// LogFormat is text or json. LOG_FORMAT, default text.
	LogFormat string
}

// loadConfig reads and validates every setting, reporting all bad settings at
// once, each by name with what to set instead.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		VaultAddr: getenv("VAULT_ADDR"),
		CACert:    getenv("VAULT_CACERT"),
		Token:     getenv("VAULT_TOKEN"),
		TokenFile: getenv("VAULT_TOKEN_FILE"),
		Timeout:   provider.DefaultTimeout,
		LogLevel:  logrus.InfoLevel,
		LogFormat: "text",
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.VaultAddr == "" {
		bad("VAULT_ADDR is not set: docker plugin set <plugin> VAULT_ADDR=https://vault.example.com:8200")
	} else if u, err := url.Parse(c.VaultAddr); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("VAULT_ADDR=%s is not a Vault address: use https://host:8200", c.VaultAddr)
	}
	if c.CACert != "" {
		if pem, err := os.ReadFile(c.CACert); err != nil {
			bad("VAULT_CACERT cannot be read: %v (is the file on the plugin's credentials mount?)", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			bad("VAULT_CACERT %s holds no PEM certificate", c.CACert)
		}
	}
	if v := getenv("VAULT_SKIP_VERIFY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("VAULT_SKIP_VERIFY=%s is not a boolean: use true or false", v)
		}
		c.SkipVerify = b
	}
	if v := getenv("VAULT_CLIENT_TIMEOUT"); v != "" {
		d, err := parseutil.ParseDurationSecond(v)
		if err != nil || d <= 0 {
			bad("VAULT_CLIENT_TIMEOUT=%s is not a duration: use e.g. 10s", v)
		}
		c.Timeout = d
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		l, err := logrus.ParseLevel(v)
		if err != nil {
			bad("LOG_LEVEL=%s is not a level: use debug, info, warn or error", v)
		}
		c.LogLevel = l
	}
	if v := getenv("LOG_FORMAT"); v != "" {
		if v != "text" && v != "json" {
			bad("LOG_FORMAT=%s is not a format: use text or json", v)
		}
		c.LogFormat = v
	}
	return c, errors.Join(errs...)
}

// vaultClient makes the Vault client every request shares: one pooled HTTP
// transport, so requests reuse keep-alive connections.
func (c config) vaultClient() (*api.Client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("failed to configure the Vault client: %w", vc.Error)
	}
	vc.Address = c.VaultAddr
	vc.Timeout = c.Timeout
	if err := vc.ConfigureTLS(&api.TLSConfig{CACert: c.CACert, Insecure: c.SkipVerify}); err != nil {
		return nil, fmt.Errorf("failed to configure TLS for Vault: %w", err)
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("failed to create the Vault client: %w", err)
	}
	// api.NewClient takes VAULT_TOKEN from the environment by itself; the
	// token is vaultauth's to set, from whichever source is configured.
	client.ClearToken()
	return client, nil
}
