package dax

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/journal"
)

func TestValidPath(t *testing.T) {
	for key, want := range map[string]bool{
		"a": true, "a/b": true, "a b/c.d": true, "é/ü": true,
		"": false, ".": false, "..": false, "/a": false, "a/": false, "a//b": false,
		"a/./b": false, "a/../b": false, "a\x00b": false, "\xff": false,
		strings.Repeat("k", MaxKeyLen): true, strings.Repeat("k", MaxKeyLen+1): false,
	} {
		if got := ValidPath(key); got != want {
			t.Errorf("ValidPath(%q) = %v, want %v", key, got, want)
		}
	}
}

// dirListing returns ReadDir(path) as "name" and "name/" strings.
func dirListing(t *testing.T, s *Store, path string) []string {
	t.Helper()
	var out []string
	for e, err := range s.ReadDir(path) {
		if err != nil {
			t.Fatalf("ReadDir(%q): %v", path, err)
		}
		if e.IsDir {
			out = append(out, e.Name+"/")
		} else {
			if e.File.Key != under(path)+e.Name {
				t.Fatalf("ReadDir(%q): entry %q describes key %q", path, e.Name, e.File.Key)
			}
			out = append(out, e.Name)
		}
	}
	return out
}

func wantListing(t *testing.T, s *Store, path string, want ...string) {
	t.Helper()
	if got := dirListing(t, s, path); !slices.Equal(got, want) {
		t.Fatalf("ReadDir(%q) = %q, want %q", path, got, want)
	}
}

func TestMkdirRmdirSemantics(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "f", []byte("file"))
	mustPut(t, s, "imp/k", []byte("v"))
	if err := s.Mkdir("a", AttrChange{Mask: AttrMode | AttrUID, Mode: 0o700, UID: 9}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mkdir("a/b", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	listing := dirListing(t, s, "")
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"mkdir existing", s.Mkdir("a", AttrChange{}), ErrExist},
		{"mkdir implicit", s.Mkdir("imp", AttrChange{}), ErrExist},
		{"mkdir over file", s.Mkdir("f", AttrChange{}), ErrExist},
		{"mkdir under file", s.Mkdir("f/g", AttrChange{}), ErrNotDir},
		{"mkdir deep under file", s.Mkdir("f/g/h", AttrChange{}), ErrNotDir},
		{"mkdir no parent", s.Mkdir("x/y", AttrChange{}), ErrNotFound},
		{"mkdir root", s.Mkdir("", AttrChange{}), ErrInvalidKey},
		{"mkdir slash", s.Mkdir("/a", AttrChange{}), ErrInvalidKey},
		{"mkdir trailing", s.Mkdir("n/", AttrChange{}), ErrInvalidKey},
		{"mkdir dot", s.Mkdir(".", AttrChange{}), ErrInvalidKey},
		{"mkdir dotdot", s.Mkdir("a/..", AttrChange{}), ErrInvalidKey},
		{"mkdir double", s.Mkdir("a//c", AttrChange{}), ErrInvalidKey},
		{"mkdir long", s.Mkdir(strings.Repeat("d", MaxKeyLen+1), AttrChange{}), ErrInvalidKey},
		{"mkdir mode", s.Mkdir("n", AttrChange{Mask: AttrMode, Mode: 0o40755}), ErrInvalidRange},
		{"rmdir not empty (dir)", s.Rmdir("a"), ErrNotEmpty},
		{"rmdir implicit", s.Rmdir("imp"), ErrNotEmpty},
		{"rmdir missing", s.Rmdir("nope"), ErrNotFound},
		{"rmdir file", s.Rmdir("f"), ErrNotDir},
		{"rmdir root", s.Rmdir(""), ErrInvalidKey},
		{"put over explicit dir", s.Put("a", []byte("x")), ErrIsDir},
		{"create over explicit dir", func() error { _, err := s.Create("a/b"); return err }(), ErrIsDir},
		{"rename onto explicit dir", s.Rename("f", "a"), ErrIsDir},
		{"rename replace onto explicit dir", s.RenameWith(t0(), "f", "a/b", RenameOptions{Replace: true}), ErrIsDir},
		{"setdirattr missing", func() error { _, err := s.SetDirAttr("nope", AttrChange{}); return err }(), ErrNotFound},
		{"setdirattr file", func() error { _, err := s.SetDirAttr("f", AttrChange{}); return err }(), ErrNotDir},
		{"setdirattr mode", func() error { _, err := s.SetDirAttr("a", AttrChange{Mask: AttrMode, Mode: 1 << 12}); return err }(), ErrInvalidRange},
		{"statdir file", func() error { _, err := s.StatDir("f"); return err }(), ErrNotFound},
		{"statdir bad", func() error { _, err := s.StatDir("a/"); return err }(), ErrInvalidKey},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	sameState(t, s, before)
	if got := dirListing(t, s, ""); !slices.Equal(got, listing) {
		t.Fatalf("failed calls changed the root from %q to %q", listing, got)
	}

	di, err := s.StatDir("a")
	if err != nil || !di.Explicit || !di.HasAttr || di.Mode != 0o700 || di.UID != 9 {
		t.Fatalf("StatDir(a) = %+v %v", di, err)
	}
	di, err = s.StatDir("imp")
	if err != nil || di.Explicit || di.HasAttr || di.Mode != 0o755 {
		t.Fatalf("StatDir(imp) = %+v %v", di, err)
	}
	if _, err := s.StatDir("a/b/c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatDir(a/b/c): %v", err)
	}
	// A file under a directory; Rmdir refuses until it is gone.
	mustPut(t, s, "a/b/k", []byte("v"))
	wantErr(t, s.Rmdir("a/b"), ErrNotEmpty)
	if err := s.Remove("a/b/k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir("a/b"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	s = reopen(t, s, &Options{NoSync: true, NoAdminSocket: true})
	wantListing(t, s, "", "a/", "f", "imp/")
	// The reopened store learns that it holds directories.
	wantErr(t, s.Put("a", nil), ErrIsDir)
	wantListing(t, s, "a")
	if err := s.Rmdir("a"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Rmdir("a"), ErrNotFound)
	mustCheck(t, s)
}

func TestSetDirAttrMakesImplicitExplicit(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "d/k", []byte("v"))
	at := time.Unix(5, 6)
	di, err := s.SetDirAttr("d", AttrChange{Mask: AttrMode | AttrGID | AttrATime, Mode: 0o750, GID: 3, ATime: at})
	if err != nil {
		t.Fatal(err)
	}
	if !di.Explicit || di.Mode != 0o750 || di.GID != 3 || !di.ATime.Equal(at) {
		t.Fatalf("SetDirAttr = %+v", di)
	}
	root, err := s.SetDirAttr("", AttrChange{Mask: AttrMode, Mode: 0o711})
	if err != nil || root.Mode != 0o711 || root.Explicit {
		t.Fatalf("root: %+v %v", root, err)
	}
	// d stays after its last key goes: it is explicit now.
	if err := s.Remove("d/k"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, &Options{NoSync: true, NoAdminSocket: true})
	if di, err := s.StatDir("d"); err != nil || di.Mode != 0o750 || di.GID != 3 {
		t.Fatalf("after reopen: %+v %v", di, err)
	}
	if root, err := s.StatDir(""); err != nil || root.Mode != 0o711 {
		t.Fatalf("root after reopen: %+v %v", root, err)
	}
	wantListing(t, s, "", "d/")
	mustCheck(t, s)
}

func TestReadDirOrderHidingAndClashes(t *testing.T) {
	s := newStore(t, 256*testBS, func(o *Options) { o.InlineLimit = 16 })
	for _, k := range []string{"a.txt", "a/x", "a/y/z", "a-b", "b", "a", "c/", "d//e", "./f", "a b/q", "z/a/b/c/d"} {
		mustPut(t, s, k, []byte(k))
	}
	for _, d := range []string{"e", "a/q", "a/y/w", "g"} {
		if err := s.Mkdir(d, AttrChange{}); err != nil {
			t.Fatal(err)
		}
	}
	// The explicit directory "g" (record "g") is found before the key
	// "g-", which sorts before the subtree "g/...": skipping the subtree
	// must not skip "g-".
	mustPut(t, s, "g-", nil)
	mustPut(t, s, "g/k", nil)
	// "a" is a file and a directory: the directory wins; "a b" and "a-b"
	// and "a.txt" sort after "a" by name though their keys sort before
	// "a/...". "c/", "d//e" and "./f" are not valid paths: hidden.
	wantListing(t, s, "", "a/", "a b/", "a-b", "a.txt", "b", "e/", "g/", "g-", "z/")
	wantListing(t, s, "a", "q/", "x", "y/")
	wantListing(t, s, "a/y", "w/", "z")
	wantListing(t, s, "z/a/b", "c/")
	wantListing(t, s, "e")
	// The same with nothing held back: each waiting entry looks up the
	// directory it waits for.
	defer func(h int) { readDirHold = h }(readDirHold)
	readDirHold = 0
	wantListing(t, s, "", "a/", "a b/", "a-b", "a.txt", "b", "e/", "g/", "g-", "z/")
	wantListing(t, s, "a", "q/", "x", "y/")
	readDirHold = 256
	// An early break stops the sequence.
	n := 0
	for range s.ReadDir("") {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("break after one entry: %d", n)
	}
	for path, want := range map[string]error{"b": ErrNotDir, "nope": ErrNotFound, "a/": ErrInvalidKey, "c": ErrNotFound} {
		var got error
		for _, err := range s.ReadDir(path) {
			got = err
		}
		if !errors.Is(got, want) {
			t.Errorf("ReadDir(%q): %v, want %v", path, got, want)
		}
	}
	// File entries carry their description, attributes included.
	if _, err := s.SetAttr("b", AttrChange{Mask: AttrMode, Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	for e, err := range s.ReadDir("") {
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "b" && (e.File.Mode != 0o640 || !e.File.HasAttr || e.File.Size != 1) {
			t.Fatalf("entry b: %+v", e.File)
		}
	}
}

// TestReadDirSkipsSubtrees: listing a directory whose subdirectory holds
// many keys reads none of them past the first, and pages through a large
// directory in order.
func TestReadDirSkipsSubtrees(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	for i := range 3000 {
		mustPut(t, s, fmt.Sprintf("big/sub%d/k%05d", i%3, i), nil)
	}
	for _, k := range []string{"big/a", "big/z", "big/sub1.txt"} {
		mustPut(t, s, k, nil)
	}
	before := readDirRecords.Load()
	wantListing(t, s, "big", "a", "sub0/", "sub1/", "sub1.txt", "sub2/", "z")
	if n := readDirRecords.Load() - before; n > 6*readDirSeekPage {
		t.Fatalf("listing 6 entries read %d records", n)
	}
	// Names that wait for a directory that sorts before them by name but
	// after them by key ("img" before "img-00001", "img/" after it): what
	// ReadDir holds back stays bounded, and the order is kept.
	for i := range 1000 {
		mustPut(t, s, fmt.Sprintf("pics/img-%05d.jpg", i), nil)
	}
	mustPut(t, s, "pics/img/inner", nil)
	pics := []string{"img/"}
	for i := range 1000 {
		pics = append(pics, fmt.Sprintf("img-%05d.jpg", i))
	}
	maxHeld := 0
	readDirHook = func(held int) { maxHeld = max(maxHeld, held) }
	defer func() { readDirHook = nil }()
	wantListing(t, s, "pics", pics...)
	if maxHeld > readDirHold+1 {
		t.Fatalf("ReadDir held %d entries back", maxHeld)
	}
	var want []string
	for i := range 1000 {
		want = append(want, fmt.Sprintf("k%05d", 3*i+1))
	}
	wantListing(t, s, "big/sub1", want...)
}

func TestRenameDirMovesEverythingInOneCommit(t *testing.T) {
	s := newStore(t, 256*testBS, func(o *Options) { o.InlineLimit = 16 })
	mustPut(t, s, "src/a", pattern(1, 2*testBS))
	mustPut(t, s, "src/d/b", pattern(2, 3*testBS))
	mustPut(t, s, "src/tiny", []byte("t"))
	mustPut(t, s, "srcx", []byte("not under src"))
	mustPut(t, s, "src.txt", []byte("not under src either"))
	for _, d := range []string{"src/e", "dst"} {
		if err := s.Mkdir(d, AttrChange{Mask: AttrMode, Mode: 0o711}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetDirAttr("src/d", AttrChange{Mask: AttrMode, Mode: 0o711}); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, s, "src/a")
	defer f.Close()
	g := mustOpen(t, s, "src/d/b")
	p := mustPin(t, g, 0, testBS, PinOptions{Label: "dma"})
	g.Close()

	// dst is an empty explicit directory: replaced.
	if err := s.RenameDir("src", "dst"); err != nil {
		t.Fatal(err)
	}
	if f.Key() != "dst/a" {
		t.Fatalf("open File's key: %q", f.Key())
	}
	if _, err := f.WriteAt([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, s, "dst/a"); string(v[:3]) != "new" {
		t.Fatalf("write through the open File not seen under the new key")
	}
	if got := pinBytes(p); string(got) != string(pattern(2, testBS)) {
		t.Fatal("pin bytes changed")
	}
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"src/a", "src/d/b", "src/tiny"} {
		if _, err := s.Stat(k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old key %q: %v", k, err)
		}
	}
	wantListing(t, s, "", "dst/", "src.txt", "srcx")
	wantListing(t, s, "dst", "a", "d/", "e/", "tiny")
	if di, err := s.StatDir("dst/e"); err != nil || !di.Explicit || di.Mode != 0o711 {
		t.Fatalf("moved explicit dir: %+v %v", di, err)
	}
	if di, err := s.StatDir("dst"); err != nil || di.Explicit {
		t.Fatalf("dst replaced by the implicit src: %+v %v", di, err)
	}
	mustCheck(t, s)
	s = reopen(t, s, &Options{NoSync: true, NoAdminSocket: true})
	if v := mustGet(t, s, "dst/d/b"); string(v) != string(pattern(2, 3*testBS)) {
		t.Fatal("moved value differs after reopen")
	}
	if v := mustGet(t, s, "dst/tiny"); string(v) != "t" {
		t.Fatal("moved inline value differs after reopen")
	}
	wantListing(t, s, "dst", "a", "d/", "e/", "tiny")
	mustCheck(t, s)
}

func TestRenameDirRefusals(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a/k", []byte("v"))
	mustPut(t, s, "a/l", []byte("v"))
	mustPut(t, s, "f", []byte("v"))
	mustPut(t, s, "full/k", []byte("v"))
	mustPut(t, s, "odd//k", []byte("v")) // not a path: "odd" is no directory, but a key lies under it
	if err := s.Mkdir("e", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mkdir("e/sub", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	old := renameDirLimit
	renameDirLimit = 1
	tooMany := s.RenameDir("a", "b")
	renameDirLimit = old
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"into itself", s.RenameDir("a", "a/b"), ErrInvalidKey},
		{"missing", s.RenameDir("nope", "b"), ErrNotFound},
		{"file", s.RenameDir("f", "b"), ErrNotDir},
		{"onto file", s.RenameDir("a", "f"), ErrExist},
		{"onto full", s.RenameDir("a", "full"), ErrExist},
		{"onto dir with a dir", s.RenameDir("a", "e"), ErrExist},
		{"onto hidden keys", s.RenameDir("a", "odd"), ErrExist},
		{"no parent", s.RenameDir("a", "x/y"), ErrNotFound},
		{"parent file", s.RenameDir("a", "f/y"), ErrNotDir},
		{"root", s.RenameDir("", "b"), ErrInvalidKey},
		{"bad path", s.RenameDir("a", "b/"), ErrInvalidKey},
		{"too long", s.RenameDir("a", strings.Repeat("n", MaxKeyLen-1)), ErrInvalidKey},
		{"too many", tooMany, ErrInvalidRange},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	sameState(t, s, before)
	wantListing(t, s, "", "a/", "e/", "f", "full/")
	if err := s.RenameDir("a", "a"); err != nil {
		t.Fatalf("rename onto itself: %v", err)
	}
}

func TestRenameWithReplace(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 2*testBS))
	mustPut(t, s, "b", pattern(2, 2*testBS))
	if _, err := s.SetAttr("a", AttrChange{Mask: AttrMode, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	ob := mustOpen(t, s, "b")
	defer ob.Close()
	p := mustPin(t, ob, 0, testBS, PinOptions{Label: "holder"})
	before := snapshot(t, s)
	wantErr(t, s.RenameWith(t0(), "a", "b", RenameOptions{}), ErrExist)
	wantErr(t, s.RenameWith(t0(), "a", "b", RenameOptions{Replace: true, Break: BreakOptions{Policy: PolicyFail}}), ErrPinned)
	wantErr(t, s.RenameWith(t0(), "nope", "b", RenameOptions{Replace: true}), ErrNotFound)
	wantErr(t, s.RenameWith(t0(), "a", "", RenameOptions{Replace: true}), ErrInvalidKey)
	sameState(t, s, before)

	if err := s.RenameWith(t0(), "a", "b", RenameOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, s, "b"); string(v) != string(pattern(1, 2*testBS)) {
		t.Fatal("b does not hold a's value")
	}
	if fi, err := s.Stat("b"); err != nil || fi.Mode != 0o600 {
		t.Fatalf("b: %+v %v", fi, err)
	}
	if _, err := s.Stat("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a: %v", err)
	}
	if _, err := ob.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open File of the replaced b: %v", err)
	}
	if got := pinBytes(p); string(got) != string(pattern(2, testBS)) {
		t.Fatal("the pin of the replaced file lost its bytes")
	}
	if busy := s.Busy(); len(busy) != 1 {
		t.Fatalf("busy extents: %+v", busy)
	}
	if st := mustStats(t, s); st.Files != 1 {
		t.Fatalf("files: %d", st.Files)
	}
	mustCheck(t, s)
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	// Replace onto a missing key is a plain rename.
	if err := s.RenameWith(t0(), "b", "c", RenameOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, &Options{NoSync: true, NoAdminSocket: true})
	if v := mustGet(t, s, "c"); string(v) != string(pattern(1, 2*testBS)) {
		t.Fatal("c does not hold a's value after reopen")
	}
	mustCheck(t, s)
}

// TestCheckCatchesBadDirRecords writes directory records that no store
// operation writes and proves Check reports each.
func TestCheckCatchesBadDirRecords(t *testing.T) {
	for name, c := range map[string]struct {
		dir  journal.Dir
		want string
	}{
		"clash":     {journal.Dir{Path: "f", Mode: 0o755}, `directory "f" is also a file`},
		"orphan":    {journal.Dir{Path: "x/y", Mode: 0o755}, `directory "x/y" has no parent directory "x"`},
		"bad path":  {journal.Dir{Path: "a//b", Mode: 0o755}, `directory record "a//b" is not a valid path`},
		"hidden up": {journal.Dir{Path: "h/y", Mode: 0o755}, `directory "h/y" has no parent directory "h"`},
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "f", []byte("v"))
			mustPut(t, s, "h//k", []byte("v")) // under h, but not a path
			mustCheck(t, s)
			b := s.jnl.NewBatch()
			b.SetDir(c.dir)
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
			err := s.Check()
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want ErrCorrupt naming %s", err, c.want)
			}
		})
	}
}

func TestDirCallsOnClosedAndReadOnlyStores(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "d/k", []byte("v"))
	if err := s.Mkdir("e", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.Mkdir("x", AttrChange{}), ErrClosed)
	wantErr(t, s.Rmdir("e"), ErrClosed)
	wantErr(t, s.RenameDir("d", "x"), ErrClosed)
	_, err := s.StatDir("d")
	wantErr(t, err, ErrClosed)
	for _, err := range s.ReadDir("") {
		wantErr(t, err, ErrClosed)
	}
	ro, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	wantErr(t, ro.Mkdir("x", AttrChange{}), ErrReadOnly)
	wantErr(t, ro.Rmdir("e"), ErrReadOnly)
	wantErr(t, ro.RenameDir("d", "x"), ErrReadOnly)
	wantErr(t, ro.RenameWith(t0(), "d/k", "x", RenameOptions{Replace: true}), ErrReadOnly)
	_, err = ro.SetDirAttr("e", AttrChange{})
	wantErr(t, err, ErrReadOnly)
	wantListing(t, ro, "", "d/", "e/")
	if err := ro.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRenameDirMovesEvictedAndExternalFiles: files not in memory move by
// their journal records, those with extent records (External) included,
// attributes and all.
func TestRenameDirMovesEvictedAndExternalFiles(t *testing.T) {
	opts := &Options{Size: 256 * testBS, NoSync: true, NoAdminSocket: true, InodeCache: 1}
	s := newStore(t, 0, func(o *Options) { *o = *opts })
	f, err := s.CreateWith("s/ext", AttrChange{Mask: AttrMode | AttrUID, Mode: 0o640, UID: 42})
	if err != nil {
		t.Fatal(err)
	}
	const n = journal.MaxInlineExtents + 8
	for i := range n {
		if _, err := f.WriteAt(pattern(byte(i), 10), int64(2*i)*testBS); err != nil {
			t.Fatal(err)
		}
	}
	want, err := f.appendAll(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustPut(t, s, "s/small", []byte("v"))
	s = reopen(t, s, opts)
	if resident(s) != 0 {
		t.Fatalf("%d files in memory after reopen", resident(s))
	}
	if rec, ok, err := s.jnl.LookupInode("s/ext"); err != nil || !ok || !rec.External {
		t.Fatalf("s/ext is not a file with extent records: %v %v %v", rec.External, ok, err)
	}
	if err := s.RenameDir("s", "t"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	s = reopen(t, s, opts)
	if got := mustGet(t, s, "t/ext"); string(got) != string(want) {
		t.Fatal("moved External file reads differently")
	}
	fi, err := s.Stat("t/ext")
	if err != nil || fi.Mode != 0o640 || fi.UID != 42 || fi.Blocks != n {
		t.Fatalf("moved file: %+v %v", fi, err)
	}
	wantListing(t, s, "", "t/")
	wantListing(t, s, "t", "ext", "small")
	mustCheck(t, s)
}

// TestRenameDirWhileFilesAreWritten renames a directory back and forth
// while its files are written through open Files: no write is lost, no
// record is left under an old key, and Check holds.
func TestRenameDirWhileFilesAreWritten(t *testing.T) {
	s := newStore(t, 512*testBS, nil)
	const files, writes = 4, 200
	var fs []*File
	for i := range files {
		f, err := s.Create(fmt.Sprintf("c/f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fs = append(fs, f)
	}
	errs := make(chan error, files)
	for i, f := range fs {
		go func() {
			for w := range writes {
				if _, err := f.WriteAt(pattern(byte(i+w), 16), int64(w)*16); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	from, to := "c", "d"
	for done, r := 0, 0; done < files; {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
			done++
			continue
		default:
		}
		if err := s.RenameDir(from, to); err != nil {
			t.Fatalf("rename %d: %v", r, err)
		}
		from, to = to, from
		r++
	}
	mustCheck(t, s)
	final := strings.TrimSuffix(dirListing(t, s, "")[0], "/")
	for i, f := range fs {
		key := fmt.Sprintf("%s/f%d", final, i)
		if f.Key() != key {
			t.Fatalf("open File calls itself %q, want %q", f.Key(), key)
		}
		got := mustGet(t, s, key)
		for w := range writes {
			if string(got[w*16:(w+1)*16]) != string(pattern(byte(i+w), 16)) {
				t.Fatalf("%s: write %d lost", key, w)
			}
		}
	}
	wantListing(t, s, "", final+"/")
}

// TestDirAPIRefusesBadPaths: every directory call refuses paths that are
// not valid paths with ErrInvalidKey, changing nothing.
func TestDirAPIRefusesBadPaths(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "d/k", []byte("v"))
	if err := s.Mkdir("e", AttrChange{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	bad := []string{"/", "/d", "d/", "d//k", ".", "..", "./d", "d/.", "d/..", "a\x00b", "\xff\xfe",
		strings.Repeat("a/", MaxKeyLen), strings.Repeat("x", MaxKeyLen+1)}
	for _, p := range bad {
		calls := map[string]error{
			"mkdir":      s.Mkdir(p, AttrChange{}),
			"rmdir":      s.Rmdir(p),
			"renamedir":  s.RenameDir(p, "n"),
			"renamedir2": s.RenameDir("d", p),
		}
		_, calls["statdir"] = s.StatDir(p)
		_, calls["setdirattr"] = s.SetDirAttr(p, AttrChange{})
		for _, err := range s.ReadDir(p) {
			calls["readdir"] = err
		}
		for name, err := range calls {
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s(%q): %v, want ErrInvalidKey", name, p, err)
			}
		}
	}
	sameState(t, s, before)
	wantListing(t, s, "", "d/", "e/")
}

// TestTakingTheLastKeyAwayKeepsExplicitDirsParent: when the last key of an
// implicit directory leaves it while an explicit directory stays under
// it, the operation makes the directory explicit in the same commit, so
// the explicit one keeps a parent and Check holds.
func TestTakingTheLastKeyAwayKeepsExplicitDirsParent(t *testing.T) {
	for name, op := range map[string]func(s *Store) error{
		"remove":         func(s *Store) error { return s.Remove("top/p/k") },
		"rename":         func(s *Store) error { return s.Rename("top/p/k", "elsewhere") },
		"rename replace": func(s *Store) error { return s.RenameWith(t0(), "top/p/k", "other", RenameOptions{Replace: true}) },
		"renamedir":      func(s *Store) error { return s.RenameDir("top/p/sub", "moved") },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, 64*testBS, nil)
			mustPut(t, s, "other", []byte("o"))
			if name == "renamedir" {
				mustPut(t, s, "top/p/sub/k", []byte("v"))
			} else {
				mustPut(t, s, "top/p/k", []byte("v"))
			}
			if err := s.Mkdir("top/p/e", AttrChange{Mask: AttrMode, Mode: 0o700}); err != nil {
				t.Fatal(err)
			}
			if err := op(s); err != nil {
				t.Fatal(err)
			}
			di, err := s.StatDir("top/p")
			if err != nil || !di.Explicit || di.Mode != 0o755 {
				t.Fatalf("top/p after the last key left: %+v %v", di, err)
			}
			if di, err := s.StatDir("top"); err != nil || !di.Explicit {
				t.Fatalf("top: %+v %v", di, err)
			}
			mustCheck(t, s)
		})
	}
}
