//go:build integration

package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// A TLS server takes its certificate, key and CA as three files: three
// secrets of one task naming one pki/issue are one certificate, issued
// once by Vault's real PKI engine. The key matches the certificate, and
// the certificate verifies against the delivered CA.
func TestIntegrationCertificateKeyAndCAFromOneIssue(t *testing.T) {
	f := newTokenFixture(t)
	ctx := context.Background()
	mount := "it-pki-" + f.kv2
	if err := f.root.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "1h"}}); err != nil {
		t.Fatalf("mounting Vault's PKI engine (compiled into e2e/vaultserver): %v", err)
	}
	t.Cleanup(func() { f.root.Sys().Unmount(mount) })
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/root/generate/internal", map[string]any{"common_name": "swarmvault test CA", "ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "10m"}); err != nil {
		t.Fatal(err)
	}
	app, err := f.root.Sys().GetPolicyWithContext(ctx, f.role+"-app")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.root.Sys().PutPolicyWithContext(ctx, f.role+"-app", app+fmt.Sprintf("\npath %q { capabilities = [\"update\"] }", mount+"/issue/web")); err != nil {
		t.Fatal(err)
	}
	serials := func() int {
		s, err := f.root.Logical().ListWithContext(ctx, mount+"/certs")
		if err != nil || s == nil {
			t.Fatalf("listing the issued certificates: %v", err)
		}
		keys, _ := s.Data["keys"].([]any)
		return len(keys)
	}
	before := serials()

	p := f.provider(t, Options{})
	file := map[string][]byte{}
	for _, field := range []string{"certificate", "private_key", "issuing_ca"} {
		req := taskRequest(map[string]string{"vault.type": "write", "vault.path": mount + "/issue/web",
			"vault.param.common_name": "web.example.com", "vault.param.ttl": "5m", "vault.field": field})
		req.SecretName = "tls_" + field
		resp := p.GetSecret(ctx, req)
		if resp.Err != "" {
			t.Fatalf("%s: %s", field, resp.Err)
		}
		file[field] = resp.Value
	}
	if n := serials() - before; n != 1 {
		t.Errorf("Vault issued %d certificates for one task's three files, want 1", n)
	}
	pair, err := tls.X509KeyPair(file["certificate"], file["private_key"])
	if err != nil {
		t.Fatalf("the key is not the certificate's: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(file["issuing_ca"])
	if block == nil {
		t.Fatal("issuing_ca holds no PEM")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "web.example.com"}); err != nil {
		t.Errorf("the certificate does not verify against the delivered CA: %v", err)
	}

	// A role with generate_lease: the certificate's lease is the task
	// token's child, so revoking the token (as the lifecycle does when the
	// task ends) revokes the certificate.
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/roles/leased", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "10m", "generate_lease": true}); err != nil {
		t.Fatal(err)
	}
	if err := f.root.Sys().PutPolicyWithContext(ctx, f.role+"-app", app+fmt.Sprintf("\npath %q { capabilities = [\"update\"] }\npath %q { capabilities = [\"update\"] }", mount+"/issue/web", mount+"/issue/leased")); err != nil {
		t.Fatal(err)
	}
	tr := &recordingTracker{}
	leased := f.provider(t, Options{Tracker: tr})
	req := taskRequest(map[string]string{"vault.type": "write", "vault.path": mount + "/issue/leased", "vault.param.common_name": "web.example.com", "vault.field": "certificate"})
	req.TaskID = "t-leased"
	if resp := leased.GetSecret(ctx, req); resp.Err != "" {
		t.Fatal(resp.Err)
	}
	if len(tr.issued) != 1 || tr.issued[0].LeaseID == "" || tr.issued[0].Expires.IsZero() {
		t.Fatalf("tracked %+v, want the certificate's lease and expiration", tr.issued)
	}
	c := tr.issued[0]
	if _, err := f.root.Logical().WriteWithContext(ctx, "sys/leases/lookup", map[string]any{"lease_id": c.LeaseID}); err != nil {
		t.Fatalf("the certificate's lease: %v", err)
	}
	if err := f.root.Auth().Token().RevokeAccessorWithContext(ctx, c.Accessor); err != nil {
		t.Fatal(err)
	}
	// Vault revokes a revoked token's leases in the background.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := f.root.Logical().WriteWithContext(ctx, "sys/leases/lookup", map[string]any{"lease_id": c.LeaseID})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the certificate's lease outlives the task token it was issued to by 10 s")
			break
		}
	}

	// Another task: another certificate.
	req = taskRequest(map[string]string{"vault.type": "write", "vault.path": mount + "/issue/web",
		"vault.param.common_name": "web.example.com", "vault.param.ttl": "5m", "vault.field": "certificate"})
	req.TaskID = "t2"
	if resp := p.GetSecret(ctx, req); resp.Err != "" || string(resp.Value) == string(file["certificate"]) {
		t.Errorf("task t2: %q, want a certificate of its own", resp.Err)
	}
}

// recordingTracker admits everything and keeps what was issued.
type recordingTracker struct {
	mu     sync.Mutex
	issued []Credentials
}

func (r *recordingTracker) Admit(context.Context, Request, bool) error { return nil }

func (r *recordingTracker) Issued(_ context.Context, _ Request, c Credentials) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued = append(r.issued, c)
	return nil
}
