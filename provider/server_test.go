package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
)

// getterFunc adapts a function to SecretGetter.
type getterFunc func(context.Context, Request) secrets.Response

func (f getterFunc) GetSecret(ctx context.Context, r Request) secrets.Response { return f(ctx, r) }

// serve starts a Server on a real Unix socket and returns an HTTP client
// that dials it, as the engine does.
func serve(t *testing.T, g SecretGetter) (*http.Client, *Server, net.Listener) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(g)
	go srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	return client, srv, l
}

// The body is what swarmkit's dispatcher sends (field names as in its
// secretprovider request), NodeID included.
const engineRequest = `{"SecretName":"db_pw","SecretLabels":{"vault.path":"secret/app/db"},"ServiceID":"svc1","ServiceName":"app","ServiceLabels":{"team":"a"},"ServiceHostname":"{{.Node.Hostname}}","TaskID":"task1","TaskName":"app.1.task1","TaskImage":"busybox","NodeID":"node1","ServiceEndpointSpec":{"Mode":1}}`

func TestServerDecodesTheEngineRequest(t *testing.T) {
	var got Request
	client, _, _ := serve(t, getterFunc(func(_ context.Context, r Request) secrets.Response {
		got = r
		return secrets.Response{Value: []byte("v\x00\xff"), DoNotReuse: true}
	}))
	resp, err := client.Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader(engineRequest))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got.NodeID != "node1" || got.TaskID != "task1" || got.ServiceName != "app" || got.ServiceID != "svc1" ||
		got.TaskName != "app.1.task1" || got.SecretLabels["vault.path"] != "secret/app/db" || got.ServiceLabels["team"] != "a" {
		t.Errorf("decoded request %+v", got)
	}
	// Value is base64 in JSON, so any bytes survive; DoNotReuse is sent.
	if want := `{"Value":"dgD/","DoNotReuse":true}` + "\n"; string(body) != want {
		t.Errorf("body %s, want %s", body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.docker.plugins.v1.1+json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestServerSendsErrAsHTTP500(t *testing.T) {
	client, _, _ := serve(t, getterFunc(func(context.Context, Request) secrets.Response {
		return secrets.Response{Err: "secret db_pw: label vault.path is missing", DoNotReuse: true}
	}))
	resp, err := client.Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader(engineRequest))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r secrets.Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	// The engine turns a non-empty Err into "/SecretProvider.GetSecret: <Err>".
	if resp.StatusCode != http.StatusInternalServerError || r.Err != "secret db_pw: label vault.path is missing" {
		t.Errorf("status %d, response %+v", resp.StatusCode, r)
	}
}

func TestServerRejectsBadJSON(t *testing.T) {
	client, _, _ := serve(t, getterFunc(func(context.Context, Request) secrets.Response {
		t.Error("getter called for a bad request")
		return secrets.Response{}
	}))
	resp, err := client.Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
}

func TestServerActivateManifest(t *testing.T) {
	client, _, _ := serve(t, getterFunc(func(context.Context, Request) secrets.Response { return secrets.Response{} }))
	resp, err := client.Post("http://plugin/Plugin.Activate", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Implements []string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m.Implements) != 1 || m.Implements[0] != "secretprovider" {
		t.Errorf("manifest %+v", m)
	}
}

func TestListenRemovesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "plugin.sock")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale file: %v", err)
	}
	l.Close()
}

func TestServerShutdownFinishesRequestsUnderWay(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	client, srv, _ := serve(t, getterFunc(func(context.Context, Request) secrets.Response {
		close(started)
		<-release
		return secrets.Response{Value: []byte("late")}
	}))
	done := make(chan error, 1)
	go func() {
		resp, err := client.Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader(engineRequest))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `"Value":"bGF0ZQ=="`) {
				err = fmt.Errorf("body %s", body)
			}
		}
		done <- err
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned while a request was under way")
	}
	close(release)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("the request under way at shutdown failed: %v", err)
	}
}

// A kept-alive connection must not carry a request past Shutdown: closing
// only the listener (what the plugin did before) left it served.
func TestServerServesNothingAfterShutdown(t *testing.T) {
	var calls atomic.Int32
	path := filepath.Join(t.TempDir(), "plugin.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(getterFunc(func(context.Context, Request) secrets.Response {
		calls.Add(1)
		return secrets.Response{Value: []byte("v")}
	}))
	go srv.Serve(l)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	post := "POST /SecretProvider.GetSecret HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, post, len(engineRequest), engineRequest)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, post, len(engineRequest), engineRequest)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("a request on a kept-alive connection was answered after Shutdown: %s", resp.Status)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("GetSecret called %d times, want 1", n)
	}
}

func TestServerRefusesAnOversizedBody(t *testing.T) {
	var called atomic.Bool
	client, _, _ := serve(t, getterFunc(func(context.Context, Request) secrets.Response {
		called.Store(true)
		return secrets.Response{Value: []byte("v")}
	}))
	big := `{"SecretName":"db_pw","SecretLabels":{"vault.path":"` + strings.Repeat("a", maxBodyBytes) + `"}}`
	resp, err := client.Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || called.Load() {
		t.Errorf("status %d, GetSecret called: %v; want 400 before any call", resp.StatusCode, called.Load())
	}
}
