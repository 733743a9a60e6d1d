package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/secrets"
)

// SocketPath is where the engine looks for a managed plugin's socket: it
// bind-mounts the plugin's own directory at /run/docker/plugins, and
// plugin/config.json names the socket "plugin.sock". Change both together.
const SocketPath = "/run/docker/plugins/plugin.sock"

const (
	manifest = `{"Implements": ["secretprovider"]}`
	getPath  = "/SecretProvider.GetSecret"
)

// SecretGetter answers one secret request.
type SecretGetter interface {
	GetSecret(ctx context.Context, req Request) secrets.Response
}

// Server serves the secretprovider protocol on a listener. It uses
// go-plugins-helpers' sdk handler with a request type of our own, because the
// engine's NodeID has no field in secrets.Request.
type Server struct {
	handler  sdk.Handler
	inflight sync.WaitGroup
}

// NewServer returns a Server that hands each request to g.
func NewServer(g SecretGetter) *Server {
	s := &Server{handler: sdk.NewHandler(manifest)}
	s.handler.HandleFunc(getPath, func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		var req Request
		if err := sdk.DecodeRequest(w, r, &req); err != nil {
			return
		}
		res := g.GetSecret(r.Context(), req)
		sdk.EncodeResponse(w, res, res.Err != "")
	})
	return s
}

// Serve answers requests on l until l is closed.
func (s *Server) Serve(l net.Listener) error {
	err := s.handler.Serve(l)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Wait blocks until the requests under way have been answered, or ctx ends.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("requests still under way at shutdown: %w", ctx.Err())
	}
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
