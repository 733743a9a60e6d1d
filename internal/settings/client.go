package settings

import (
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/api"
)

// idleConnsPerHost is how many kept-alive connections to Vault the plugin
// keeps. The Vault client's default (GOMAXPROCS+1) makes a node's burst of
// tasks open and close connections at every request (measured in bench/).
const idleConnsPerHost = 128

// VaultClient makes the Vault client every request shares, from the
// connection settings (VAULT_ADDR, VAULT_CACERT, VAULT_SKIP_VERIFY,
// VAULT_CLIENT_CERT/KEY, VAULT_NAMESPACE, VAULT_CLIENT_TIMEOUT): one pooled
// HTTP transport, so requests reuse keep-alive connections. wrap, when
// given, wraps that transport (the metrics count calls with it). The client
// holds no token: that is vaultauth's to set.
func (c Config) VaultClient(wrap func(http.RoundTripper) http.RoundTripper) (*api.Client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("failed to configure the Vault client: %w", vc.Error)
	}
	vc.Address = c.VaultAddr
	vc.Timeout = c.Timeout
	// No retries: the client's default retries a POST on a 5xx, and a token
	// create or a vault.type=write (pki/issue) that Vault carried out before
	// failing would leave a second live token or certificate. A failed
	// secret fails its task, and Swarm's restart policy retries the task.
	vc.MaxRetries = 0
	if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConns = idleConnsPerHost
		t.MaxIdleConnsPerHost = idleConnsPerHost
	}
	if err := vc.ConfigureTLS(&api.TLSConfig{CACert: c.CACert, Insecure: c.SkipVerify, ClientCert: c.Auth.ClientCert, ClientKey: c.Auth.ClientKey}); err != nil {
		return nil, fmt.Errorf("failed to configure TLS for Vault: %w", err)
	}
	if wrap != nil {
		vc.HttpClient.Transport = wrap(vc.HttpClient.Transport)
	}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("failed to create the Vault client: %w", err)
	}
	// api.NewClient takes VAULT_TOKEN from the environment by itself; the
	// token is vaultauth's to set, from whichever source is configured.
	client.ClearToken()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	return client, nil
}
