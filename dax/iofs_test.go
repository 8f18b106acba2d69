package dax

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"
	"time"
)

// fsTree fills s with a tree that exercises every kind of thing the io/fs
// view shows, and returns each file's expected bytes by key.
//
//	top.txt         inline small value (Put)
//	empty/          explicit empty directory (Mkdir)
//	a/b/c.txt       small value two levels down (implicit directories)
//	a/b/big.bin     several blocks written through WriteAt
//	a/sparse        three blocks' worth, a hole, a written run, a hole
//
// The files stay small because fstest reads each of them a few bytes at
// a time (slow with the lockcheck build); TestFSReadsLargeFiles reads
// large ones. For the same reason the store takes the smallest blocks,
// fsTreeBS: newFSTreeStore.
//
//	a/e/            explicit empty directory inside an implicit one
//	a/mode600       a file created with attributes (mode 0600)
func fsTree(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	put := func(key string, v []byte) {
		t.Helper()
		if err := s.Put(key, v); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
		want[key] = v
	}
	put("top.txt", []byte("top of the tree\n"))
	put("a/b/c.txt", []byte("c\n"))

	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 2*fsTreeBS+100)
	rng.Read(big)
	writeFile(t, s, "a/b/big.bin", map[int64][]byte{0: big}, int64(len(big)))
	want["a/b/big.bin"] = big

	sparse := make([]byte, 3*fsTreeBS)
	runs := map[int64][]byte{fsTreeBS + 100: []byte("data between holes")}
	for off, b := range runs {
		copy(sparse[off:], b)
	}
	writeFile(t, s, "a/sparse", runs, int64(len(sparse)))
	want["a/sparse"] = sparse
	if f, err := s.Open("a/sparse"); err != nil {
		t.Fatal(err)
	} else {
		data, derr := f.SeekData(0)
		hole, herr := f.SeekHole(data)
		f.Close()
		if derr != nil || herr != nil || data != fsTreeBS || hole != 2*fsTreeBS {
			t.Fatalf("a/sparse: data at %d (%v), hole at %d (%v); want a hole, one block of data, a hole", data, derr, hole, herr)
		}
	}

	f, err := s.CreateWith("a/mode600", AttrChange{Mask: AttrMode, Mode: 0o600})
	if err != nil {
		t.Fatalf("create with attributes: %v", err)
	}
	if _, err := f.WriteAt([]byte("private"), 0); err != nil {
		t.Fatalf("write: %v", err)
	}
	f.Close()
	want["a/mode600"] = []byte("private")

	for _, d := range []string{"empty", "a/e"} {
		if err := s.Mkdir(d, AttrChange{}); err != nil {
			t.Fatalf("mkdir %q: %v", d, err)
		}
	}
	return want
}

// fsTreeBS is the block size of the store fsTree fills.
const fsTreeBS = 512

// newFSTreeStore opens a store for fsTree.
func newFSTreeStore(t *testing.T) *Store {
	return newStore(t, 16<<20, func(o *Options) { o.BlockSize = fsTreeBS })
}

// writeFile creates key with the given runs written at their offsets and
// truncates it to size.
func writeFile(t *testing.T, s *Store, key string, runs map[int64][]byte, size int64) {
	t.Helper()
	f, err := s.Create(key)
	if err != nil {
		t.Fatalf("create %q: %v", key, err)
	}
	defer f.Close()
	for off, b := range runs {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatalf("write %q at %d: %v", key, off, err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatalf("truncate %q: %v", key, err)
	}
}

func TestFSPassesFSTest(t *testing.T) {
	s := newFSTreeStore(t)
	want := fsTree(t, s)
	fsys := s.FS()
	// TestFS also tests fs.Sub(fsys, "a"), the first directory named.
	if err := fstest.TestFS(fsys, "a/b/c.txt", "top.txt", "empty", "a", "a/b", "a/b/big.bin", "a/sparse", "a/e", "a/mode600"); err != nil {
		t.Fatal(err)
	}
	for key, b := range want {
		got, err := fs.ReadFile(fsys, key)
		if err != nil {
			t.Fatalf("ReadFile %q: %v", key, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("ReadFile %q: %d bytes, want %d (or they differ)", key, len(got), len(b))
		}
	}
	mustCheck(t, s)
}

// Large files, written in blocks and sparse, read back whole through
// ReadFile, through Read, and through ReadAt at random offsets.
func TestFSReadsLargeFiles(t *testing.T) {
	s := newStore(t, 64<<20, nil)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	big := make([]byte, 5<<20+123)
	rng.Read(big)
	writeFile(t, s, "big", map[int64][]byte{0: big}, int64(len(big)))
	sparse := make([]byte, 24<<20)
	runs := map[int64][]byte{}
	for range 8 {
		off := rng.Int63n(int64(len(sparse)) - 64<<10)
		b := make([]byte, 1+rng.Intn(64<<10))
		rng.Read(b)
		runs[off] = b
	}
	f, err := s.Create("sparse")
	if err != nil {
		t.Fatal(err)
	}
	offs := slices.Sorted(maps.Keys(runs))
	for _, off := range offs {
		if _, err := f.WriteAt(runs[off], off); err != nil {
			t.Fatal(err)
		}
		copy(sparse[off:], runs[off])
	}
	if err := f.Truncate(int64(len(sparse))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fsys := s.FS()
	for name, want := range map[string][]byte{"big": big, "sparse": sparse} {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %d: ReadFile(%s): %d bytes, %v; want %d bytes equal", seed, name, len(got), err, len(want))
		}
		file, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(file)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %d: ReadAll(%s): %d bytes, %v; want %d bytes equal", seed, name, len(got), err, len(want))
		}
		ra := file.(io.ReaderAt)
		for range 100 {
			off := rng.Int63n(int64(len(want)))
			n := rng.Intn(256 << 10)
			buf := make([]byte, n)
			m, err := ra.ReadAt(buf, off)
			wantN := min(n, len(want)-int(off))
			if m != wantN || !bytes.Equal(buf[:m], want[off:off+int64(m)]) || (m < n) != (err == io.EOF) || err != nil && err != io.EOF {
				t.Fatalf("seed %d: ReadAt(%s, %d bytes at %d) = %d, %v; want %d bytes", seed, name, n, off, m, err, wantN)
			}
		}
		file.Close()
	}
}

// The whole tree is what fs.WalkDir sees, in lexical order, and nothing
// else.
func TestFSWalkDirSubGlob(t *testing.T) {
	s := newFSTreeStore(t)
	fsTree(t, s)
	fsys := s.FS()
	var walked []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		kind := "f"
		if d.IsDir() {
			kind = "d"
		}
		walked = append(walked, kind+" "+p)
		return nil
	})
	if err != nil {
		t.Fatalf("WalkDir: %v", err)
	}
	want := []string{"d .", "d a", "d a/b", "f a/b/big.bin", "f a/b/c.txt", "d a/e", "f a/mode600", "f a/sparse", "d empty", "f top.txt"}
	if !slices.Equal(walked, want) {
		t.Fatalf("WalkDir saw\n%q\nwant\n%q", walked, want)
	}

	sub, err := fs.Sub(fsys, "a")
	if err != nil {
		t.Fatalf("Sub: %v", err)
	}
	if got, err := fs.ReadFile(sub, "b/c.txt"); err != nil || string(got) != "c\n" {
		t.Fatalf("ReadFile b/c.txt in Sub(a) = %q, %v", got, err)
	}
	if _, err := fs.Stat(sub, "top.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat top.txt in Sub(a): %v, want fs.ErrNotExist", err)
	}
	subsub, err := fs.Sub(sub, "b")
	if err != nil {
		t.Fatalf("Sub of Sub: %v", err)
	}
	if got, err := fs.ReadFile(subsub, "c.txt"); err != nil || string(got) != "c\n" {
		t.Fatalf("ReadFile c.txt in Sub(Sub(a), b) = %q, %v", got, err)
	}
	if _, err := fs.Sub(fsys, "../x"); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Sub(../x): %v, want fs.ErrInvalid", err)
	}
	// A view rooted at a file or at nothing has no root directory.
	for _, dir := range []string{"top.txt", "nothing"} {
		v, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatalf("Sub(%s): %v", dir, err)
		}
		if _, err := v.Open("."); err == nil {
			t.Fatalf("Open(.) in Sub(%s) succeeded", dir)
		}
		if _, err := fs.Stat(v, "."); err == nil {
			t.Fatalf("Stat(.) in Sub(%s) succeeded", dir)
		}
	}

	for pattern, want := range map[string][]string{
		"a/b/*.txt": {"a/b/c.txt"},
		"*/*":       {"a/b", "a/e", "a/mode600", "a/sparse"},
		"*.txt":     {"top.txt"},
		"[ae]*":     {"a", "empty"},
	} {
		got, err := fs.Glob(fsys, pattern)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Glob(%q) = %q, %v; want %q", pattern, got, err, want)
		}
	}
}

// Keys that are not valid paths appear nowhere in the view, and open under
// no name, but stay readable through the key API.
func TestFSHidesInvalidPathKeys(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	hidden := []string{"/abs", "x//y", "dir/", "./dot", "a/../b", "z/.", "..", ".", "q/./r"}
	for _, k := range append(hidden, "ok/file") {
		if err := s.Put(k, []byte(k)); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	fsys := s.FS()
	var walked []string
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		walked = append(walked, p)
		return err
	}); err != nil {
		t.Fatalf("WalkDir: %v", err)
	}
	if want := []string{".", "ok", "ok/file"}; !slices.Equal(walked, want) {
		t.Fatalf("WalkDir saw %q, want %q", walked, want)
	}
	for _, name := range []string{"x", "dir", "z", "q", "a", "b", "dot", "abs", "y"} {
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q): %v, want fs.ErrNotExist", name, err)
		}
	}
	for _, k := range hidden {
		if k == "." {
			// The name of the root: the key "." is hidden behind it.
			if fi, err := fs.Stat(fsys, k); err != nil || !fi.IsDir() {
				t.Errorf("Stat(.) = %v, %v; want the root directory", fi, err)
			}
		} else if _, err := fsys.Open(k); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q): %v, want fs.ErrInvalid", k, err)
		}
		if got, err := s.Get(k); err != nil || string(got) != k {
			t.Errorf("Get(%q) = %q, %v; the key API must still reach it", k, got, err)
		}
	}
	if err := fstest.TestFS(fsys, "ok/file"); err != nil {
		t.Fatal(err)
	}
}

// Names io/fs refuses, and names the store cannot hold, are fs.ErrInvalid
// from every method; names that could exist but do not are fs.ErrNotExist.
func TestFSBadNames(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	if err := s.Put("f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	fsys := s.FS().(interface {
		fs.ReadFileFS
		fs.StatFS
		fs.ReadDirFS
	})
	calls := map[string]func(string) error{
		"Open":     func(n string) error { _, err := fsys.Open(n); return err },
		"Stat":     func(n string) error { _, err := fsys.Stat(n); return err },
		"ReadFile": func(n string) error { _, err := fsys.ReadFile(n); return err },
		"ReadDir":  func(n string) error { _, err := fsys.ReadDir(n); return err },
	}
	for call, fn := range calls {
		for _, n := range []string{"", "/f", "f/", "./f", "../f", "a//f", strings.Repeat("k", MaxKeyLen+1), "nul\x00"} {
			err := fn(n)
			var pe *fs.PathError
			if !errors.Is(err, fs.ErrInvalid) || !errors.As(err, &pe) || pe.Path != n {
				t.Errorf("%s(%.20q): %v, want an *fs.PathError for the name wrapping fs.ErrInvalid", call, n, err)
			}
		}
		for _, n := range []string{"missing", "f/under-a-file", "no/such/dir"} {
			err := fn(n)
			if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNotFound) {
				t.Errorf("%s(%q): %v, want fs.ErrNotExist and ErrNotFound", call, n, err)
			}
		}
	}
	if _, err := fsys.ReadDir("f"); err == nil {
		t.Errorf("ReadDir of a file succeeded")
	}
	if _, err := fsys.ReadFile("."); !errors.Is(err, ErrIsDir) {
		t.Errorf("ReadFile(.): %v, want ErrIsDir", err)
	}
	mustCheck(t, s)
}

// A name that is both a file key and a directory is the directory.
func TestFSFileDirNameClash(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	for _, k := range []string{"c", "c/d"} {
		if err := s.Put(k, []byte("value of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	fsys := s.FS()
	list, err := fs.ReadDir(fsys, ".")
	if err != nil || len(list) != 1 || list[0].Name() != "c" || !list[0].IsDir() {
		t.Fatalf("ReadDir(.) = %v, %v; want the one directory c", list, err)
	}
	fi, err := fs.Stat(fsys, "c")
	if err != nil || !fi.IsDir() {
		t.Fatalf("Stat(c) = %v, %v; want a directory", fi, err)
	}
	if _, ok := fi.Sys().(DirInfo); !ok {
		t.Fatalf("Stat(c).Sys() is %T, want DirInfo", fi.Sys())
	}
	if _, err := fs.ReadFile(fsys, "c"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("ReadFile(c): %v, want ErrIsDir", err)
	}
	f, err := fsys.Open("c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 1)); err == nil {
		t.Fatalf("Read of the directory c succeeded")
	}
	f.Close()
	if got, err := fs.ReadFile(fsys, "c/d"); err != nil || string(got) != "value of c/d" {
		t.Fatalf("ReadFile(c/d) = %q, %v", got, err)
	}
	if err := fstest.TestFS(fsys, "c", "c/d"); err != nil {
		t.Fatal(err)
	}
}

// Modes come from attributes, with defaults for files and directories
// that have none; Sys is the store's own description.
func TestFSModesAndSys(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	if err := s.Put("plain", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("imp/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("special", nil); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	if _, err := s.SetAttr("special", AttrChange{Mask: AttrMode | AttrMTime, Mode: 0o4000 | 0o2000 | 0o1000 | 0o750, MTime: mtime}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mkdir("private", AttrChange{Mask: AttrMode, Mode: 0o700}); err != nil {
		t.Fatal(err)
	}
	fsys := s.FS()
	for name, want := range map[string]fs.FileMode{
		".":       fs.ModeDir | 0o755,
		"plain":   0o644,
		"imp":     fs.ModeDir | 0o755,
		"imp/x":   0o644,
		"special": fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o750,
		"private": fs.ModeDir | 0o700,
	} {
		fi, err := fs.Stat(fsys, name)
		if err != nil {
			t.Fatalf("Stat(%s): %v", name, err)
		}
		if fi.Mode() != want {
			t.Errorf("Stat(%s).Mode() = %v, want %v", name, fi.Mode(), want)
		}
		switch sys := fi.Sys().(type) {
		case FileInfo:
			if fi.IsDir() || sys.Key != name || sys.Size != fi.Size() {
				t.Errorf("Stat(%s).Sys() = %+v, does not describe the file", name, sys)
			}
		case DirInfo:
			if !fi.IsDir() || (name == "." && sys.Path != "") || (name != "." && sys.Path != name) {
				t.Errorf("Stat(%s).Sys() = %+v, does not describe the directory", name, sys)
			}
		default:
			t.Errorf("Stat(%s).Sys() is %T", name, sys)
		}
	}
	fi, err := fs.Stat(fsys, "special")
	if err != nil || !fi.ModTime().Equal(mtime) {
		t.Fatalf("Stat(special).ModTime() = %v, %v; want %v", fi.ModTime(), err, mtime)
	}
}

// A directory's ReadDir(n) pages through the listing n entries at a time,
// ending with io.EOF, and agrees with ReadDir(-1).
func TestFSReadDirPaging(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	var names []string
	for i := range 10 {
		k := string(rune('a'+i)) + ".txt"
		if err := s.Put("d/"+k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		names = append(names, k)
	}
	if err := s.Mkdir("d/sub", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	names = append(names, "sub")
	fsys := s.FS()
	f, err := fsys.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	dir := f.(fs.ReadDirFile)
	var got []string
	var sizes []int
	for {
		page, err := dir.ReadDir(3)
		if err == io.EOF {
			if len(page) != 0 {
				t.Fatalf("ReadDir(3) returned %d entries with io.EOF", len(page))
			}
			break
		}
		if err != nil {
			t.Fatalf("ReadDir(3): %v", err)
		}
		sizes = append(sizes, len(page))
		for _, e := range page {
			got = append(got, e.Name())
		}
	}
	if !slices.Equal(got, names) || !slices.Equal(sizes, []int{3, 3, 3, 2}) {
		t.Fatalf("paged listing %q in pages %v, want %q in pages of 3", got, sizes, names)
	}
	if rest, err := dir.ReadDir(-1); err != nil || len(rest) != 0 {
		t.Fatalf("ReadDir(-1) at the end = %v, %v; want nothing", rest, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Close: %v, want fs.ErrClosed", err)
	}
	if _, err := dir.ReadDir(1); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("ReadDir after Close: %v, want fs.ErrClosed", err)
	}

	// Closing in the middle of a listing lets go of it.
	f, err = fsys.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	if page, err := f.(fs.ReadDirFile).ReadDir(2); err != nil || len(page) != 2 {
		t.Fatalf("ReadDir(2) = %v, %v", page, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// An open file is an io.ReaderAt and io.Seeker that follows the file.
func TestFSFileReaderAtSeeker(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	content := make([]byte, 3*testBS+17)
	rand.New(rand.NewSource(2)).Read(content[testBS:])
	writeFile(t, s, "f", map[int64][]byte{testBS: content[testBS:]}, int64(len(content)))
	f, err := s.FS().Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := iotest.TestReader(f, content); err != nil {
		t.Fatal(err)
	}
	ra := f.(io.ReaderAt)
	sk := f.(io.Seeker)
	if _, err := ra.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("ReadAt at -1 succeeded")
	}
	if _, err := sk.Seek(-1, io.SeekStart); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Seek(-1): %v, want fs.ErrInvalid", err)
	}
	if _, err := sk.Seek(0, 7); !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Seek whence 7: %v, want fs.ErrInvalid", err)
	}
	// The file grows after Open: SeekEnd and reads see it.
	g, err := s.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("tail"), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if off, err := sk.Seek(-4, io.SeekEnd); err != nil || off != int64(len(content)) {
		t.Fatalf("Seek(-4, end) = %d, %v", off, err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "tail" {
		t.Fatalf("read after growth = %q, %v", b, err)
	}
}

// A file removed after Open reads as an error, never a panic, and Close
// still works once.
func TestFSFileRemovedAfterOpen(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	writeFile(t, s, "gone", map[int64][]byte{0: []byte("soon gone")}, 9)
	f, err := s.FS().Open("gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 4)); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read after Remove: %v, want fs.ErrNotExist", err)
	}
	if _, err := f.(io.ReaderAt).ReadAt(make([]byte, 4), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadAt after Remove: %v, want fs.ErrNotExist", err)
	}
	if _, err := f.(io.Seeker).Seek(0, io.SeekEnd); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Seek(end) after Remove: %v, want fs.ErrNotExist", err)
	}
	var pe *fs.PathError
	if _, err := f.Read(make([]byte, 4)); !errors.As(err, &pe) || pe.Path != "gone" || pe.Op != "read" {
		t.Fatalf("Read after Remove: %v, want an *fs.PathError read gone", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second Close: %v, want fs.ErrClosed", err)
	}
	if _, err := f.Read(make([]byte, 4)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Read after Close: %v, want fs.ErrClosed", err)
	}
	mustCheck(t, s)
}

// After the store's Close, the view and the files opened through it fail
// with fs.ErrClosed and do not panic.
func TestFSAfterStoreClose(t *testing.T) {
	s := newStore(t, 16<<20, nil)
	for _, k := range []string{"d/x", "d/y", "f"} {
		if err := s.Put(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	fsys := s.FS().(interface {
		fs.ReadFileFS
		fs.StatFS
		fs.ReadDirFS
		fs.SubFS
	})
	file, err := fsys.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := fsys.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWith(t.Context(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, fs.ErrClosed) || !errors.Is(err, ErrClosed) {
			t.Errorf("%s after the store's Close: %v, want fs.ErrClosed", what, err)
		}
	}
	_, err = fsys.Open("f")
	check("Open", err)
	_, err = fsys.Stat("d")
	check("Stat", err)
	_, err = fsys.ReadFile("f")
	check("ReadFile", err)
	_, err = fsys.ReadDir("d")
	check("ReadDir", err)
	_, err = file.Read(make([]byte, 1))
	check("Read", err)
	_, err = dir.(fs.ReadDirFile).ReadDir(1)
	check("dir ReadDir", err)
	sub, err := fsys.Sub("d")
	if err != nil {
		t.Fatalf("Sub: %v", err)
	}
	_, err = sub.Open(".")
	check("Open in Sub", err)
	// Closing what was open before the store closed neither panics nor
	// reports a failure of its own.
	file.Close()
	if err := dir.Close(); err != nil {
		t.Errorf("dir Close: %v", err)
	}
}
