package dax

// The admin socket: while a store is open it serves JSON snapshots on
// DIR/admin.sock (mode 0600), because Pebble locks the journal directory
// and the socket is the only live view another process can have.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// AdminSocketName is the admin socket's file name inside the store directory.
const AdminSocketName = "admin.sock"

type adminServer struct {
	path string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startAdmin listens on DIR/admin.sock. A socket file left by a dead holder
// is removed first: this process holds the directory lock, so no live
// process can be serving it.
func startAdmin(s *Store) (*adminServer, error) {
	path := filepath.Join(s.dir, AdminSocketName)
	if len(path) > 107 {
		// sun_path is 108 bytes; a store that deep simply has no socket.
		return nil, nil
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /snapshot", func(w http.ResponseWriter, r *http.Request) {
		snap, err := s.Snapshot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap)
	})
	a := &adminServer{path: path, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(ln)
	}()
	return a, nil
}

func (a *adminServer) close() error {
	if a == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	<-a.done
	_ = os.Remove(a.path)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// querySocket asks the process serving dir's admin socket for a snapshot.
func querySocket(ctx context.Context, dir string) (*Snapshot, error) {
	path := filepath.Join(dir, AdminSocketName)
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daxstore/snapshot", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoSocket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin socket: %s", resp.Status)
	}
	var snap Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &snap, nil
}
