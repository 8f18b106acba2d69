package dax

// Creating a store on a filesystem without room for its region: the error
// matches ErrNoSpace, and what is left never breaks the next Open.

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/tmpfs"

	"github.com/daxstore/daxstore/internal/dirsnap"
)

// smallTmpfs mounts a tmpfs of size on a fresh directory and returns it.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	tmpfs.Mount(t, dir, size)
	return dir
}

func TestRegionOnAFullFilesystem(t *testing.T) {
	t.Run("a region larger than its filesystem opens: space follows use", func(t *testing.T) {
		fsDir := smallTmpfs(t, "4m")
		dir := filepath.Join(fsDir, "s")
		s, err := Open(dir, &Options{Size: 16 << 20, NoAdminSocket: true})
		if err != nil {
			t.Fatalf("Open of a 16 MiB region on a 4 MiB filesystem: %v", err)
		}
		mustPut(t, s, "k", []byte("v"))
		mustCheck(t, s)
		s.Close()
	})
	t.Run("a region on a full filesystem leaves nothing behind", func(t *testing.T) {
		fsDir := smallTmpfs(t, "4m")
		parent := t.TempDir()
		dir := filepath.Join(parent, "s")
		free := tmpfs.Fill(t, fsDir)
		before, beforeFS := takeTree(t, parent), takeTree(t, fsDir)
		_, err := Open(dir, &Options{Size: 16 << 20, NoAdminSocket: true, RegionPath: filepath.Join(fsDir, "region")})
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Open = %v, want ErrNoSpace", err)
		}
		if d := dirsnap.DiffContents(before, takeTree(t, parent)); d != "" {
			t.Fatalf("the failed create left in the store directory:\n%s", d)
		}
		if d := dirsnap.DiffContents(beforeFS, takeTree(t, fsDir)); d != "" {
			t.Fatalf("the failed create left on the region's filesystem:\n%s", d)
		}
		free()
		s, err := Open(dir, &Options{Size: 16 << 20, NoAdminSocket: true, RegionPath: filepath.Join(fsDir, "region")})
		if err != nil {
			t.Fatalf("the open after space came back: %v", err)
		}
		mustPut(t, s, "k", []byte("v"))
		mustCheck(t, s)
		s.Close()
	})
	t.Run("a half-created store stays finishable", func(t *testing.T) {
		// The journal lives apart from the full filesystem: a journal that
		// cannot write is another matter (the journal's fault tests).
		fsDir := smallTmpfs(t, "4m")
		dir := t.TempDir()
		o := &Options{Size: 1 << 20, NoAdminSocket: true, RegionPath: filepath.Join(fsDir, "region")}
		s, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		// A crash between the journal's first batch and the region file.
		if err := os.Remove(o.RegionPath); err != nil {
			t.Fatal(err)
		}
		free := tmpfs.Fill(t, fsDir)
		before := takeTree(t, dir)
		_, err = Open(dir, o)
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("Open on a full filesystem = %v, want ErrNoSpace", err)
		}
		if _, err := os.Lstat(o.RegionPath); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a partial region was left: %v", err)
		}
		// The journal is Pebble's and may have been tidied; the store
		// directory holds the same entries.
		after := takeTree(t, dir)
		for p := range after {
			if _, ok := before[p]; !ok && filepath.Dir(p) != "journal" {
				t.Errorf("the failed open left %s", p)
			}
		}
		free()
		s, err = Open(dir, o)
		if err != nil {
			t.Fatalf("the open after space came back: %v", err)
		}
		if st := mustStats(t, s); st.DataBlocks != 255 {
			t.Fatalf("the finished store has %d data blocks, want 255", st.DataBlocks)
		}
		mustCheck(t, s)
		s.Close()
	})
}
