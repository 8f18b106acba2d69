package dax

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestCloseCutsAdminClientsThatNeverRead: 200 admin-socket clients that
// connect and then never read (some send nothing, some half a request, some
// a whole request whose response they ignore) must not make Close fail or
// linger: Close returns nil, the clients find their connections cut, and
// the store's goroutines and descriptors are gone.
func TestCloseCutsAdminClientsThatNeverRead(t *testing.T) {
	// Bring up the runtime's network poller before counting descriptors:
	// it keeps its own for the life of the process.
	warm, err := net.Listen("unix", filepath.Join(t.TempDir(), "warm"))
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const clients = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range clients {
		c, err := net.Dial("unix", filepath.Join(dir, AdminSocketName))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 1:
			_, err = io.WriteString(c, "GET /snapshot HTTP/1.1\r\nHost: daxstore\r\n")
		case 2:
			_, err = io.WriteString(c, "GET /snapshot HTTP/1.1\r\nHost: daxstore\r\n\r\n")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "the server holds every client", func() bool { return s.admin.open.Load() == clients })

	var cerr error
	within(t, 30*time.Second, "Close with 200 clients that never read", func() { cerr = s.Close() })
	if cerr != nil {
		t.Fatalf("Close = %v, want nil", cerr)
	}
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		// Whatever the server had sent, the stream must end.
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("client %d: the connection is still open after Close", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, AdminSocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket is still there after Close: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	poll.Until(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseG })
	poll.Until(t, "descriptors back to the baseline", func() bool { return openFDs(t) <= baseFD })
}

// TestAdminSocketHasItsModeFromCreation: the socket is bound in a private
// directory (0700), made 0600 there, and only then renamed into the store
// directory, so no one ever sees it with the default permissions.
func TestAdminSocketHasItsModeFromCreation(t *testing.T) {
	var sockMode, dirMode os.FileMode
	var seen string
	adminBound = func(path string) {
		seen = path
		if fi, err := os.Lstat(path); err == nil {
			sockMode = fi.Mode()
		}
		if fi, err := os.Stat(filepath.Dir(path)); err == nil {
			dirMode = fi.Mode()
		}
	}
	defer func() { adminBound = nil }()
	dir := t.TempDir()
	// A directory a crashed holder left behind is cleaned up.
	if err := os.Mkdir(filepath.Join(dir, adminTempPrefix+"stale"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if seen == "" {
		t.Fatal("the socket was not bound through a temporary path")
	}
	if sockMode&os.ModeSocket == 0 || sockMode.Perm() != 0o600 {
		t.Fatalf("socket mode at bind time %v, want a socket with 0600", sockMode)
	}
	if !dirMode.IsDir() || dirMode.Perm() != 0o700 {
		t.Fatalf("directory it was bound in has mode %v, want 0700", dirMode)
	}
	fi, err := os.Lstat(filepath.Join(dir, AdminSocketName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode in place %v, want a socket with 0600", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(dir, adminTempPrefix+"*"))
	if len(left) != 0 {
		t.Fatalf("temporary directories left: %v", left)
	}
	if _, err := Inspect(t0(), dir); err != nil {
		t.Fatalf("the socket does not serve: %v", err)
	}
}
