package bench

// The FUSE hop: sequential and 4 KiB random reads and writes through a
// mount of a store served by a `daxstore mount` child process, against the
// same system calls on a file in tmpfs, so that users see what the mount
// costs over memory-speed storage the kernel serves itself.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// Groups and subjects of the mount figures. Each group pairs the mount
// (daxstore) with tmpfs (the limit), so VS LIMIT is mount/tmpfs.
const (
	groupMountSeqRead   = "mount seq read"
	groupMountSeqWrite  = "mount seq write"
	groupMountRandRead  = "mount 4KiB read"
	groupMountRandWrite = "mount 4KiB write"

	subjMount = "through the FUSE mount"
	subjTmpfs = "tmpfs"

	// mountChunk is the buffer of each sequential read and write call.
	mountChunk = 1 << 20
	// mountRandBytes is the size of each random read and write.
	mountRandBytes = 4 << 10
	// mountRounds is how many alternating rounds each figure takes; each
	// side keeps its best.
	mountRounds = 2
	// mountReadyWait bounds the wait for the child's ready line.
	mountReadyWait = 30 * time.Second
	// mountStopWait bounds the wait for the child to unmount and exit
	// after SIGINT, before the mount is detached and the child killed.
	mountStopWait = 15 * time.Second
)

// mountBytes is the size of the file each side reads and writes.
func (r *runner) mountBytes() int64 {
	if r.cfg.Quick {
		return min(16<<20, r.cfg.PunchBytes)
	}
	return min(64<<20, r.cfg.PunchBytes)
}

// mountSkip reports why the mount part cannot run here, or "".
func (r *runner) mountSkip() string {
	switch {
	case os.Geteuid() != 0:
		return "not root"
	case r.cfg.Exe == "":
		return "no daxstore binary to serve the mount (Config.Exe)"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	return ""
}

func (r *runner) mountAll() (err error) {
	if why := r.mountSkip(); why != "" {
		r.skip("mount", why)
		return nil
	}
	n := r.mountBytes()
	storeDir, err := r.sub("mount-store")
	if err != nil {
		return err
	}
	// The store is made here, so that its size is this run's whatever the
	// mount command does with a missing store.
	s, err := dax.Open(storeDir, &dax.Options{Size: n + 64<<20, NoAdminSocket: true})
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	mnt, err := r.sub("mountpoint")
	if err != nil {
		return err
	}
	r.progress("mounting the store with `daxstore mount`")
	m, err := startMount(r.cfg.Exe, storeDir, mnt)
	if err != nil {
		r.skip("mount", err.Error())
		return nil
	}
	defer func() {
		if serr := m.stop(); err == nil && serr != nil {
			err = fmt.Errorf("unmount: %w", serr)
		}
	}()
	tmpfs, err := r.sub("mount-tmpfs")
	if err != nil {
		return err
	}
	mf, err := createFilled(filepath.Join(mnt, "file"), n)
	if err != nil {
		return fmt.Errorf("through the mount: %w", err)
	}
	defer mf.Close()
	tf, err := createFilled(filepath.Join(tmpfs, "file"), n)
	if err != nil {
		return fmt.Errorf("on tmpfs: %w", err)
	}
	defer tf.Close()
	if err := checkThrough(mf); err != nil {
		return err
	}
	return r.mountFigures(mf, tf, n)
}

// mountFigures times the four access patterns on both files.
func (r *runner) mountFigures(mf, tf *os.File, n int64) error {
	buf := chunk()[:mountChunk]
	d := r.cfg.Duration / mountRounds
	blocks := n / mountRandBytes
	patterns := []struct {
		group, what string
		size        int64
		warm, min   int
		op          func(f *os.File, rng *rand.Rand) error
	}{
		{groupMountSeqWrite, "sequential write", n, 1, 2, func(f *os.File, _ *rand.Rand) error {
			for off := int64(0); off < n; off += mountChunk {
				if _, err := f.WriteAt(buf[:min(mountChunk, n-off)], off); err != nil {
					return err
				}
			}
			return unix.Fdatasync(int(f.Fd()))
		}},
		{groupMountSeqRead, "sequential read", n, 1, 2, func(f *os.File, _ *rand.Rand) error {
			// Dropping the cached pages first makes every pass cross the
			// FUSE hop; on tmpfs the pages are the storage and stay.
			if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
				return err
			}
			for off := int64(0); off < n; off += mountChunk {
				if _, err := f.ReadAt(buf[:min(mountChunk, n-off)], off); err != nil {
					return err
				}
			}
			return nil
		}},
		{groupMountRandWrite, "4KiB random write", mountRandBytes, 100, 1000, func(f *os.File, rng *rand.Rand) error {
			_, err := f.WriteAt(buf[:mountRandBytes], rng.Int64N(blocks)*mountRandBytes)
			return err
		}},
		{groupMountRandRead, "4KiB random read", mountRandBytes, 100, 1000, func(f *os.File, rng *rand.Rand) error {
			off := rng.Int64N(blocks) * mountRandBytes
			if _, err := f.ReadAt(buf[:mountRandBytes], off); err != nil {
				return err
			}
			return unix.Fadvise(int(f.Fd()), off, mountRandBytes, unix.FADV_DONTNEED)
		}},
	}
	for _, f := range []*os.File{mf, tf} {
		// Read-ahead would turn one 4 KiB read into many.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			return err
		}
	}
	for _, p := range patterns {
		r.progress(fmt.Sprintf("%s of %s through a FUSE mount and on tmpfs", p.what, sizeName(n)))
		var mount, tmp result
		for round := range mountRounds {
			for _, side := range []struct {
				f    *os.File
				best *result
			}{{mf, &mount}, {tf, &tmp}} {
				rng := rand.New(rand.NewPCG(uint64(round), 1))
				res, err := timed(r.ctx, d, p.warm, p.min, func(int) error { return p.op(side.f, rng) })
				if err != nil {
					return fmt.Errorf("%s on %s: %w", p.what, side.f.Name(), err)
				}
				if side.best.ops == 0 || res.opsPerSec() > side.best.opsPerSec() {
					*side.best = res
				}
			}
		}
		r.throughput(p.group, subjTmpfs, roleLimit, int(p.size), tmp)
		r.throughput(p.group, subjMount, roleDax, int(p.size), mount)
	}
	r.report.Figures[len(r.report.Figures)-1].Note = fmt.Sprintf(
		"a %s file; reads drop the file's cached pages first (fadvise DONTNEED), so they cross the FUSE hop; each sequential write pass ends with fdatasync; %s calls",
		sizeName(n), sizeName(mountChunk))
	return nil
}

// createFilled creates path, writes n bytes into it and syncs it.
func createFilled(path string, n int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	buf := chunk()[:mountChunk]
	for off := int64(0); off < n; off += mountChunk {
		if _, err := f.WriteAt(buf[:min(mountChunk, n-off)], off); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkThrough writes a block through f, drops it from the page cache and
// reads it back, so that the figures are of a mount that keeps bytes.
func checkThrough(f *os.File) error {
	want := make([]byte, mountRandBytes)
	for i := range want {
		want[i] = byte(i*7 + 1)
	}
	if _, err := f.WriteAt(want, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return err
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("the mount does not read back the block written at 0 of %s", f.Name())
	}
	return nil
}

// mountProc is a `daxstore mount` child serving a mount.
type mountProc struct {
	cmd    *exec.Cmd
	mnt    string
	exited chan struct{} // closed once the child has exited
	err    error         // the child's exit, once exited is closed
	stderr *tailBuffer
}

// startMount runs `exe mount --dir dir mnt` and waits for its ready line.
// On any failure the child is stopped and nothing stays mounted.
func startMount(exe, dir, mnt string) (*mountProc, error) {
	cmd := exec.Command(exe, "mount", "--dir", dir, mnt)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	m := &mountProc{cmd: cmd, mnt: mnt, exited: make(chan struct{}), stderr: &tailBuffer{}}
	cmd.Stderr = m.stderr
	// A mount left behind by a bench that dies is still unmounted: the
	// child gets SIGTERM, on which it unmounts.
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("daxstore mount: %w", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if line := sc.Text(); !sent && strings.HasPrefix(line, "mounted ") {
				ready <- line
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	timer := time.NewTimer(mountReadyWait)
	defer timer.Stop()
	select {
	case line := <-ready:
		if want := "mounted " + dir + " at " + mnt; line != want {
			m.stop()
			return nil, fmt.Errorf("daxstore mount said %q, want %q", line, want)
		}
		return m, nil
	case <-m.exited:
		m.stop()
		return nil, fmt.Errorf("daxstore mount failed (%v): %s", m.err, m.stderr.lastLine())
	case <-timer.C:
		m.stop()
		return nil, fmt.Errorf("daxstore mount printed no ready line within %s: %s", mountReadyWait, m.stderr.lastLine())
	}
}

// stop unmounts: SIGINT to the child, which unmounts and exits; past
// mountStopWait the mount is detached and the child killed. Whatever
// happens, the mount point is not a mount when it returns.
func (m *mountProc) stop() error {
	var err error
	select {
	case <-m.exited:
	default:
		m.cmd.Process.Signal(os.Interrupt)
		timer := time.NewTimer(mountStopWait)
		select {
		case <-m.exited:
		case <-timer.C:
			err = fmt.Errorf("daxstore mount did not exit within %s of SIGINT: %s", mountStopWait, m.stderr.lastLine())
			unix.Unmount(m.mnt, unix.MNT_DETACH)
			m.cmd.Process.Kill()
			<-m.exited
		}
		timer.Stop()
	}
	if mounted(m.mnt) {
		if uerr := unix.Unmount(m.mnt, unix.MNT_DETACH); uerr != nil {
			return errors.Join(err, fmt.Errorf("%s is still mounted: %w", m.mnt, uerr))
		}
		err = errors.Join(err, fmt.Errorf("daxstore mount exited leaving %s mounted (detached now)", m.mnt))
	}
	return err
}

// mounted reports whether path is a mount point of this process's mount
// namespace.
func mounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		// Field 5 is the mount point, with spaces escaped as \040.
		if f := strings.Fields(line); len(f) > 4 && strings.ReplaceAll(f[4], `\040`, " ") == path {
			return true
		}
	}
	return false
}

// tailBuffer keeps the last 4 KiB a child writes to stderr.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4<<10 {
		t.buf = t.buf[len(t.buf)-4<<10:]
	}
	return len(p), nil
}

// lastLine returns the last non-empty line written, or a placeholder.
func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	return "no message on stderr"
}
