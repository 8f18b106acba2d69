// Package tmpfs is test plumbing: small real filesystems that run out of
// space, for tests of what the store does when its disk is full. Mounting
// needs root; the tests that use it skip, saying why, where that is
// refused.
package tmpfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size (a mount option such as "2m") on dir,
// creating dir if it is missing, and unmounts it when the test ends. It
// skips the test when this process may not mount.
func Mount(t testing.TB, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file open: let the kernel finish
			// the unmount when it lets go.
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// Resize changes the size of the tmpfs mounted on dir, keeping its files.
func Resize(t testing.TB, dir, size string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size="+size); err != nil {
		t.Fatalf("resize the tmpfs on %s to %s: %v", dir, size, err)
	}
}

// Fill takes all the free space of the filesystem under dir with one file,
// and returns a function that frees it again.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(st.Bavail)*st.Bsize); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
