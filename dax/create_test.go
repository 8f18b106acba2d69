package dax

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A crash between the journal's first batch and the region's creation must
// not leave a store that cannot be opened: the journal is written first,
// and Open finishes creating an empty store whose region is missing.
func TestOpenFinishesACreationCutShortBeforeTheRegion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 4 << 20, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	want := s.region.Superblock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "region")); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatalf("open of a store whose region was never created: %v", err)
	}
	defer s.Close()
	if got := s.region.Superblock(); got != want {
		t.Fatalf("recreated region %+v, journal described %+v", got, want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// A store that holds data is never silently recreated when its region is
// missing: that would lose every key.
func TestOpenRefusesAMissingRegionOfAStoreWithData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 4 << 20, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "region")); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, &Options{NoAdminSocket: true})
	if err == nil {
		s.Close()
		t.Fatal("open recreated the region of a store that held a key")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v does not say the region is missing", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "region")); serr == nil {
		t.Fatal("a failed open created a region")
	}
}
