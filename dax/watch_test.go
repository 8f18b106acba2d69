package dax

// Tests of Store.Watch: every change path reports the right FileChange,
// after the change and outside the store's locks; stop semantics under
// concurrency; and concurrent writers whose reported ranges cover every
// byte that changed.

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
)

// recorder collects the changes a watcher sees.
type recorder struct {
	mu  sync.Mutex
	got []FileChange
}

func (r *recorder) fn(c FileChange) {
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
}

func (r *recorder) take() []FileChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func (c FileChange) String() string {
	via := "nil"
	if c.Via != nil {
		via = "file"
	}
	return fmt.Sprintf("{kind %d key %q new %q dir %v ino %d [%d,%+d) via %s}", c.Kind, c.Key, c.NewKey, c.Dir, c.Ino, c.Off, c.Len, via)
}

// TestWatchReportsEachChange runs each change path on a fresh store with a
// file "a" of three written blocks and checks exactly what a watcher saw.
func TestWatchReportsEachChange(t *testing.T) {
	const bs = testBS
	type env struct {
		t   *testing.T
		s   *Store
		f   *File // "a", open
		ino uint64
		got func() []FileChange // takes what was reported so far
	}
	ino := func(e *env, key string) uint64 {
		fi, err := e.s.Stat(key)
		if err != nil {
			e.t.Fatalf("stat %q: %v", key, err)
		}
		return fi.Ino
	}
	data := func(e *env, off, n int64, via *File) FileChange {
		return FileChange{Kind: ChangeData, Key: "a", Ino: e.ino, Off: off, Len: n, Via: via}
	}
	size := func(e *env, off int64, via *File) FileChange {
		return FileChange{Kind: ChangeSize, Key: "a", Ino: e.ino, Off: off, Len: -1, Via: via}
	}
	must := func(e *env, err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		run  func(e *env) []FileChange // does the change, returns what is wanted
	}{
		{"WriteAt in place", func(e *env) []FileChange {
			_, err := e.f.WriteAt(pattern(7, 100), 10)
			must(e, err)
			return []FileChange{data(e, 10, 100, e.f)}
		}},
		{"WriteAt growing", func(e *env) []FileChange {
			_, err := e.f.WriteAt(pattern(7, 50), 3*bs-10)
			must(e, err)
			return []FileChange{data(e, 3*bs-10, 50, e.f), size(e, 3*bs, e.f)}
		}},
		{"WriteAt past the end", func(e *env) []FileChange {
			_, err := e.f.WriteAt(pattern(7, 5), 10*bs)
			must(e, err)
			return []FileChange{data(e, 10*bs, 5, e.f), size(e, 3*bs, e.f)}
		}},
		{"WriteAt empty", func(e *env) []FileChange {
			_, err := e.f.WriteAt(nil, 5)
			must(e, err)
			return nil
		}},
		{"Truncate shrink", func(e *env) []FileChange {
			must(e, e.f.Truncate(100))
			return []FileChange{size(e, 100, e.f)}
		}},
		{"Truncate grow", func(e *env) []FileChange {
			must(e, e.f.TruncateWith(t0(), 5*bs, BreakOptions{Policy: Wait}))
			return []FileChange{size(e, 3*bs, e.f)}
		}},
		{"Truncate same size", func(e *env) []FileChange {
			must(e, e.f.Truncate(3*bs))
			return nil
		}},
		{"Truncate of a pinned block, Fail", func(e *env) []FileChange {
			p := mustPin(e.t, e.f, 0, bs, PinOptions{})
			defer p.Unpin()
			wantErr(e.t, e.f.TruncateWith(t0(), 0, BreakOptions{Policy: Fail}), ErrPinned)
			return nil
		}},
		{"PunchHole", func(e *env) []FileChange {
			must(e, e.f.PunchHole(10, bs))
			return []FileChange{data(e, 10, bs, e.f)}
		}},
		{"PunchHole clipped at the end", func(e *env) []FileChange {
			must(e, e.f.PunchHoleWith(t0(), 2*bs, 5*bs, BreakOptions{}))
			return []FileChange{data(e, 2*bs, bs, e.f)}
		}},
		{"PunchHole past the end", func(e *env) []FileChange {
			must(e, e.f.PunchHole(4*bs, bs))
			return nil
		}},
		{"ZeroRange", func(e *env) []FileChange {
			must(e, e.f.ZeroRange(bs, bs+7))
			return []FileChange{data(e, bs, bs+7, e.f)}
		}},
		{"ZeroRange of a pinned block, Detach", func(e *env) []FileChange {
			p := mustPin(e.t, e.f, 0, bs, PinOptions{})
			defer p.Unpin()
			must(e, e.f.ZeroRangeWith(t0(), 0, bs, BreakOptions{Policy: Detach}))
			return []FileChange{data(e, 0, bs, e.f)}
		}},
		{"Allocate inside", func(e *env) []FileChange {
			must(e, e.f.PunchHole(0, bs))
			e.got() // the punch's
			must(e, e.f.Allocate(0, bs))
			return []FileChange{data(e, 0, bs, e.f)}
		}},
		{"Allocate growing", func(e *env) []FileChange {
			must(e, e.f.Allocate(3*bs, 2*bs))
			return []FileChange{data(e, 3*bs, 2*bs, e.f), size(e, 3*bs, e.f)}
		}},
		{"Put new key", func(e *env) []FileChange {
			must(e, e.s.Put("b", pattern(1, 3*bs)))
			return []FileChange{{Kind: ChangeCreate, Key: "b", Ino: ino(e, "b")}}
		}},
		{"Put new key inline", func(e *env) []FileChange {
			must(e, e.s.Put("b", []byte("small")))
			return []FileChange{{Kind: ChangeCreate, Key: "b", Ino: ino(e, "b")}}
		}},
		{"Put existing key", func(e *env) []FileChange {
			must(e, e.s.Put("a", pattern(1, 2*bs)))
			return []FileChange{{Kind: ChangeReplace, Key: "a", Ino: e.ino}}
		}},
		{"Put existing key inline", func(e *env) []FileChange {
			must(e, e.s.Put("a", []byte("small")))
			must(e, e.s.Put("a", []byte("smaller"))) // inline over inline
			return []FileChange{{Kind: ChangeReplace, Key: "a", Ino: e.ino}, {Kind: ChangeReplace, Key: "a", Ino: e.ino}}
		}},
		{"PutReader new and existing", func(e *env) []FileChange {
			must(e, e.s.PutReader(t0(), "b", bytes.NewReader(pattern(3, bs+1)), -1, BreakOptions{}))
			must(e, e.s.PutReader(t0(), "a", bytes.NewReader(pattern(3, 10)), 10, BreakOptions{}))
			return []FileChange{{Kind: ChangeCreate, Key: "b", Ino: ino(e, "b")}, {Kind: ChangeReplace, Key: "a", Ino: e.ino}}
		}},
		{"PutReader failing", func(e *env) []FileChange {
			err := e.s.PutReader(t0(), "a", io.LimitReader(bytes.NewReader(pattern(3, 10)), 5), 10, BreakOptions{})
			wantErr(e.t, err, io.ErrUnexpectedEOF)
			return nil
		}},
		{"Remove", func(e *env) []FileChange {
			must(e, e.s.Remove("a"))
			return []FileChange{{Kind: ChangeRemove, Key: "a", Ino: e.ino}}
		}},
		{"Remove missing", func(e *env) []FileChange {
			wantErr(e.t, e.s.Remove("nope"), ErrNotFound)
			return nil
		}},
		{"Rename", func(e *env) []FileChange {
			must(e, e.s.Rename("a", "c"))
			return []FileChange{{Kind: ChangeRename, Key: "a", NewKey: "c", Ino: e.ino}}
		}},
		{"Rename onto itself", func(e *env) []FileChange {
			must(e, e.s.Rename("a", "a"))
			return nil
		}},
		{"Rename onto an existing key", func(e *env) []FileChange {
			mustPut(e.t, e.s, "b", nil)
			e.got()
			wantErr(e.t, e.s.Rename("a", "b"), ErrExist)
			return nil
		}},
		{"Create", func(e *env) []FileChange {
			f, err := e.s.Create("d")
			must(e, err)
			defer f.Close()
			return []FileChange{{Kind: ChangeCreate, Key: "d", Ino: ino(e, "d")}}
		}},
		{"Create existing", func(e *env) []FileChange {
			_, err := e.s.Create("a")
			wantErr(e.t, err, ErrExist)
			return nil
		}},
		{"WriteAt on a removed key", func(e *env) []FileChange {
			must(e, e.s.Remove("a"))
			e.got()
			_, err := e.f.WriteAt([]byte("x"), 0)
			wantErr(e.t, err, ErrNotFound)
			return nil
		}},
		{"writable pin Flush and Unpin", func(e *env) []FileChange {
			p := mustPin(e.t, e.f, 100, bs, PinOptions{Writable: true})
			copy(p.Bytes()[0], "hello")
			must(e, p.Flush())
			must(e, p.Unpin())
			wantErr(e.t, p.Unpin(), ErrUnpinned)
			return []FileChange{data(e, 100, bs, nil), data(e, 100, bs, nil)}
		}},
		{"read-only pin Flush and Unpin", func(e *env) []FileChange {
			p := mustPin(e.t, e.f, 100, bs, PinOptions{})
			must(e, p.Flush())
			must(e, p.Unpin())
			return nil
		}},
		{"writable follow window Flush and Close", func(e *env) []FileChange {
			w := mustMap(e.t, e.f, bs, 2*bs, MapOptions{Writable: true})
			copy(w.Bytes()[5:], "hello")
			must(e, w.Flush())
			must(e, w.Close())
			return []FileChange{data(e, bs, 2*bs, nil), data(e, bs, 2*bs, nil)}
		}},
		{"writable pinned window Flush and Close", func(e *env) []FileChange {
			w := mustMap(e.t, e.f, bs, 2*bs, MapOptions{Writable: true, Mode: MapPinned})
			copy(w.Bytes()[5:], "hello")
			must(e, w.Flush())
			must(e, w.Close())
			return []FileChange{data(e, bs, 2*bs, nil), data(e, bs, 2*bs, nil)}
		}},
		{"read-only windows", func(e *env) []FileChange {
			for _, mode := range []WindowMode{MapFollow, MapPinned} {
				w := mustMap(e.t, e.f, bs, 2*bs, MapOptions{Mode: mode})
				must(e, w.Flush())
				must(e, w.Close())
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, 1<<20, nil)
			mustPut(t, s, "a", pattern(9, 3*bs))
			f := mustOpen(t, s, "a")
			defer f.Close()
			var r recorder
			stop := s.Watch(r.fn)
			defer stop()
			e := &env{t: t, s: s, f: f}
			e.ino = ino(e, "a")
			e.got = func() []FileChange { return r.take() }
			want := tc.run(e)
			if got := r.take(); !slices.Equal(got, want) {
				t.Fatalf("reported %v, want %v", got, want)
			}
		})
	}
}
