package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/secrets"
)

// SocketPath is where the engine looks for a managed plugin's socket: it
// bind-mounts the plugin's own directory at /run/docker/plugins, and
// plugin/config.json names the socket "plugin.sock". Change both together.
const SocketPath = "/run/docker/plugins/plugin.sock"

const (
	manifest     = `{"Implements": ["secretprovider"]}`
	activatePath = "/Plugin.Activate"
	getPath      = "/SecretProvider.GetSecret"
)

// SecretGetter answers one secret request.
type SecretGetter interface {
	GetSecret(ctx context.Context, req Request) secrets.Response
}

// maxBodyBytes bounds a request body. The engine's request is a few KB (a
// secret's and a service's labels); anything larger is not the engine.
const maxBodyBytes = 1 << 20

// readHeaderTimeout bounds how long a connection may take to send its
// request headers.
const readHeaderTimeout = 10 * time.Second

// Server serves the secretprovider protocol on a listener, with
// go-plugins-helpers' request decoding and response encoding and a request
// type of our own, because the engine's NodeID has no field in
// secrets.Request. It runs its own http.Server (sdk.Handler's cannot be shut
// down): Shutdown lets requests under way finish and closes kept-alive
// connections, so no request is served after it.
type Server struct {
	http *http.Server
}

// NewServer returns a Server that hands each request to g.
func NewServer(g SecretGetter) *Server {
	mux := http.NewServeMux()
	// Managed plugins are not activated (config.json declares the
	// interface), but a legacy engine or a test may ask.
	mux.HandleFunc(activatePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, manifest)
	})
	mux.HandleFunc(getPath, func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		var req Request
		if err := sdk.DecodeRequest(w, r, &req); err != nil {
			return
		}
		res := g.GetSecret(r.Context(), req)
		sdk.EncodeResponse(w, res, res.Err != "")
	})
	return &Server{http: &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}}
}

// Serve answers requests on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, closes idle ones, and waits until
// the requests under way have been answered, or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("requests still under way at shutdown: %w", err)
	}
	return nil
}

// Listen creates the Unix socket at path. A socket file left by a previous
// run (the plugin was killed, or the engine restarted it) is removed first:
// otherwise bind fails with "address already in use" and the plugin never
// comes back.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("failed to remove a stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", path, err)
	}
	return l, nil
}
