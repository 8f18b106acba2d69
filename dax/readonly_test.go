package dax

// Tests of opens that must not create or change anything: Options.ReadOnly,
// Options.MustExist, and option validation before the disk is touched.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/dirsnap"
	"github.com/daxstore/daxstore/internal/powercut"
	"github.com/daxstore/daxstore/internal/testhooks"
	"github.com/daxstore/daxstore/journal"
)

func takeTree(t testing.TB, dir string) dirsnap.Tree {
	t.Helper()
	tree, err := dirsnap.Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func wantSameTree(t testing.TB, dir string, before dirsnap.Tree, what string) {
	t.Helper()
	if d := dirsnap.Diff(before, takeTree(t, dir)); d != "" {
		t.Fatalf("%s changed %s:\n%s", what, dir, d)
	}
}

func TestReadOnlyOpenReadsAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, busy, values := busyStore(t, dir)
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	before := takeTree(t, dir)

	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("reads see the store", func(t *testing.T) {
		for k, v := range values {
			if got := mustGet(t, ro, k); !bytes.Equal(got, v) {
				t.Errorf("Get(%q) = %d bytes, want %d", k, len(got), len(v))
			}
		}
		files, err := ro.List("")
		if err != nil || len(files) != len(values) {
			t.Fatalf("List = %v, %v; want %d keys", files, err, len(values))
		}
		mustCheck(t, ro)
	})
	t.Run("busy extents are reported as the journal holds them", func(t *testing.T) {
		st := mustStats(t, ro)
		var stale uint64
		for _, b := range ro.Busy() {
			if !b.Stale {
				t.Errorf("busy extent %+v of a read-only store is not marked stale", b)
			}
			stale += b.Blocks
		}
		if st.BusyBlocks != busy || stale != busy {
			t.Fatalf("%d busy blocks in stats, %d listed; want %d", st.BusyBlocks, stale, busy)
		}
	})
	t.Run("every change is refused with ErrReadOnly", func(t *testing.T) {
		f := mustOpen(t, ro, "c")
		for name, call := range map[string]func() error{
			"Put":       func() error { return ro.Put("new", []byte("x")) },
			"Create":    func() error { _, err := ro.Create("new"); return err },
			"Remove":    func() error { return ro.Remove("c") },
			"Rename":    func() error { return ro.Rename("c", "d") },
			"WriteAt":   func() error { _, err := f.WriteAt([]byte("x"), 0); return err },
			"Truncate":  func() error { return f.Truncate(0) },
			"PunchHole": func() error { return f.PunchHole(0, 1) },
			"ZeroRange": func() error { return f.ZeroRange(0, 1) },
			"Allocate":  func() error { return f.Allocate(0, testBS) },
			"Pin":       func() error { _, err := f.Pin(0, 1, PinOptions{}); return err },
		} {
			if err := call(); !errors.Is(err, ErrReadOnly) {
				t.Errorf("%s on a read-only store = %v, want ErrReadOnly", name, err)
			}
		}
		mustCheck(t, ro)
	})
	t.Run("readers share the store and keep writers out", func(t *testing.T) {
		ro2, err := Open(dir, &Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("a second reader: %v", err)
		}
		defer ro2.Close()
		if _, err := Open(dir, &Options{NoAdminSocket: true}); !errors.Is(err, ErrLocked) {
			t.Fatalf("a writer beside readers: %v, want ErrLocked", err)
		}
		snap, err := Inspect(context.Background(), dir)
		if err != nil || snap.Stats.BusyBlocks != busy {
			t.Fatalf("Inspect beside readers: %+v, %v", snap, err)
		}
	})
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	wantSameTree(t, dir, before, "reading the store read-only")

	// A read-write store keeps readers out, and its recovery then frees
	// what the readers showed as busy.
	rw, err := Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := Open(dir, &Options{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a reader beside a writer: %v, want ErrLocked", err)
	}
	if st := mustStats(t, rw); st.BusyBlocks != 0 {
		t.Fatalf("%d busy blocks after a read-write open", st.BusyBlocks)
	}
}

func TestInspectChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := busyStore(t, dir)
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	before := takeTree(t, dir)
	for range 2 {
		if _, err := Inspect(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
	}
	wantSameTree(t, dir, before, "Inspect")
}

// storeless lays out directories that hold no usable store.
var storeless = []struct {
	name  string
	setup func(t *testing.T, dir string)
}{
	{"a missing directory", func(t *testing.T, dir string) {}},
	{"an empty directory", func(t *testing.T, dir string) { mkdir(t, dir) }},
	{"an empty journal directory", func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "journal")) }},
	{"a journal without a store", func(t *testing.T, dir string) {
		j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}},
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestOpensThatMustNotCreateFailWithErrNoStore(t *testing.T) {
	for _, tt := range storeless {
		for _, o := range []Options{{ReadOnly: true}, {MustExist: true, NoAdminSocket: true}} {
			name := "read-only"
			if o.MustExist {
				name = "must-exist"
			}
			t.Run(name+" open of "+tt.name, func(t *testing.T) {
				parent := t.TempDir()
				dir := filepath.Join(parent, "s")
				tt.setup(t, dir)
				before := takeTree(t, parent)
				s, err := Open(dir, &o)
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, ErrNoStore) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no store in "+dir) {
					t.Fatalf("Open = %v, want ErrNoStore naming %s", err, dir)
				}
				if o.ReadOnly || tt.name != "a journal without a store" {
					wantSameTree(t, parent, before, "a failed open")
					return
				}
				// A writer may tidy a journal that holds no store (Pebble
				// rewrites its files); it must not create one.
				after := takeTree(t, parent)
				for p := range after {
					if _, ok := before[p]; !ok && !strings.HasPrefix(p, filepath.Join("s", "journal")) {
						t.Errorf("a failed open created %s", p)
					}
				}
				if _, err := Open(dir, &Options{ReadOnly: true}); !errors.Is(err, ErrNoStore) {
					t.Fatalf("after a failed must-exist open, a reader finds: %v", err)
				}
			})
		}
	}
}

func TestHalfCreatedStore(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash between the journal's first batch and the region's creation.
	if err := os.Remove(filepath.Join(dir, "region")); err != nil {
		t.Fatal(err)
	}
	before := takeTree(t, dir)
	if _, err := Open(dir, &Options{ReadOnly: true}); !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("read-only open of a half-created store = %v, want ErrNoStore saying its creation did not finish", err)
	}
	wantSameTree(t, dir, before, "a read-only open of a half-created store")
	s, err = Open(dir, &Options{MustExist: true, NoAdminSocket: true})
	if err != nil {
		t.Fatalf("a must-exist open does not finish the creation: %v", err)
	}
	if st := mustStats(t, s); st.DataBlocks != 15 {
		t.Fatalf("finished store has %d data blocks, want 15", st.DataBlocks)
	}
	mustCheck(t, s)
	s.Close()
}

func TestOpenWithInvalidOptionsLeavesNothingBehind(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
	}{
		{"a block size that is not a power of two", Options{BlockSize: 3000}},
		{"a block size above 1 MiB", Options{BlockSize: 2 << 20}},
		{"a block size below 512", Options{BlockSize: 256}},
		{"a negative size", Options{Size: -1}},
		{"a size of one block", Options{Size: testBS}},
		{"an unknown break policy", Options{BreakPolicy: PolicyFail + 1}},
		{"a region path with a NUL byte", Options{RegionPath: "re\x00gion"}},
		{"read-only emulated media", Options{ReadOnly: true, media: testhooks.Media{PowerCut: powercut.New(1)}}},
	} {
		for _, existing := range []bool{false, true} {
			where := "a fresh directory"
			if existing {
				where = "an existing store"
			}
			t.Run(tt.name+" is refused in "+where, func(t *testing.T) {
				parent := t.TempDir()
				dir := filepath.Join(parent, "s")
				if existing {
					s, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true})
					if err != nil {
						t.Fatal(err)
					}
					s.Close()
				}
				before := takeTree(t, parent)
				o := tt.o
				o.NoAdminSocket = true
				s, err := Open(dir, &o)
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				wantErr(t, err, ErrInvalidRange)
				wantSameTree(t, parent, before, "an open with invalid options")
			})
		}
	}
	t.Run("a region path that is a directory is refused", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "s")
		before := takeTree(t, parent)
		if _, err := Open(dir, &Options{RegionPath: parent, NoAdminSocket: true}); !errors.Is(err, ErrInvalidRange) {
			t.Fatalf("Open = %v, want ErrInvalidRange", err)
		}
		wantSameTree(t, parent, before, "an open with a directory as region")
	})
}

func TestFailedCreateLeavesNothingBehind(t *testing.T) {
	t.Run("a region that cannot be created", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "a", "b", "s")
		before := takeTree(t, parent)
		_, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true, RegionPath: filepath.Join(parent, "missing", "region")})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open = %v, want the missing directory's error", err)
		}
		wantSameTree(t, parent, before, "a failed create")
	})
	t.Run("a region that fails after the journal was made", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "a", "s")
		// A dangling symbolic link: the region's O_EXCL create fails, after
		// the journal named the store.
		link := filepath.Join(parent, "region")
		if err := os.Symlink(filepath.Join(parent, "nowhere"), link); err != nil {
			t.Fatal(err)
		}
		before := takeTree(t, parent)
		if _, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true, RegionPath: link}); err == nil {
			t.Fatal("Open succeeded")
		}
		if d := dirsnap.DiffContents(before, takeTree(t, parent)); d != "" {
			t.Fatalf("a failed create left:\n%s", d)
		}
	})
	t.Run("into an existing empty journal directory", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "s")
		mkdir(t, filepath.Join(dir, "journal"))
		before := takeTree(t, parent)
		_, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true, RegionPath: filepath.Join(parent, "missing", "region")})
		if err == nil {
			t.Fatal("Open succeeded")
		}
		// The directories stay (they were there); what Open put in them goes.
		after := takeTree(t, parent)
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("a failed create left %s", p)
			}
		}
	})
	t.Run("a half-created store whose region fails again stays half-created", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		region := filepath.Join(dir, "region")
		if err := os.Remove(region); err != nil {
			t.Fatal(err)
		}
		// A directory where the region goes makes its creation fail.
		mkdir(t, filepath.Join(region+".d"))
		if _, err := Open(dir, &Options{NoAdminSocket: true, RegionPath: filepath.Join(region+".d", "x", "r")}); err == nil {
			t.Fatal("Open succeeded")
		}
		s, err = Open(dir, &Options{NoAdminSocket: true})
		if err != nil {
			t.Fatalf("the next open does not finish the store: %v", err)
		}
		mustCheck(t, s)
		s.Close()
	})
}

// TestReadOnlyRegionMapping proves a read-only store maps its region
// without write permission: it opens a region file the process may not
// write.
func TestReadOnlyStoreOpensARegionItMayNotWrite(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write any file; the CLI tests run this case as an unprivileged user")
	}
	dir := t.TempDir()
	s := newStoreIn(t, dir)
	mustPut(t, s, "k", []byte("v"))
	s.Close()
	if err := os.Chmod(filepath.Join(dir, "region"), 0o400); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := mustGet(t, ro, "k"); string(got) != "v" {
		t.Fatalf("Get = %q", got)
	}
}

func newStoreIn(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, &Options{Size: 16 * testBS, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
