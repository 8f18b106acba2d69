package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needMount skips a test that mounts a file system.
func needMount(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// mounted reports whether a file system is mounted at dir.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// mountProc is a `daxstore mount` child.
type mountProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer // read only after exited is closed
	exited chan struct{}
	err    error // how it exited; set before exited is closed
}

// startMount runs `daxstore mount` of the store in dir at mnt and waits for
// its ready line. Cleanup stops it and leaves nothing mounted.
func startMount(t *testing.T, dir, mnt string) *mountProc {
	t.Helper()
	cmd := exec.Command(daxstoreBin, "mount", "--dir", dir, mnt)
	cmd.Env = cliEnv()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &mountProc{cmd: cmd, stderr: new(bytes.Buffer), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(patience):
				cmd.Process.Kill()
				<-p.exited
			}
		}
		if mounted(t, mnt) {
			t.Errorf("%s is still mounted after the mount process exited", mnt)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-ready:
		if want := "mounted " + dir + " at " + mnt + "\n"; line != want {
			<-p.exited
			t.Fatalf("mount said %q, want %q (%v); stderr: %s", line, want, p.err, p.stderr)
		}
	case <-time.After(patience):
		t.Fatalf("mount is not ready after %v", patience)
	}
	return p
}

// wait waits for the mount process to exit and returns its status.
func (p *mountProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(patience):
		t.Fatalf("mount has not exited after %v", patience)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("mount: %v", p.err)
	return -1
}

func TestMountServesFilesLiveAndUnmountsOnSIGTERM(t *testing.T) {
	needMount(t)
	t.Parallel()
	dir, mnt := filepath.Join(t.TempDir(), "store"), t.TempDir()
	mustRun(t, nil, "init", "--dir", dir, "--size", "16MiB")
	mustRun(t, []byte("hello"), "put", "--dir", dir, "docs/hello")
	p := startMount(t, dir, mnt)

	if got, err := os.ReadFile(filepath.Join(mnt, "docs/hello")); err != nil || string(got) != "hello" {
		t.Errorf("docs/hello through the mount: %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "docs/new"), []byte("written through the mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"busy", "pins"} {
		if out := mustRun(t, nil, c, "--dir", dir); !strings.Contains(out, "live view") {
			t.Errorf("daxstore %s while mounted does not ask the mount process:\n%s", c, out)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("mount exited %d after SIGTERM; stderr: %s", code, p.stderr)
	}
	if mounted(t, mnt) {
		t.Errorf("%s still mounted after SIGTERM", mnt)
	}
	// The store is closed and holds what was written through the mount.
	if out := mustRun(t, nil, "get", "--dir", dir, "docs/new"); out != "written through the mount" {
		t.Errorf("docs/new after the mount ended: %q", out)
	}
}

func TestMountExitsWhenUnmountedFromOutside(t *testing.T) {
	needMount(t)
	t.Parallel()
	dir, mnt := filepath.Join(t.TempDir(), "store"), t.TempDir()
	mustRun(t, nil, "init", "--dir", dir, "--size", "16MiB")
	p := startMount(t, dir, mnt)
	var err error
	if bin, lerr := exec.LookPath("fusermount3"); lerr == nil {
		err = exec.Command(bin, "-u", mnt).Run()
	} else if bin, lerr := exec.LookPath("fusermount"); lerr == nil {
		err = exec.Command(bin, "-u", mnt).Run()
	} else {
		err = syscall.Unmount(mnt, 0)
	}
	if err != nil {
		t.Fatalf("unmount from outside: %v", err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("mount exited %d after an unmount from outside; stderr: %s", code, p.stderr)
	}
	// The store was closed: another command may have it.
	mustRun(t, []byte("x"), "put", "--dir", dir, "after")
}
