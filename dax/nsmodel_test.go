package dax

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var (
	nsSeed = flag.Uint64("ns.seed", 0, "seed of TestNamespaceAgainstModel (0: random)")
	nsOps  = flag.Int("ns.ops", 1500, "operations of TestNamespaceAgainstModel")
)

// nsModel is what the namespace should be: file keys with their mode (0:
// no attributes) and explicit directories with theirs.
type nsModel struct {
	files map[string]uint32
	dirs  map[string]uint32
}

func (m *nsModel) keyUnder(dir string, validOnly bool) bool {
	for k := range m.files {
		if strings.HasPrefix(k, dir+"/") && (!validOnly || ValidPath(k)) {
			return true
		}
	}
	return false
}

func (m *nsModel) dirUnder(dir string) bool {
	for d := range m.dirs {
		if strings.HasPrefix(d, dir+"/") {
			return true
		}
	}
	return false
}

func (m *nsModel) isDir(p string) bool {
	if p == "" {
		return true
	}
	_, ok := m.dirs[p]
	return ok || m.keyUnder(p, true) || m.dirUnder(p)
}

func (m *nsModel) isFile(k string) bool { _, ok := m.files[k]; return ok }

// parentErr is what Mkdir and RenameDir report for a missing parent.
func (m *nsModel) parentErr(p string) error {
	for a := parentDir(p); a != ""; a = parentDir(a) {
		if m.isDir(a) {
			break
		}
		if m.isFile(a) {
			return ErrNotDir
		}
	}
	return ErrNotFound
}

// listing is what ReadDir(p) should yield, as dirListing renders it.
func (m *nsModel) listing(p string) []string {
	names := map[string]bool{} // name -> is a directory
	pre := under(p)
	for k := range m.files {
		if !strings.HasPrefix(k, pre) || !ValidPath(k) {
			continue
		}
		rest := k[len(pre):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			names[rest[:i]] = true
		} else if !names[rest] {
			names[rest] = false
		}
	}
	for d := range m.dirs {
		if !strings.HasPrefix(d, pre) || d == "" {
			continue
		}
		rest := d[len(pre):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		names[rest] = true
	}
	var out []string
	for n, dir := range names {
		if dir {
			n += "/"
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/")) })
	return out
}

// TestNamespaceAgainstModel runs random namespace operations - puts,
// removes, renames with and without replace, mkdir, rmdir, renamedir,
// setattr, setdirattr - on a store and on a model, and compares every
// outcome, every directory's listing and attributes, running Check and
// reopening the store along the way. Path components include '.', ' '
// and '-', which sort before '/', to exercise ReadDir's ordering. Before
// removing or renaming away a key or directory, the test makes its
// ancestors explicit, as the FUSE mount does, so that no explicit
// directory is left without a parent (which Check reports). Replay with
// -ns.seed.
func TestNamespaceAgainstModel(t *testing.T) {
	seed := *nsSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, 12))
	var log []string
	defer func() {
		if t.Failed() {
			start := max(0, len(log)-60)
			t.Logf("seed %d (replay with -ns.seed=%d); last %d of %d ops:\n  %s", seed, seed, len(log)-start, len(log), strings.Join(log[start:], "\n  "))
		}
	}()
	opts := &Options{Size: 512 * testBS, NoSync: true, NoAdminSocket: true, InlineLimit: 8, InodeCache: 4}
	s := newStore(t, 0, func(o *Options) { *o = *opts })
	dir := s.Dir()
	m := &nsModel{files: map[string]uint32{}, dirs: map[string]uint32{}}
	comps := []string{"a", "b", "a.x", "a b", "a-"}
	randPath := func() string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = comps[r.IntN(len(comps))]
		}
		return strings.Join(parts, "/")
	}
	// universe lists every path the test may have made, for listings.
	universe := func() []string {
		set := map[string]bool{"": true}
		add := func(p string) {
			for ; p != ""; p = parentDir(p) {
				set[p] = true
			}
		}
		for k := range m.files {
			add(k)
		}
		for d := range m.dirs {
			add(d)
		}
		var out []string
		for p := range set {
			out = append(out, p)
		}
		slices.Sort(out)
		return out
	}
	expect := func(op string, err, want error) {
		t.Helper()
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", op, err, want)
		}
	}
	// pin makes every ancestor of p explicit (top down), as the mount
	// does before a key or directory leaves its parent.
	// It reports false, doing nothing, when an ancestor that needs it is
	// also a file's name, which cannot be made explicit: the caller then
	// skips its operation.
	pin := func(p string) bool {
		var anc []string
		for a := parentDir(p); a != ""; a = parentDir(a) {
			anc = append(anc, a)
		}
		for _, a := range anc {
			if _, ok := m.dirs[a]; !ok && m.isFile(a) {
				return false
			}
		}
		for i := len(anc) - 1; i >= 0; i-- {
			a := anc[i]
			if _, ok := m.dirs[a]; ok || !m.isDir(a) {
				continue
			}
			log = append(log, "setdirattr "+a+" (keep)")
			if _, err := s.SetDirAttr(a, AttrChange{}); err != nil {
				t.Fatalf("making %q explicit: %v", a, err)
			}
			m.dirs[a] = defaultDirMode
		}
		return true
	}
	defer func(h int) { readDirHold = h }(readDirHold)
	compare := func() {
		t.Helper()
		// Half the listings hold nothing back: every entry that waits
		// for a directory looks it up instead (see ReadDir).
		readDirHold = []int{0, 256}[r.IntN(2)]
		for _, p := range universe() {
			di, err := s.StatDir(p)
			if m.isDir(p) {
				if err != nil {
					t.Fatalf("StatDir(%q): %v", p, err)
				}
				mode, explicit := m.dirs[p]
				if !explicit {
					mode = defaultDirMode
				}
				if p != "" && (di.Explicit != explicit || di.Mode != mode) {
					t.Fatalf("StatDir(%q) = %+v, want explicit %v mode %#o", p, di, explicit, mode)
				}
				if got, want := dirListing(t, s, p), m.listing(p); !slices.Equal(got, want) {
					t.Fatalf("ReadDir(%q) = %q, want %q (files %v dirs %v)", p, got, want, m.files, m.dirs)
				}
			} else if !errors.Is(err, ErrNotFound) {
				t.Fatalf("StatDir(%q) of no directory: %+v %v", p, di, err)
			}
			if mode, ok := m.files[p]; ok {
				fi, err := s.Stat(p)
				if err != nil || fi.Mode != mode || fi.HasAttr != (mode != 0) {
					t.Fatalf("Stat(%q) = %+v %v, want mode %#o", p, fi, err, mode)
				}
			} else if p != "" {
				if _, err := s.Stat(p); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Stat(%q) of no file: %v", p, err)
				}
			}
		}
	}
	for i := 0; i < *nsOps; i++ {
		p, q := randPath(), randPath()
		var op string
		switch k := r.IntN(100); {
		case k < 22:
			op = "put " + p
			var want error
			if _, ok := m.dirs[p]; ok {
				want = ErrIsDir
			}
			log = append(log, op)
			expect(op, s.Put(p, make([]byte, r.IntN(3*testBS))), want)
			if want == nil {
				if _, ok := m.files[p]; !ok {
					m.files[p] = 0
				}
			}
		case k < 32:
			op = "remove " + p
			var want error
			if !m.isFile(p) {
				want = ErrNotFound
			} else if !pin(p) {
				continue
			}
			log = append(log, op)
			expect(op, s.Remove(p), want)
			delete(m.files, p)
		case k < 44:
			replace := r.IntN(2) == 0
			op = fmt.Sprintf("rename %s -> %s (replace %v)", p, q, replace)
			if m.isFile(p) && p != q && !pin(p) {
				continue
			}
			var want error
			_, qdir := m.dirs[q]
			switch {
			case !m.isFile(p):
				want = ErrNotFound
			case p == q:
			case m.isFile(q) && !replace:
				want = ErrExist
			case !m.isFile(q) && qdir:
				want = ErrIsDir
			}
			log = append(log, op)
			expect(op, s.RenameWith(t0(), p, q, RenameOptions{Replace: replace}), want)
			if want == nil && p != q {
				m.files[q] = m.files[p]
				delete(m.files, p)
			}
		case k < 58:
			mode := uint32(r.IntN(0o1000))
			op = fmt.Sprintf("mkdir %s %#o", p, mode)
			var want error
			switch {
			case m.isFile(p) || m.isDir(p):
				want = ErrExist
			case !m.isDir(parentDir(p)):
				want = m.parentErr(p)
			}
			log = append(log, op)
			expect(op, s.Mkdir(p, AttrChange{Mask: AttrMode, Mode: mode}), want)
			if want == nil {
				m.dirs[p] = mode
			}
		case k < 68:
			op = "rmdir " + p
			_, explicit := m.dirs[p]
			var want error
			full := m.keyUnder(p, false) || m.dirUnder(p)
			switch {
			case !explicit && !full && m.isFile(p):
				want = ErrNotDir
			case !explicit && !full:
				want = ErrNotFound
			case full:
				want = ErrNotEmpty
			default:
				if !pin(p) {
					continue
				}
			}
			log = append(log, op)
			expect(op, s.Rmdir(p), want)
			if want == nil {
				delete(m.dirs, p)
			}
		case k < 80:
			if r.IntN(2) == 0 {
				q = parentDir(p)
				if q != "" {
					q += "/"
				}
				q += comps[r.IntN(len(comps))]
			}
			op = fmt.Sprintf("renamedir %s -> %s", p, q)
			if m.isDir(p) && p != q && !strings.HasPrefix(q, p+"/") && !pin(p) {
				continue
			}
			var want error
			_, qexplicit := m.dirs[q]
			switch {
			case strings.HasPrefix(q, p+"/"):
				want = ErrInvalidKey
			case !m.isDir(p) && m.isFile(p):
				want = ErrNotDir
			case !m.isDir(p):
				want = ErrNotFound
			case p == q:
			case m.isFile(q):
				want = ErrExist
			case m.keyUnder(q, false) || m.dirUnder(q):
				want = ErrExist
			case !qexplicit && !m.isDir(parentDir(q)):
				want = m.parentErr(q)
			}
			log = append(log, op)
			expect(op, s.RenameDir(p, q), want)
			if want == nil && p != q {
				_, pexplicit := m.dirs[p]
				pmode := m.dirs[p]
				delete(m.dirs, q)
				files, dirs := map[string]uint32{}, map[string]uint32{}
				for k, v := range m.files {
					if strings.HasPrefix(k, p+"/") {
						k = q + k[len(p):]
					}
					files[k] = v
				}
				for d, v := range m.dirs {
					if d == p {
						continue
					}
					if strings.HasPrefix(d, p+"/") {
						d = q + d[len(p):]
					}
					dirs[d] = v
				}
				if pexplicit {
					dirs[q] = pmode
				}
				m.files, m.dirs = files, dirs
			}
		case k < 90:
			mode := uint32(1 + r.IntN(0o777)) // 0 stands for no attributes in the model
			op = fmt.Sprintf("setattr %s %#o", p, mode)
			var want error
			if !m.isFile(p) {
				want = ErrNotFound
			}
			log = append(log, op)
			_, err := s.SetAttr(p, AttrChange{Mask: AttrMode, Mode: mode})
			expect(op, err, want)
			if want == nil {
				m.files[p] = mode
			}
		default:
			mode := uint32(r.IntN(0o1000))
			op = fmt.Sprintf("setdirattr %s %#o", p, mode)
			var want error
			_, explicit := m.dirs[p]
			switch {
			case !m.isDir(p) && m.isFile(p):
				want = ErrNotDir
			case !m.isDir(p):
				want = ErrNotFound
			case !explicit && p != "" && m.isFile(p):
				want = ErrExist
			}
			log = append(log, op)
			_, err := s.SetDirAttr(p, AttrChange{Mask: AttrMode, Mode: mode})
			expect(op, err, want)
			if want == nil {
				m.dirs[p] = mode
			}
		}
		if i%25 == 24 {
			compare()
			if err := s.Check(); err != nil {
				t.Fatalf("after op %d: %v", i, err)
			}
		}
		if i%300 == 299 {
			log = append(log, "reopen")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			if s, err = Open(dir, opts); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeForce(s) })
			compare()
		}
	}
	compare()
	mustCheck(t, s)
}
