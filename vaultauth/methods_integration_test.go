//go:build integration

package vaultauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
)

// appRoleFixture is an AppRole for the plugin, with the token role and
// policies a plugin needs to serve a KV secret.
type appRoleFixture struct {
	root             *api.Client
	mount, kv, tasks string
	roleID           string
	wrappedSecretID  func(t *testing.T) string
	taskPolicy       string
	pluginPolicy     string
}

func newAppRoleFixture(t *testing.T, tokenTTL, maxTTL string) *appRoleFixture {
	t.Helper()
	client, rootToken := realVault(t)
	root, _ := client.Clone()
	root.SetToken(rootToken)
	ctx := context.Background()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	f := &appRoleFixture{root: root, mount: "it-approle-" + run, kv: "it-kv-" + run, tasks: "it-tasks-" + run,
		taskPolicy: "it-task-" + run, pluginPolicy: "it-plugin-" + run}

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.Sys().EnableAuthWithOptionsWithContext(ctx, f.mount, &api.EnableAuthOptions{Type: "approle"}))
	t.Cleanup(func() { root.Sys().DisableAuth(f.mount) })
	must(root.Sys().MountWithContext(ctx, f.kv, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}))
	t.Cleanup(func() { root.Sys().Unmount(f.kv) })
	must(root.KVv1(f.kv).Put(ctx, "app", map[string]any{"password": "pw"}))
	must(root.Sys().PutPolicyWithContext(ctx, f.taskPolicy, fmt.Sprintf("path %q { capabilities = [\"read\"] }", f.kv+"/*")))
	must(root.Sys().PutPolicyWithContext(ctx, f.pluginPolicy, fmt.Sprintf("path \"auth/token/create/%s\" { capabilities = [\"update\"] }", f.tasks)))
	t.Cleanup(func() { root.Sys().DeletePolicy(f.taskPolicy); root.Sys().DeletePolicy(f.pluginPolicy) })
	_, err := root.Logical().WriteWithContext(ctx, "auth/token/roles/"+f.tasks, map[string]any{"allowed_policies": []string{f.taskPolicy}})
	must(err)
	t.Cleanup(func() { root.Logical().Delete("auth/token/roles/" + f.tasks) })
	_, err = root.Logical().WriteWithContext(ctx, "auth/"+f.mount+"/role/plugin", map[string]any{
		"token_policies": []string{f.pluginPolicy}, "token_ttl": tokenTTL, "token_max_ttl": maxTTL, "secret_id_num_uses": 0,
	})
	must(err)
	s, err := root.Logical().ReadWithContext(ctx, "auth/"+f.mount+"/role/plugin/role-id")
	must(err)
	f.roleID = s.Data["role_id"].(string)
	f.wrappedSecretID = func(t *testing.T) string {
		w, _ := root.Clone()
		w.SetToken(rootToken)
		w.SetWrappingLookupFunc(func(string, string) string { return "2m" })
		s, err := w.Logical().WriteWithContext(ctx, "auth/"+f.mount+"/role/plugin/secret-id", nil)
		if err != nil || s.WrapInfo == nil {
			t.Fatalf("wrapped secret-id: %v", err)
		}
		return s.WrapInfo.Token
	}
	return f
}

func TestIntegrationAppRoleWrappedSecretID(t *testing.T) {
	f := newAppRoleFixture(t, "1h", "2h")
	dir := t.TempDir()
	secretFile := writeCred(t, dir, "secret-id", f.wrappedSecretID(t))
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", f.roleID), secretFile, f.mount, true, true)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := realVault(t)
	s, err := client.Auth().Login(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(s.Auth.Policies, ","), f.pluginPolicy) {
		t.Errorf("logged in with policies %v", s.Auth.Policies)
	}
	if _, err := os.Stat(secretFile); !os.IsNotExist(err) {
		t.Error("the wrapped secret-id file was not removed")
	}
	// A wrapping token made by sys/wrapping/wrap is refused, and not spent.
	w, _ := f.root.Clone()
	w.SetToken(f.root.Token())
	w.SetWrappingLookupFunc(func(string, string) string { return "2m" })
	forged, err := w.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": "forged"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewAppRoleAuth(writeCred(t, dir, "role-id", f.roleID), writeCred(t, dir, "forged", forged.WrapInfo.Token), f.mount, true, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "was wrapped at sys/wrapping/wrap") {
		t.Errorf("forged wrapping token: %v", err)
	}
}

// TestIntegrationServesThroughTokenExpiry runs the plugin's request path for
// SWARMVAULT_SOAK (default 3m) with a token of 20 s TTL and 60 s max TTL:
// the Manager renews it, logs in again at its max TTL, and no request fails.
func TestIntegrationServesThroughTokenExpiry(t *testing.T) {
	soak := 3 * time.Minute
	if v := os.Getenv("SWARMVAULT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		soak = d
	}
	f := newAppRoleFixture(t, "20s", "60s")
	dir := t.TempDir()
	a, err := NewAppRoleAuth(writeCred(t, dir, "role-id", f.roleID), writeCred(t, dir, "secret-id", f.wrappedSecretID(t)), f.mount, true, false)
	if err != nil {
		t.Fatal(err)
	}
	client, _ := realVault(t)
	var logs lockedBuffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)
	m := NewManager(client, a, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)

	p := provider.New(client, log, provider.Options{
		Policies: mustPolicy(t, f.taskPolicy), TokenRole: f.tasks, Reauth: m, Timeout: 5 * time.Second,
	})
	req := provider.Request{Request: secrets.Request{SecretName: "s", ServiceName: "app", TaskID: "t",
		SecretLabels: map[string]string{"vault.path": f.kv + "/app", "vault.field": "password"}}}
	var served, failed atomic.Int32
	for end := time.Now().Add(soak); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		resp := p.GetSecret(context.Background(), req)
		if resp.Err != "" || string(resp.Value) != "pw" {
			failed.Add(1)
			t.Errorf("request at %s failed: %s", time.Now().Format(time.TimeOnly), resp.Err)
			continue
		}
		served.Add(1)
	}
	logins := strings.Count(logs.String(), `msg="logged in to Vault"`)
	renewals := strings.Count(logs.String(), `msg="renewed the plugin's token"`)
	t.Logf("%v: %d requests served, %d failed; %d logins, %d renewals", soak, served.Load(), failed.Load(), logins, renewals)
	// The Manager logs every login and renewal at debug: none shows a credential.
	for _, secret := range []string{f.roleID, client.Token()} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a credential (%d bytes)", len(secret))
		}
	}
	if want := int(soak/time.Minute) + 1; logins < want || renewals == 0 {
		t.Errorf("%d logins and %d renewals in %v: want at least %d logins (60 s max TTL) and some renewals", logins, renewals, soak, want)
	}
}

func mustPolicy(t *testing.T, text string) *provider.PolicyTemplate {
	t.Helper()
	p, err := provider.ParsePolicyTemplate(text)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntegrationCertLogin starts a Vault of its own with TLS (the
// certificate travels in the handshake) from VAULT_SERVER_BIN, with a CA made
// here, and logs in with a client certificate that CA signed.
func TestIntegrationCertLogin(t *testing.T) {
	bin := os.Getenv("VAULT_SERVER_BIN")
	if bin == "" {
		t.Fatal("VAULT_SERVER_BIN is not set: run make test-integration (it builds e2e/vaultserver)")
	}
	dir := t.TempDir()
	ca, caKey := newCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	serverCert, serverKey := issue(t, ca, caKey, "127.0.0.1", true)
	clientCert, clientKey := issue(t, ca, caKey, "swarmvault-plugin", false)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tokenFile := filepath.Join(dir, "root-token")
	cmd := exec.Command(bin, "-addr", addr, "-token-file", tokenFile,
		"-tls-cert", writePEM(t, dir, "server.pem", "CERTIFICATE", serverCert), "-tls-key", writePEM(t, dir, "server-key.pem", "EC PRIVATE KEY", serverKey))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var rootToken string
	for deadline := time.Now().Add(30 * time.Second); rootToken == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the TLS Vault did not start")
		}
		b, _ := os.ReadFile(tokenFile)
		rootToken = strings.TrimSpace(string(b))
	}

	newClient := func(tlsCfg *api.TLSConfig) *api.Client {
		cfg := api.DefaultConfig()
		cfg.Address = "https://" + addr
		if err := cfg.ConfigureTLS(tlsCfg); err != nil {
			t.Fatal(err)
		}
		c, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.ClearToken()
		return c
	}
	root := newClient(&api.TLSConfig{CACert: caFile})
	root.SetToken(rootToken)
	if err := root.Sys().EnableAuthWithOptions("cert", &api.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/cert/certs/swarmvault", map[string]any{
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})), "token_policies": "default", "token_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}

	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientCert)
	keyFile := writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", clientKey)
	plugin := newClient(&api.TLSConfig{CACert: caFile, ClientCert: certFile, ClientKey: keyFile})
	a, err := NewCertAuth("https://"+addr, certFile, keyFile, "", "swarmvault")
	if err != nil {
		t.Fatal(err)
	}
	s, err := plugin.Auth().Login(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.Auth().Token().LookupSelf(); err != nil || s.Auth.LeaseDuration != 3600 {
		t.Errorf("the cert login's token: %v, TTL %d", err, s.Auth.LeaseDuration)
	}

	// Without a client certificate the same login is refused.
	bare := newClient(&api.TLSConfig{CACert: caFile})
	if _, err := bare.Auth().Login(context.Background(), a); err == nil {
		t.Error("cert login without a client certificate succeeded")
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarmvault test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

// issue returns a certificate and key signed by ca: for a server at an IP
// address, or a client.
func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, server bool) ([]byte, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP(name)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return der, keyDER
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
