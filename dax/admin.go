package dax

// The admin socket: while a store is open it serves JSON snapshots and the
// operations of adminops.go on DIR/admin.sock (mode 0600), because Pebble
// locks the journal directory and the socket is the only live view
// another process can have.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// AdminSocketName is the admin socket's file name inside the store directory.
const AdminSocketName = "admin.sock"

type adminServer struct {
	path  string
	ln    net.Listener
	srv   *http.Server
	done  chan struct{}  // closed when Serve has returned
	conns sync.WaitGroup // connections accepted and not yet closed
	open  atomic.Int64   // the same count, for tests to watch
	ops   *adminOps      // the operations of adminops.go
}

// Bounds on one admin request: a snapshot request is a few hundred bytes,
// and a client that stalls must not hold a connection for long.
const (
	adminReadTimeout  = 5 * time.Second
	adminWriteTimeout = 10 * time.Second
	adminIdleTimeout  = 30 * time.Second
	adminMaxHeader    = 8 << 10
)

// adminTempPrefix names the private directory the socket is bound in.
const adminTempPrefix = ".admin-"

// adminBound, when set by a test, is called with the socket's temporary
// path after it is bound and made 0600, before it is renamed into place.
var adminBound func(path string)

// startAdmin listens on DIR/admin.sock. A socket file left by a dead holder
// is replaced: this process holds the directory lock, so no live process
// can be serving it.
//
// The socket never exists with a mode other than 0600 where others can
// reach it: it is bound inside a fresh directory of mode 0700, made 0600
// there, and renamed into place. (Setting the umask would do it too, but
// the umask is process-wide and the host may be creating files meanwhile.)
func startAdmin(s *Store) (*adminServer, error) {
	path := filepath.Join(s.dir, AdminSocketName)
	// Directories a crashed holder left between bind and rename.
	if stale, err := filepath.Glob(filepath.Join(s.dir, adminTempPrefix+"*")); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmpDir, err := os.MkdirTemp(s.dir, adminTempPrefix)
	if err != nil {
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) > 107 || len(path) > 107 {
		// sun_path is 108 bytes; a store that deep simply has no socket.
		return nil, nil
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	// The path the listener would unlink on Close is the temporary one;
	// close removes the final path itself.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	if adminBound != nil {
		adminBound(tmp)
	}
	if err := os.Rename(tmp, path); err != nil {
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
	mux.HandleFunc("POST /backup", s.serveBackup)
	mux.Handle("GET /metrics", s.met.handler)
	a := &adminServer{path: path, ln: ln, done: make(chan struct{}), ops: newAdminOps(s)}
	a.ops.register(mux)
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: adminReadTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeader,
		ErrorLog:          log.New(io.Discard, "", 0), // a library prints nothing
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				a.conns.Add(1)
				a.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				a.open.Add(-1)
				a.conns.Done()
			}
		},
	}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(&peerListener{UnixListener: ln.(*net.UnixListener), euid: os.Geteuid(), logger: s.logf})
	}()
	return a, nil
}

// close stops serving: it aborts the operations in flight, lets requests
// finish for at most adminShutdown, then cuts every connection, idle or
// not (a client that never reads must not keep the store's goroutines and
// descriptors), waits until each connection's goroutine has let go of it,
// and removes the socket. The store is closed either way, so
// a client cut off mid-request is not an error of Close.
func (a *adminServer) close() error {
	if a == nil {
		return nil
	}
	a.ops.abort()
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdown)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if err != nil {
		err = a.srv.Close()
	}
	<-a.done
	a.conns.Wait()
	if rerr := os.Remove(a.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
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
