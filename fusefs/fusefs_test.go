package fusefs

// Focused tests of the server, mounted in this process: only plain system
// calls on the mount (read, write, stat, readdir, fallocate, lseek,
// rename), never mmap, since a page fault on a file this process serves
// would deadlock with the Go runtime.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/syncbuf"
)

func TestErrnoMapsEverySentinel(t *testing.T) {
	long := strings.Repeat("k", dax.MaxKeyLen+1)
	for _, tc := range []struct {
		err  error
		key  string
		want syscall.Errno
	}{
		{nil, "", 0},
		{io.EOF, "", 0},
		{fmt.Errorf("daxstore: open %q: %w", "k", dax.ErrNotFound), "k", syscall.ENOENT},
		{dax.ErrExist, "k", syscall.EEXIST},
		{fmt.Errorf("x: %w", dax.ErrInvalidKey), long, syscall.ENAMETOOLONG},
		{fmt.Errorf("x: %w", dax.ErrInvalidKey), "k\x00", syscall.EINVAL},
		{dax.ErrInvalidRange, "k", syscall.EINVAL},
		{fmt.Errorf("x: %w", dax.ErrNoSpace), "k", syscall.ENOSPC},
		{dax.ErrPinned, "k", syscall.EBUSY},
		{dax.ErrReadOnly, "k", syscall.EROFS},
		{dax.ErrNotEmpty, "d", syscall.ENOTEMPTY},
		{dax.ErrNotDir, "d", syscall.ENOTDIR},
		{dax.ErrIsDir, "d", syscall.EISDIR},
		{dax.ErrClosed, "k", syscall.EIO},
		{dax.ErrFailed, "k", syscall.EIO},
		{fmt.Errorf("x: %w", dax.ErrCorrupt), "k", syscall.EIO},
		{fmt.Errorf("wait: %w", context.Canceled), "k", syscall.EINTR},
		{errors.New("something else"), "k", syscall.EIO},
		{fmt.Errorf("x: %w", syscall.EXDEV), "k", syscall.EXDEV},
	} {
		if got := Errno(tc.err, tc.key); got != tc.want {
			t.Errorf("Errno(%v, key of %d bytes) = %v, want %v", tc.err, len(tc.key), got, tc.want)
		}
	}
}

// mounted is a store served by this process.
type mounted struct {
	st  *dax.Store
	srv *Server
	mnt string
	log *syncbuf.Buffer
}

func (m *mounted) path(key string) string { return filepath.Join(m.mnt, key) }

// needFUSE skips a test that has to mount.
func needFUSE(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

// mountStore makes a store of size bytes and mounts it; cleanup unmounts
// and closes it.
func mountStore(t *testing.T, size int64) *mounted {
	t.Helper()
	return mountStoreWith(t, size, Options{})
}

// mountStoreWith is mountStore with the mount's options (Log is the
// test's).
func mountStoreWith(t *testing.T, size int64, o Options) *mounted {
	t.Helper()
	needFUSE(t)
	st, err := dax.Open(filepath.Join(t.TempDir(), "store"), &dax.Options{Size: size, AllocWait: -1, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	lb := &syncbuf.Buffer{}
	o.Log, o.Debug = log.New(lb, "", 0), os.Getenv("FUSEFS_DEBUG") != ""
	srv, err := Mount(st, mnt, o)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			forceUnmount(t, mnt)
		}
		if err := st.CloseWith(context.Background(), dax.CloseOptions{Force: true}); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("mount log:\n%s", lb.String())
		}
	})
	return &mounted{st: st, srv: srv, mnt: mnt, log: lb}
}

// forceUnmount detaches the mount at mnt and aborts its FUSE connection,
// so that descriptors a failed test left open on it do not hang this
// process's exit (closing them would wait for its own, stopped, server).
func forceUnmount(t *testing.T, mnt string) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Logf("force unmount: %v", err)
		return
	}
	syscall.Unmount(mnt, syscall.MNT_DETACH)
	const ctl = "/sys/fs/fuse/connections"
	if _, err := os.Stat(ctl + "/" + fmt.Sprint(unix.Minor(st.Dev))); err != nil {
		unix.Mount("fusectl", ctl, "fusectl", 0, "")
	}
	if err := os.WriteFile(fmt.Sprintf("%s/%d/abort", ctl, unix.Minor(st.Dev)), []byte("1"), 0); err != nil {
		t.Logf("force unmount: abort the connection: %v", err)
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func TestReadWriteReaddirStatThroughTheMount(t *testing.T) {
	m := mountStore(t, 16<<20)
	if err := m.st.Put("a/b/c", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(m.path("a/b/c"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("read a/b/c: %q, %v", got, err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	if err := os.WriteFile(m.path("a/new"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := m.st.Get("a/new"); err != nil || !bytes.Equal(v, data) {
		t.Fatalf("API reads %d bytes, %v; want the %d written through the mount", len(v), err, len(data))
	}
	ents, err := os.ReadDir(m.path("a"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.IsDir()))
	}
	if strings.Join(names, " ") != "b:true new:false" {
		t.Errorf("readdir a = %v", names)
	}
	// Raw getdents shows "." and ".." too, as ls -a expects.
	dfd, err := unix.Open(m.path("a"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := unix.Getdents(dfd, buf)
	unix.Close(dfd)
	if err != nil {
		t.Fatal(err)
	}
	var raw []string // unix.ParseDirent drops "." and ".."
	for b := buf[:n]; len(b) >= 19; {
		reclen := int(b[16]) | int(b[17])<<8
		name := b[19:reclen]
		raw = append(raw, string(name[:bytes.IndexByte(name, 0)]))
		b = b[reclen:]
	}
	if strings.Join(raw, " ") != ". .. b new" {
		t.Errorf("getdents of a = %q", raw)
	}
	fi, err := os.Stat(m.path("a/new"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o600 {
		t.Errorf("stat a/new: size %d mode %v", fi.Size(), fi.Mode())
	}
	info, err := m.st.Stat("a/new")
	if err != nil {
		t.Fatal(err)
	}
	if ino := fi.Sys().(*syscall.Stat_t).Ino; ino != info.Ino {
		t.Errorf("inode number %d, want the store's %d", ino, info.Ino)
	}
	if err := os.Truncate(m.path("a/new"), 10); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.st.Get("a/new"); !bytes.Equal(v, data[:10]) {
		t.Errorf("after truncate the API reads %q", v)
	}
	if err := os.Remove(m.path("a/new")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.st.Stat("a/new"); !errors.Is(err, dax.ErrNotFound) {
		t.Errorf("after unlink: %v", err)
	}
}

func TestStatfsCountsBusyBlocksAsUsed(t *testing.T) {
	m := mountStore(t, 16<<20)
	if err := os.WriteFile(m.path("f"), bytes.Repeat([]byte{7}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := m.st.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pin, err := f.Pin(0, 32<<10, dax.PinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Unpin()
	var before unix.Statfs_t
	if err := unix.Statfs(m.mnt, &before); err != nil {
		t.Fatal(err)
	}
	if err := f.PunchHole(0, 32<<10); err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	stats, err := m.st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.BusyBlocks != 8 {
		t.Fatalf("busy blocks %d after punching a pinned 32 KiB, want 8", stats.BusyBlocks)
	}
	if sfs.Bsize != stats.BlockSize || sfs.Frsize != stats.BlockSize || sfs.Blocks != stats.DataBlocks ||
		sfs.Bfree != stats.FreeBlocks || sfs.Bavail != stats.FreeBlocks || sfs.Namelen != maxNameLen {
		t.Errorf("statfs %+v, store %+v", sfs, stats)
	}
	if sfs.Bfree != before.Bfree {
		t.Errorf("free blocks went from %d to %d when pinned blocks were punched: busy blocks must count as used",
			before.Bfree, sfs.Bfree)
	}
}

func TestLseekDataAndHoleOnASparseFile(t *testing.T) {
	m := mountStore(t, 16<<20)
	fd, err := unix.Open(m.path("sparse"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	block := bytes.Repeat([]byte{1}, 4096)
	for _, off := range []int64{0, 1 << 20} {
		if _, err := unix.Pwrite(fd, block, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Ftruncate(fd, 2<<20); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off    int64
		whence int
		want   int64
		errno  syscall.Errno
	}{
		{0, unix.SEEK_DATA, 0, 0},
		{0, unix.SEEK_HOLE, 4096, 0},
		{4096, unix.SEEK_DATA, 1 << 20, 0},
		{1<<20 + 10, unix.SEEK_HOLE, 1<<20 + 4096, 0},
		{1<<20 + 4096, unix.SEEK_DATA, 0, syscall.ENXIO},
		{1<<20 + 4096, unix.SEEK_HOLE, 1<<20 + 4096, 0},
		{2 << 20, unix.SEEK_HOLE, 0, syscall.ENXIO},
		{3 << 20, unix.SEEK_DATA, 0, syscall.ENXIO},
	} {
		got, err := unix.Seek(fd, tc.off, tc.whence)
		if tc.errno != 0 {
			if !errors.Is(err, tc.errno) {
				t.Errorf("lseek(%d, %d) = %d, %v; want %v", tc.off, tc.whence, got, err, tc.errno)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lseek(%d, %d) = %d, %v; want %d", tc.off, tc.whence, got, err, tc.want)
		}
	}
}

func TestFallocateModes(t *testing.T) {
	m := mountStore(t, 16<<20)
	fd, err := unix.Open(m.path("f"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	data := bytes.Repeat([]byte{0xaa}, 64<<10)
	if _, err := unix.Pwrite(fd, data, 0); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		return st.Size
	}
	read := func(off, n int64) []byte {
		t.Helper()
		b := make([]byte, n)
		if _, err := unix.Pread(fd, b, off); err != nil {
			t.Fatal(err)
		}
		return b
	}
	zeros := make([]byte, 8192)

	// Mode 0 past the end grows the file, as posix_fallocate does.
	if err := unix.Fallocate(fd, 0, 60<<10, 8<<10); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 68<<10 {
		t.Errorf("size after fallocate mode 0 to 68 KiB: %d", got)
	}
	// KEEP_SIZE never changes the size.
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 64<<10, 64<<10); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 68<<10 {
		t.Errorf("size after fallocate KEEP_SIZE past the end: %d", got)
	}
	// PUNCH_HOLE|KEEP_SIZE reads zeros and frees the blocks.
	fi, _ := m.st.Stat("f")
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 8192, 8192); err != nil {
		t.Fatal(err)
	}
	if got := read(8192, 8192); !bytes.Equal(got, zeros) {
		t.Errorf("punched range reads %x...", got[:8])
	}
	if fi2, _ := m.st.Stat("f"); fi2.Blocks != fi.Blocks-2 {
		t.Errorf("blocks %d after punching 2 of %d", fi2.Blocks, fi.Blocks)
	}
	// ZERO_RANGE|KEEP_SIZE zeroes and keeps the size; ZERO_RANGE alone
	// grows it.
	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 32<<10, 8192); err != nil {
		t.Fatal(err)
	}
	if got := read(32<<10, 8192); !bytes.Equal(got, zeros) {
		t.Errorf("zeroed range reads %x...", got[:8])
	}
	if got := read(40<<10, 8); !bytes.Equal(got, data[:8]) {
		t.Errorf("byte after the zeroed range reads %x", got)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 64<<10, 16<<10); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 80<<10 {
		t.Errorf("size after ZERO_RANGE to 80 KiB: %d", got)
	}
	// Everything else is refused, and changes nothing.
	for _, mode := range []uint32{unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE,
		unix.FALLOC_FL_PUNCH_HOLE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE} {
		err := unix.Fallocate(fd, mode, 0, 4096)
		if !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("fallocate mode %#x: %v, want EOPNOTSUPP (or EINVAL from the kernel)", mode, err)
		}
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_COLLAPSE_RANGE, 0, 4096); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("COLLAPSE_RANGE: %v, want EOPNOTSUPP", err)
	}
	if got := size(); got != 80<<10 {
		t.Errorf("size after refused modes: %d", got)
	}
	if got := read(0, 8); !bytes.Equal(got, data[:8]) {
		t.Errorf("first bytes after refused modes: %x", got)
	}
}

func TestRenameFlags(t *testing.T) {
	m := mountStore(t, 16<<20)
	for _, k := range []string{"a", "b", "dir/x"} {
		if err := m.st.Put(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	wantErrno(t, "RENAME_NOREPLACE onto a file",
		unix.Renameat2(unix.AT_FDCWD, m.path("a"), unix.AT_FDCWD, m.path("b"), unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantErrno(t, "RENAME_EXCHANGE",
		unix.Renameat2(unix.AT_FDCWD, m.path("a"), unix.AT_FDCWD, m.path("b"), unix.RENAME_EXCHANGE), syscall.EINVAL)
	// unix.Rename, not os.Rename, which refuses a directory target itself.
	wantErrno(t, "rename a file onto a directory", unix.Rename(m.path("a"), m.path("dir")), syscall.EISDIR)
	wantErrno(t, "rename a directory onto a file", unix.Rename(m.path("dir"), m.path("a")), syscall.ENOTDIR)
	if v, _ := m.st.Get("b"); string(v) != "b" {
		t.Fatalf("refused renames changed b: %q", v)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, m.path("a"), unix.AT_FDCWD, m.path("c"), unix.RENAME_NOREPLACE); err != nil {
		t.Fatalf("RENAME_NOREPLACE onto a free name: %v", err)
	}
	if err := os.Rename(m.path("c"), m.path("b")); err != nil {
		t.Fatalf("rename replacing a file: %v", err)
	}
	if v, err := m.st.Get("b"); string(v) != "a" || err != nil {
		t.Errorf("b after rename over it: %q, %v", v, err)
	}
	if _, err := m.st.Stat("c"); !errors.Is(err, dax.ErrNotFound) {
		t.Errorf("c after rename: %v", err)
	}
	// Moving the last key out of an implicit directory leaves the
	// directory, as a file system would.
	if err := os.Rename(m.path("dir/x"), m.path("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(m.path("dir")); err != nil || !fi.IsDir() {
		t.Errorf("dir after moving its last file out: %v", err)
	}
	if err := os.Remove(m.path("dir")); err != nil {
		t.Errorf("rmdir of the emptied directory: %v", err)
	}
	wantErrno(t, "hard link", os.Link(m.path("b"), m.path("hl")), syscall.EPERM)
}

func TestNamesTooLong(t *testing.T) {
	m := mountStore(t, 16<<20)
	wantErrno(t, "create a 256-byte name", os.WriteFile(m.path(strings.Repeat("n", 256)), nil, 0o644), syscall.ENAMETOOLONG)
	if err := os.WriteFile(m.path(strings.Repeat("n", 255)), nil, 0o644); err != nil {
		t.Errorf("create a 255-byte name: %v", err)
	}
	// Components of 250 bytes, four deep, leave less than the key limit.
	dir := strings.Repeat("d", 250)
	deep := strings.Join([]string{dir, dir, dir, dir}, "/")
	if err := m.st.Put(deep+"/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("k", dax.MaxKeyLen-len(deep)) // one byte over with the slash
	wantErrno(t, "create a key over the limit", os.WriteFile(m.path(deep+"/"+name), nil, 0o644), syscall.ENAMETOOLONG)
	if err := os.WriteFile(m.path(deep+"/"+name[1:]), nil, 0o644); err != nil {
		t.Errorf("create a key of exactly %d bytes: %v", dax.MaxKeyLen, err)
	}
}

// A punch through the mount over a pinned range detaches the blocks, as
// PunchHole through the API does: the pin keeps its bytes, the file reads
// zeros, and Busy lists the extent.
func TestPunchOverAPinnedRangeDetaches(t *testing.T) {
	m := mountStore(t, 16<<20)
	data := bytes.Repeat([]byte("PINNED!!"), 8<<10) // 64 KiB
	if err := m.st.Put("f", data); err != nil {
		t.Fatal(err)
	}
	f, err := m.st.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pin, err := f.Pin(16<<10, 16<<10, dax.PinOptions{Label: "dma"})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Unpin()
	fd, err := unix.Open(m.path("f"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	head := make([]byte, 64<<10)
	if _, err := unix.Pread(fd, head, 0); err != nil { // fill the page cache
		t.Fatal(err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 16<<10, 16<<10); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.Join(pin.Bytes(), nil), data[16<<10:32<<10]) {
		t.Errorf("the pin lost its bytes to the punch")
	}
	got := make([]byte, 16<<10)
	if _, err := unix.Pread(fd, got, 16<<10); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, 16<<10)) {
		t.Errorf("the punched range reads %q... through the mount", got[:8])
	}
	if v, _ := m.st.Get("f"); !bytes.Equal(v[16<<10:32<<10], make([]byte, 16<<10)) {
		t.Errorf("the punched range reads %q... through the API", v[16<<10:16<<10+8])
	}
	busy := m.st.Busy()
	var blocks uint64
	for _, b := range busy {
		blocks += b.Blocks
		if b.Key != "f" || b.Reason != "punch" || b.FileOffset != 16<<10 {
			t.Errorf("busy extent %+v: want f's punched range", b)
		}
	}
	if blocks != 4 {
		t.Errorf("busy extents %+v: want the 4 pinned blocks", busy)
	}
}

// reports reports whether fn makes the store report a change of kind.
func reports(t *testing.T, st *dax.Store, fn func() error, kind dax.ChangeKind) bool {
	t.Helper()
	var mu sync.Mutex
	seen := false
	stop := st.Watch(func(c dax.FileChange) {
		mu.Lock()
		seen = seen || c.Kind == kind
		mu.Unlock()
	})
	err := fn()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// watchWorks reports whether the store reports changes, which the mount's
// coherence needs.
func watchWorks(t *testing.T, st *dax.Store) bool {
	seen := false
	var mu sync.Mutex
	stop := st.Watch(func(dax.FileChange) { mu.Lock(); seen = true; mu.Unlock() })
	if err := st.Put(".watch-probe", nil); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := st.Remove(".watch-probe"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// Changes made through the API of the serving process reach the kernel's
// caches, although it cached pages, attributes and names for longer: an
// open descriptor sees new bytes and a new size once the call returns, a
// new file and a removed one once the notifier got to them.
func TestAPIChangesAreSeenThroughTheMount(t *testing.T) {
	m := mountStore(t, 16<<20)
	if !watchWorks(t, m.st) {
		t.Skip("the store reports no changes (Store.Watch)")
	}
	old := bytes.Repeat([]byte{'o'}, 32<<10)
	if err := os.WriteFile(m.path("f"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(m.path("f"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	if n, err := unix.Pread(fd, buf, 0); err != nil || n != len(old) {
		t.Fatalf("pread: %d, %v", n, err)
	}
	// WriteAt through the API, inside the cached pages.
	f, err := m.st.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("NEW-BYTES"), 4096); err != nil {
		t.Fatal(err)
	}
	at(t, "the API's WriteAt", func() bool {
		n, err := unix.Pread(fd, buf[:16], 4096)
		return err == nil && n == 16 && string(buf[:9]) == "NEW-BYTES"
	})
	// A Put of a longer value: new size and bytes on the same descriptor.
	val := bytes.Repeat([]byte{'p'}, 48<<10)
	if err := m.st.Put("f", val); err != nil {
		t.Fatal(err)
	}
	at(t, "the API's Put", func() bool {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Size != int64(len(val)) {
			return false
		}
		n, err := unix.Pread(fd, buf, 0)
		return err == nil && bytes.Equal(buf[:n], val)
	})
	// A name the kernel cached as missing appears, one it cached as present
	// goes.
	if _, err := os.Stat(m.path("g")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("g before the Put: %v", err)
	}
	if err := m.st.Put("g", []byte("g")); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "the API's Put of a new key", func() bool {
		_, err := os.Stat(m.path("g"))
		return err == nil
	})
	if err := m.st.Remove("g"); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "the API's Remove", func() bool {
		_, err := os.Stat(m.path("g"))
		return errors.Is(err, os.ErrNotExist)
	})
	// A rename of a file the kernel has looked up, and has open, moves it
	// in the mount too.
	if err := m.st.Rename("f", "h"); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "the API's rename of a file", func() bool {
		_, errF := os.Stat(m.path("f"))
		h, errH := os.ReadFile(m.path("h"))
		return errors.Is(errF, os.ErrNotExist) && errH == nil && bytes.Equal(h, val)
	})
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != int64(len(val)) {
		t.Errorf("fstat of the open descriptor after the rename: size %d, %v", st.Size, err)
	}
	// Attributes set through the API show in fstat at once; a directory
	// made through the API appears.
	if _, err := m.st.SetAttr("h", dax.AttrChange{Mask: dax.AttrMode, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	at(t, "the API's SetAttr", func() bool {
		var st unix.Stat_t
		return unix.Fstat(fd, &st) == nil && st.Mode&0o7777 == 0o640
	})
	if _, err := os.Stat(m.path("nd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("nd before the Mkdir: %v", err)
	}
	if err := m.st.Mkdir("nd", dax.AttrChange{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, m, "the API's Mkdir", func() bool {
		fi, err := os.Stat(m.path("nd"))
		return err == nil && fi.IsDir()
	})
	t.Run("RenameDir", func(t *testing.T) {
		if !reports(t, m.st, func() error {
			if err := m.st.Mkdir(".probe", dax.AttrChange{}); err != nil {
				return err
			}
			return m.st.RenameDir(".probe", ".probe2")
		}, dax.ChangeRename) {
			t.Skip("Store.RenameDir reports no change")
		}
		if err := m.st.Put("d/x", []byte("in d")); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(m.path("d/x")); err != nil || string(got) != "in d" {
			t.Fatalf("d/x: %q, %v", got, err)
		}
		dfd, err := unix.Open(m.path("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(dfd)
		if err := m.st.RenameDir("d", "e"); err != nil {
			t.Fatal(err)
		}
		eventually(t, m, "the API's rename of a directory", func() bool {
			_, errD := os.Stat(m.path("d"))
			x, errX := os.ReadFile(m.path("e/x"))
			return errors.Is(errD, os.ErrNotExist) && errX == nil && string(x) == "in d"
		})
		// The moved directory's node serves its new path: a file made
		// through a descriptor opened on it before the move lands under
		// the new name.
		yfd, err := unix.Openat(dfd, "y", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(yfd)
		if _, err := m.st.Stat("e/y"); err != nil {
			t.Errorf("a file made in the moved directory: %v", err)
		}
	})
}

// at fails unless cond holds at once: a change to a file's bytes, size or
// attributes shows through the mount once the call that made it returns.
func at(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !cond() {
		t.Fatalf("the mount does not show %s once it returned", what)
	}
}

// eventually polls cond until it holds, for as long as the notifier may
// take to catch up: it is asynchronous, but each change it has done is
// done, so a barrier through it (a change the test then waits to see)
// bounds the wait by the notifier's progress, not by a clock.
func eventually(t *testing.T, m *mounted, what string, cond func() bool) {
	t.Helper()
	for i := 0; ; i++ {
		if cond() {
			return
		}
		if !m.srv.notifyBarrier(context.Background()) || i > 0 {
			t.Fatalf("the mount does not show %s once the notifier caught up", what)
		}
	}
}

func TestENOSPCNamesBusyBlocksInTheLog(t *testing.T) {
	m := mountStore(t, 2<<20)
	if err := m.st.Put("pinned", bytes.Repeat([]byte{1}, 64<<10)); err != nil {
		t.Fatal(err)
	}
	f, err := m.st.Open("pinned")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pin, err := f.Pin(0, 64<<10, dax.PinOptions{Label: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Unpin()
	if err := m.st.Remove("pinned"); err != nil {
		t.Fatal(err)
	}
	err = os.WriteFile(m.path("fill"), make([]byte, 4<<20), 0o644)
	wantErrno(t, "writing past the region", err, syscall.ENOSPC)
	if l := m.log.String(); !strings.Contains(l, "no space") || !strings.Contains(l, "16 blocks are busy") ||
		!strings.Contains(l, `oldest pin "holder"`) {
		t.Errorf("the mount's log does not explain the ENOSPC:\n%s", l)
	}
}

// Files and directories made through the key API have no attributes: they
// show Options' owner, and a first chmod keeps that owner rather than
// taking the store's default of root.
func TestChmodOfAFileWithoutAttributesKeepsTheMountsOwner(t *testing.T) {
	m := mountStoreWith(t, 16<<20, Options{UID: 1234, GID: 5678})
	if err := m.st.Put("d/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (uint32, uint32, uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid, st.Mode & 0o7777
	}
	for _, p := range []string{m.path("d"), m.path("d/f")} {
		if u, g, _ := owner(p); u != 1234 || g != 5678 {
			t.Errorf("%s owned by %d:%d, want the mount's 1234:5678", p, u, g)
		}
	}
	if err := os.Chmod(m.path("d/f"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.path("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if u, g, mode := owner(m.path("d/f")); u != 1234 || g != 5678 || mode != 0o600 {
		t.Errorf("after chmod 600 d/f is %d:%d %o", u, g, mode)
	}
	if u, g, mode := owner(m.path("d")); u != 1234 || g != 5678 || mode != 0o700 {
		t.Errorf("after chmod 700 d is %d:%d %o", u, g, mode)
	}
	if fi, err := m.st.Stat("d/f"); err != nil || !fi.HasAttr || fi.UID != 1234 || fi.Mode != 0o600 {
		t.Errorf("the store keeps %+v, %v", fi, err)
	}
	// Root is an owner like any other, not "no owner".
	if err := os.Chown(m.path("d/f"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if u, g, _ := owner(m.path("d/f")); u != 0 || g != 0 {
		t.Errorf("after chown 0:0 d/f is owned by %d:%d", u, g)
	}
}

// rm -r removes a directory's files and then the directory: removing the
// last key of an implicit directory must leave the directory in place.
func TestUnlinkOfTheLastFileKeepsItsDirectory(t *testing.T) {
	m := mountStore(t, 16<<20)
	if err := m.st.Put("a/b/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("a/b/f")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "a/b"} {
		if fi, err := os.Stat(m.path(d)); err != nil || !fi.IsDir() {
			t.Errorf("%s after unlinking the last file under it: %v", d, err)
		}
		if di, err := m.st.StatDir(d); err != nil || !di.Explicit {
			t.Errorf("the store has %s as %+v, %v; want an explicit directory", d, di, err)
		}
	}
	if err := m.st.Check(); err != nil {
		t.Error(err)
	}
	wantErrno(t, "rmdir of a non-empty directory", unix.Rmdir(m.path("a")), syscall.ENOTEMPTY)
	if err := os.Remove(m.path("a/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	if di, err := m.st.StatDir("empty"); err != nil || !di.Explicit || di.Mode != 0o750 {
		t.Errorf("mkdir made %+v, %v", di, err)
	}
	wantErrno(t, "mkdir over a directory", unix.Mkdir(m.path("empty"), 0o755), syscall.EEXIST)
	wantErrno(t, "unlink of a directory", unix.Unlink(m.path("empty")), syscall.EISDIR)
	if err := m.st.Check(); err != nil {
		t.Error(err)
	}
}

// copy_file_range copies a sparse file's data and keeps its holes, also
// over a destination that had data where the source has holes.
func TestCopyFileRangeKeepsHoles(t *testing.T) {
	m := mountStore(t, 16<<20)
	src, err := unix.Open(m.path("src"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(src)
	data := bytes.Repeat([]byte("data"), 1024)
	for _, off := range []int64{0, 1 << 20} {
		if _, err := unix.Pwrite(src, data, off); err != nil {
			t.Fatal(err)
		}
	}
	const size = 2 << 20
	if err := unix.Ftruncate(src, size); err != nil {
		t.Fatal(err)
	}
	old := bytes.Repeat([]byte{0xee}, 1<<20+8192)
	if err := m.st.Put("dst", old); err != nil {
		t.Fatal(err)
	}
	dst, err := unix.Open(m.path("dst"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dst)
	var copied int64
	for copied < size {
		offIn, offOut := copied, copied
		n, err := unix.CopyFileRange(src, &offIn, dst, &offOut, size-int(copied), 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		copied += int64(n)
	}
	if copied != size {
		t.Fatalf("copied %d bytes of %d", copied, size)
	}
	want, err := m.st.Get("src")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size+1)
	n, err := unix.Pread(dst, got, 0)
	if err != nil || n != size || !bytes.Equal(got[:n], want) {
		t.Fatalf("dst reads %d bytes (%v), equal to src: %v", n, err, bytes.Equal(got[:n], want))
	}
	for _, tc := range []struct{ off, hole int64 }{{0, 4096}, {1 << 20, 1<<20 + 4096}} {
		if h, err := unix.Seek(dst, tc.off, unix.SEEK_HOLE); err != nil || h != tc.hole {
			t.Errorf("SEEK_HOLE from %d in dst: %d, %v; want %d", tc.off, h, err, tc.hole)
		}
	}
	if d, err := unix.Seek(dst, 4096, unix.SEEK_DATA); err != nil || d != 1<<20 {
		t.Errorf("SEEK_DATA from 4096 in dst: %d, %v; want the source's next data at %d", d, err, 1<<20)
	}
}

// The kernel enforces the modes and owners the mount shows: another user
// may read a 0644 file of root's but neither write it nor create files in
// root's 0755 directory.
func TestOtherUsersGetTheModesPermissions(t *testing.T) {
	m := mountStoreWith(t, 16<<20, Options{AllowOther: true})
	if err := os.WriteFile(m.path("f"), []byte("root's"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Let the other user reach the mount point.
	for d := m.mnt; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil && d != m.mnt {
			t.Fatal(err)
		}
	}
	as := func(script string) error {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := as("cat " + m.path("f")); err != nil {
		t.Errorf("another user reading a 0644 file: %v", err)
	}
	if err := as("echo x >> " + m.path("f")); err == nil {
		t.Errorf("another user appended to root's 0644 file")
	}
	if err := as("echo x > " + m.path("g")); err == nil {
		t.Errorf("another user created a file in root's 0755 directory")
	}
	if v, _ := m.st.Get("f"); string(v) != "root's" {
		t.Errorf("f holds %q", v)
	}
}

// Past the store's largest file a write, a truncate and an fallocate fail
// with EFBIG, as past a local file system's limit, and change nothing.
func TestPastTheLargestFileIsEFBIG(t *testing.T) {
	m := mountStore(t, 16<<20)
	fd, err := unix.Open(m.path("f"), unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	_, err = unix.Pwrite(fd, []byte("x"), dax.MaxFileSize)
	wantErrno(t, "pwrite at MaxFileSize", err, syscall.EFBIG)
	wantErrno(t, "ftruncate past MaxFileSize", unix.Ftruncate(fd, dax.MaxFileSize+1), syscall.EFBIG)
	wantErrno(t, "fallocate past MaxFileSize", unix.Fallocate(fd, 0, dax.MaxFileSize-4096, 8192), syscall.EFBIG)
	if fi, err := m.st.Stat("f"); err != nil || fi.Size != 0 {
		t.Errorf("f after the refusals: %+v, %v", fi, err)
	}
}

// A file unlinked while open stays readable and writable through its open
// descriptors, is gone from the namespace at once, and leaves the store at
// its last close.
func TestUnlinkedOpenFileLivesUntilItsLastClose(t *testing.T) {
	m := mountStore(t, 16<<20)
	if err := os.WriteFile(m.path("tmp"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Descriptors stay open only while the test needs them: one left
	// open at exit would wait for this process's own server.
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	closeFd := func(fd int) {
		unix.Close(fd)
		fds = slices.DeleteFunc(fds, func(x int) bool { return x == fd })
	}
	fd, err := unix.Open(m.path("tmp"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds = append(fds, fd)
	fd2, err := unix.Open(m.path("tmp"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds = append(fds, fd2)
	if err := os.Remove(m.path("tmp")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.path("tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tmp after unlink: %v", err)
	}
	if ents, err := os.ReadDir(m.mnt); err != nil || len(ents) != 0 {
		t.Errorf("the root lists %v, %v after the unlink", ents, err)
	}
	if _, err := unix.Pwrite(fd, []byte("AFTER!"), 0); err != nil {
		t.Fatalf("write to the unlinked file: %v", err)
	}
	buf := make([]byte, 16)
	n, err := unix.Pread(fd2, buf, 0)
	if err != nil || string(buf[:n]) != "AFTER!" {
		t.Errorf("read of the unlinked file: %q, %v", buf[:n], err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink != 0 {
		t.Errorf("fstat of the unlinked file: nlink %d, %v", st.Nlink, err)
	}
	closeFd(fd)
	if fis, _ := m.st.List(""); len(fis) != 1 {
		t.Errorf("the store holds %v with a descriptor still open; want the hidden file", fis)
	}
	removed := make(chan string, 1)
	stop := m.st.Watch(func(c dax.FileChange) {
		if c.Kind == dax.ChangeRemove && strings.HasPrefix(c.Key, unlinkedPrefix) {
			removed <- c.Key
		}
	})
	defer stop()
	closeFd(fd2)
	// The kernel sends the last release after close returns; the bound
	// only turns a lost removal into a failure.
	select {
	case <-removed:
	case <-time.After(time.Minute):
		t.Fatal("the unlinked file was not removed at its last close")
	}
	if fis, _ := m.st.List(""); len(fis) != 0 {
		t.Errorf("the store holds %v after the last close", fis)
	}
	if err := m.st.Check(); err != nil {
		t.Error(err)
	}
}
