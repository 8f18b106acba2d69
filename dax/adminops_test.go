package dax

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daxstore/daxstore/internal/poll"
	"github.com/daxstore/daxstore/internal/syncbuf"
)

// adminDialChildEnv makes the test binary, run as a child, dial the admin
// socket of the store in the directory it names and print what came of it.
const adminDialChildEnv = "DAX_TEST_ADMIN_DIAL"

// TestAdminDialChild is the child's body; it does nothing in a normal run.
func TestAdminDialChild(t *testing.T) {
	dir := os.Getenv(adminDialChildEnv)
	if dir == "" {
		t.Skip("only as the child of TestAdminSocketRefusesOtherUsers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, dir)
	if err != nil {
		fmt.Printf("refused: %v\n", err)
		return
	}
	defer c.Close()
	fmt.Printf("served by pid %d\n", c.Pid())
}

// TestAdminSocketRefusesOtherUsers: a process of another uid that gets
// past the socket's file mode (made 0777 here for that) is still refused,
// by its peer credentials: its connection is closed unanswered and the
// refusal logged. The same child run as this test's own uid is served.
func TestAdminSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as nobody")
	}
	// A directory nobody may enter, for the store and a copy of this
	// test binary (its own directory is private to this user).
	base, err := os.MkdirTemp("", "dxa")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "dax.test")
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "s")
	var logged syncbuf.Buffer
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true, Logger: log.New(&logged, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, AdminSocketName), 0o777); err != nil {
		t.Fatal(err)
	}
	child := func(cred *syscall.Credential) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-test.run=^TestAdminDialChild$")
		cmd.Env = append(os.Environ(), adminDialChildEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as %+v: %v\n%s", cred, err, out)
		}
		return string(out)
	}
	if out := child(nil); !strings.Contains(out, fmt.Sprintf("served by pid %d", os.Getpid())) {
		t.Fatalf("a child of this uid was not served:\n%s", out)
	}
	if logged.String() != "" {
		t.Fatalf("a connection of this uid was logged as refused: %q", logged.String())
	}
	const nobody = 65534
	out := child(&syscall.Credential{Uid: nobody, Gid: nobody})
	if !strings.Contains(out, "refused:") || strings.Contains(out, "served by") {
		t.Fatalf("a child of uid %d was served:\n%s", nobody, out)
	}
	if want := fmt.Sprintf("refused a connection from uid %d", nobody); !strings.Contains(logged.String(), want) {
		t.Fatalf("log %q does not say %q", logged.String(), want)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rawAdmin sends one raw request on a fresh connection to s's admin socket
// and returns the response.
func rawAdmin(t *testing.T, dir, req string) *http.Response {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(dir, AdminSocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() { _, _ = io.WriteString(c, req) }() // the server may answer before it has read it all
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestAdminRequestsAreBoundedInSize: a request other than put with a body
// past adminMaxBody, or with headers past adminMaxHeader, is refused
// before it changes anything, even where writes are allowed; a put of more
// than the region holds is refused too, and the old value stays.
func TestAdminRequestsAreBoundedInSize(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 64 * testBS, NoSync: true, AdminWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "k", []byte("value"))

	body := strings.Repeat("x", adminMaxBody+1)
	resp := rawAdmin(t, dir, "POST /rm?key=k HTTP/1.1\r\nHost: daxstore\r\nContent-Length: "+
		fmt.Sprint(len(body))+"\r\n\r\n"+body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("rm with a %d-byte body: %s, want 413", len(body), resp.Status)
	}
	resp = rawAdmin(t, dir, "POST /rm?key=k HTTP/1.1\r\nHost: daxstore\r\nTransfer-Encoding: chunked\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("rm with a chunked %d-byte body: %s, want 413", len(body), resp.Status)
	}
	resp = rawAdmin(t, dir, "GET /holder HTTP/1.1\r\nHost: daxstore\r\nX-Big: "+
		strings.Repeat("y", 2*adminMaxHeader)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a request with %d bytes of headers: %s, want 431", 2*adminMaxHeader, resp.Status)
	}
	if got := mustGet(t, s, "k"); string(got) != "value" {
		t.Fatalf("k = %q after refused requests, want %q", got, "value")
	}

	c, err := Dial(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := io.LimitReader(endlessZeros{}, 65*testBS)
	err = c.PutReader(context.Background(), "k", big, -1, BreakOptions{})
	if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put of more than the region: %v, want ErrTooLarge or ErrNoSpace", err)
	}
	if got := mustGet(t, s, "k"); string(got) != "value" {
		t.Fatalf("k = %q after a refused put, want %q", got, "value")
	}
	mustCheck(t, s)
}

type endlessZeros struct{}

func (endlessZeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAdminClientsCannotStallClose: a client whose put keeps sending,
// slowly but fast enough never to time out, and one that asked for a
// large value and never reads it, do not hold Close up: Close aborts
// them, and returns nil. Without the abort the put would hold Close for as
// long as its client keeps sending.
func TestAdminClientsCannotStallClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 65536 * testBS, NoSync: true, AdminWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "big", bytes.Repeat([]byte{7}, 2048*testBS))

	// The reader that never reads.
	r, err := net.Dial("unix", filepath.Join(dir, AdminSocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.WriteString(r, "GET /get?key=big HTTP/1.1\r\nHost: daxstore\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The writer that trickles a put of unknown size: 4 KiB every 10ms,
	// enough to meet the rate the server asks, until the connection dies.
	w, err := net.Dial("unix", filepath.Join(dir, AdminSocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.WriteString(w, "PUT /put?key=slow&size=-1 HTTP/1.1\r\nHost: daxstore\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	stopped := make(chan error, 1)
	go func() {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, bytes.Repeat([]byte{1}, 4096))
		for i := 0; ; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				stopped <- err
				return
			}
			if i == 4 {
				close(sent)
			}
			time.Sleep(10 * time.Millisecond) // the client's pace, not synchronization
		}
	}()
	<-sent
	poll.Until(t, "the put is in flight", func() bool { return mustStats(t, s).UsedBlocks > 2048 })
	var cerr error
	within(t, time.Minute, "Close with a trickling put and a client that never reads", func() { cerr = s.Close() })
	if cerr != nil {
		t.Fatalf("Close = %v, want nil", cerr)
	}
	w.Close()
	<-stopped
	s2, err := Open(dir, &Options{NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Stat("slow"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the aborted put left a key: Stat = %v", err)
	}
	mustCheck(t, s2)
}
