package dax

// Tests of Store.Watch: every change path reports the right FileChange,
// after the change and outside the store's locks; stop semantics under
// concurrency; and concurrent writers whose reported ranges cover every
// byte that changed.

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
			must(e, e.f.TruncateWith(t0(), 5*bs, BreakOptions{Policy: PolicyWait}))
			return []FileChange{size(e, 3*bs, e.f)}
		}},
		{"Truncate same size", func(e *env) []FileChange {
			must(e, e.f.Truncate(3*bs))
			return nil
		}},
		{"Truncate of a pinned block, Fail", func(e *env) []FileChange {
			p := mustPin(e.t, e.f, 0, bs, PinOptions{})
			defer p.Unpin()
			wantErr(e.t, e.f.TruncateWith(t0(), 0, BreakOptions{Policy: PolicyFail}), ErrPinned)
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
			must(e, e.f.ZeroRangeWith(t0(), 0, bs, BreakOptions{Policy: PolicyDetach}))
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
		{"SetAttr", func(e *env) []FileChange {
			_, err := e.s.SetAttr("a", AttrChange{Mask: AttrMode, Mode: 0o600})
			must(e, err)
			_, err = e.s.SetAttr("a", AttrChange{Mask: AttrMode, Mode: 0o10000})
			wantErr(e.t, err, ErrInvalidRange)
			return []FileChange{{Kind: ChangeAttr, Key: "a", Ino: e.ino}}
		}},
		{"CreateWith", func(e *env) []FileChange {
			f, err := e.s.CreateWith("d", AttrChange{Mask: AttrMode, Mode: 0o600})
			must(e, err)
			defer f.Close()
			_, err = e.s.CreateWith("d", AttrChange{})
			wantErr(e.t, err, ErrExist)
			return []FileChange{{Kind: ChangeCreate, Key: "d", Ino: ino(e, "d")}}
		}},
		{"RenameWith Replace onto nothing", func(e *env) []FileChange {
			must(e, e.s.RenameWith(t0(), "a", "c", RenameOptions{Replace: true}))
			return []FileChange{{Kind: ChangeRename, Key: "a", NewKey: "c", Ino: e.ino}}
		}},
		{"RenameWith Replace onto a file", func(e *env) []FileChange {
			mustPut(e.t, e.s, "b", pattern(2, bs))
			e.got()
			b := ino(e, "b")
			must(e, e.s.RenameWith(t0(), "a", "b", RenameOptions{Replace: true}))
			return []FileChange{{Kind: ChangeRemove, Key: "b", Ino: b}, {Kind: ChangeRename, Key: "a", NewKey: "b", Ino: e.ino}}
		}},
		{"RenameWith Replace of a pinned file, Fail", func(e *env) []FileChange {
			mustPut(e.t, e.s, "b", pattern(2, bs))
			e.got()
			p := mustPin(e.t, mustOpen(e.t, e.s, "b"), 0, bs, PinOptions{})
			defer p.Unpin()
			err := e.s.RenameWith(t0(), "a", "b", RenameOptions{Replace: true, Break: BreakOptions{Policy: PolicyFail}})
			wantErr(e.t, err, ErrPinned)
			return nil
		}},
		{"RenameWith without Replace", func(e *env) []FileChange {
			must(e, e.s.RenameWith(t0(), "a", "c", RenameOptions{}))
			return []FileChange{{Kind: ChangeRename, Key: "a", NewKey: "c", Ino: e.ino}}
		}},
		{"directories", func(e *env) []FileChange {
			must(e, e.s.Mkdir("d", AttrChange{}))
			wantErr(e.t, e.s.Mkdir("d", AttrChange{}), ErrExist)
			_, err := e.s.SetDirAttr("d", AttrChange{Mask: AttrMode, Mode: 0o700})
			must(e, err)
			must(e, e.s.Mkdir("d/e", AttrChange{}))
			must(e, e.s.RenameDir("d", "f"))
			wantErr(e.t, e.s.Rmdir("f"), ErrNotEmpty)
			must(e, e.s.Rmdir("f/e"))
			must(e, e.s.Rmdir("f"))
			return []FileChange{
				{Kind: ChangeCreate, Key: "d", Dir: true},
				{Kind: ChangeAttr, Key: "d", Dir: true},
				{Kind: ChangeCreate, Key: "d/e", Dir: true},
				{Kind: ChangeRename, Key: "d", NewKey: "f", Dir: true},
				{Kind: ChangeRemove, Key: "f/e", Dir: true},
				{Kind: ChangeRemove, Key: "f", Dir: true},
			}
		}},
		{"RenameDir moving a file", func(e *env) []FileChange {
			mustPut(e.t, e.s, "d/x", []byte("x"))
			e.got()
			must(e, e.s.RenameDir("d", "e"))
			wantErr(e.t, e.s.RenameDir("nope", "e2"), ErrNotFound)
			return []FileChange{{Kind: ChangeRename, Key: "d", NewKey: "e", Dir: true}}
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
			stop := s.Watch(func(c FileChange) {
				if err := probeUnlocked(s, f.in); err != nil {
					t.Errorf("%v reported with %v", c, err)
				}
				r.fn(c)
			})
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

// probeUnlocked fails unless the store's locks and those of in are free:
// a watcher runs outside every lock. It tries each lock until it gets it;
// a background goroutine (the releaser) may hold one for a moment, but a
// lock held by the notifying goroutine itself is never released.
func probeUnlocked(s *Store, in *inode) error {
	locks := []struct {
		name string
		try  func() bool
		undo func()
	}{
		{"quiesce", s.quiesce.TryLock, s.quiesce.Unlock},
		{"namespace lock", s.nsMu.mu.TryLock, s.nsMu.mu.Unlock},
		{"commit lock", s.commitMu.mu.TryLock, s.commitMu.mu.Unlock},
		{"IO lock", in.ioMu.mu.TryLock, in.ioMu.mu.Unlock},
		{"invalidate lock", in.invalMu.mu.TryLock, in.invalMu.mu.Unlock},
		{"extent-map lock", in.mapMu.mu.TryLock, in.mapMu.mu.Unlock},
	}
	for _, l := range locks {
		got := false
		for range 100000 {
			if got = l.try(); got {
				break
			}
			runtime.Gosched()
		}
		if !got {
			return fmt.Errorf("the %s held", l.name)
		}
		l.undo()
	}
	return nil
}

// TestWatchStopWaitsForARunningCall: stop does not return while fn runs,
// and fn is never called once stop returned.
func TestWatchStopWaitsForARunningCall(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "a", pattern(1, testBS))
	f := mustOpen(t, s, "a")
	defer f.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	var stopped atomic.Bool // set once stop returned
	var calls atomic.Int64
	var once sync.Once
	stop := s.Watch(func(c FileChange) {
		if stopped.Load() {
			t.Errorf("%v reported after stop returned", c)
		}
		calls.Add(1)
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	w := (*s.watch.list.Load())[0]
	wrote := make(chan error)
	go func() {
		_, err := f.WriteAt([]byte("x"), 0)
		wrote <- err
	}()
	<-entered
	stopDone := make(chan struct{})
	go func() {
		stop()
		stopped.Store(true)
		close(stopDone)
	}()
	// Wait until stop marked the watcher stopped: it is then waiting for
	// the call that is blocked in fn.
	for {
		w.mu.Lock()
		marked := w.stopped
		w.mu.Unlock()
		if marked {
			break
		}
		runtime.Gosched()
	}
	select {
	case <-stopDone:
		t.Fatal("stop returned while fn was running")
	default:
	}
	// New changes are not reported to a stopping watcher.
	if _, err := f.WriteAt([]byte("y"), 1); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-stopDone
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	n := calls.Load()
	if _, err := f.WriteAt([]byte("z"), 2); err != nil {
		t.Fatal(err)
	}
	stop() // again: nothing to do
	if calls.Load() != n || n != 1 {
		t.Fatalf("fn called %d times, then %d, want 1", n, calls.Load())
	}
	if s.watch.list.Load() != nil {
		t.Fatal("the watch list is not empty after the last stop")
	}
}

// TestWatchStopUnderConcurrency registers and stops watchers while
// writers run: a watcher is never called after its stop returned, stop
// never returns with a call running, every watcher registered for a
// change sees it, and watchers that call back into the store (and change
// it) neither deadlock nor miss anything.
func TestWatchStopUnderConcurrency(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	const writers, rounds = 3, 60
	files := make([]*File, writers)
	for i := range files {
		key := fmt.Sprintf("w%d", i)
		mustPut(t, s, key, pattern(byte(i), testBS))
		files[i] = mustOpen(t, s, key)
		defer files[i].Close()
	}
	nested := mustOpen(t, s, "w0")
	defer nested.Close()
	// A long-lived watcher, registered before the writers start and stopped
	// after they end, is told of every write exactly once.
	var seen atomic.Int64
	stopAll := s.Watch(func(c FileChange) {
		if c.Kind == ChangeData && c.Via != nil && c.Via != nested {
			seen.Add(1)
		}
	})
	done := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := pattern(byte(i), 64)
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := f.WriteAt(buf, int64(n%32)*64); err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	for r := range rounds {
		var stopped atomic.Bool
		var running atomic.Int32
		var nestedDone atomic.Bool
		stop := s.Watch(func(c FileChange) {
			running.Add(1)
			defer running.Add(-1)
			if stopped.Load() {
				t.Errorf("round %d: %v reported after stop returned", r, c)
			}
			if _, err := s.Stat(c.Key); err != nil {
				t.Errorf("round %d: stat from a watcher: %v", r, err)
			}
			// A change made from inside a watcher is reported from
			// inside the call, to every watcher, this one included.
			if nestedDone.CompareAndSwap(false, true) {
				if _, err := nested.WriteAt([]byte{byte(r)}, 4000); err != nil {
					t.Errorf("round %d: write from a watcher: %v", r, err)
				}
			}
		})
		// Each writer may have one write counted now that started
		// before Watch: one more write than writers started after it.
		for w := writes.Load(); writes.Load() <= w+int64(writers); {
			runtime.Gosched()
		}
		stop()
		stopped.Store(true)
		if n := running.Load(); n != 0 {
			t.Fatalf("round %d: stop returned with %d calls running", r, n)
		}
	}
	close(done)
	wg.Wait()
	stopAll()
	if got, all := seen.Load(), writes.Load(); got != all {
		t.Fatalf("the long-lived watcher saw %d writes of %d", got, all)
	}
}

// TestWatchWatcherCallsStat: a watcher that calls Stat and ReadAt sees the
// change it is told of already applied, and does not deadlock against
// Check, which waits for every operation in flight, running meanwhile.
func TestWatchWatcherCallsStat(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	f, err := s.Create("log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := s.Open("log")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n, rec = 200, 100
	stop := s.Watch(func(c FileChange) {
		if c.Key != "log" || c.Kind != ChangeData {
			return
		}
		fi, err := s.Stat(c.Key)
		if err != nil {
			t.Errorf("stat from a watcher: %v", err)
			return
		}
		if fi.Size < c.Off+c.Len {
			t.Errorf("%v reported with the file %d bytes long", c, fi.Size)
			return
		}
		got := make([]byte, c.Len)
		if _, err := r.ReadAt(got, c.Off); err != nil {
			t.Errorf("read from a watcher: %v", err)
		} else if want := pattern(byte(c.Off/rec), rec); !bytes.Equal(got, want) {
			t.Errorf("%v reported before its bytes are readable", c)
		}
	})
	defer stop()
	checked := make(chan error)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				checked <- nil
				return
			default:
			}
			if err := s.Check(); err != nil {
				checked <- err
				return
			}
		}
	}()
	for i := range n {
		if _, err := f.WriteAt(pattern(byte(i), rec), int64(i)*rec); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
}

var watchSeed = flag.Uint64("dax.watchseed", 0, "seed of TestWatchCoversEveryChangedByte (0: random)")

// byteSpan is a reported range [lo, hi) of bytes.
type byteSpan struct{ lo, hi int64 }

// TestWatchCoversEveryChangedByte runs writers on one file concurrently
// (writes through several Files, truncates, punches, zero-ranges,
// allocations, writable pins and Puts) with a watcher that gathers the
// ranges reported. After each round, once every writer returned, every
// byte that differs from the file as the round began (and every byte
// past the shorter of the two sizes) must lie in a reported range: a
// change the watcher missed would leave a cache stale.
func TestWatchCoversEveryChangedByte(t *testing.T) {
	seed := *watchSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	const (
		bs      = testBS
		maxSize = 24 * bs
		writers = 4
		rounds  = 25
		ops     = 8
	)
	s := newStore(t, 8<<20, nil)
	mustPut(t, s, "a", pattern(1, 8*bs))
	fi, err := s.Stat("a")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var spans []byteSpan
	var log []string
	logf := func(format string, args ...any) {
		mu.Lock()
		log = append(log, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	stop := s.Watch(func(c FileChange) {
		if c.Ino != fi.Ino {
			return
		}
		sp := byteSpan{c.Off, c.Off + c.Len}
		switch {
		case c.Kind == ChangeReplace:
			sp = byteSpan{0, math.MaxInt64}
		case c.Len < 0:
			sp.hi = math.MaxInt64
		case c.Kind != ChangeData && c.Kind != ChangeSize:
			return
		}
		mu.Lock()
		spans = append(spans, sp)
		mu.Unlock()
	})
	defer stop()
	content := func(f *File) []byte {
		size, err := f.Size()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, size)
		if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return buf
	}
	files := make([]*File, writers)
	for i := range files {
		files[i] = mustOpen(t, s, "a")
		defer files[i].Close()
	}
	before := content(files[0])
	for round := range rounds {
		var wg sync.WaitGroup
		for g, f := range files {
			rng := rand.New(rand.NewPCG(seed, uint64(round*writers+g)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range ops {
					if err := watchOp(rng, s, f, g, maxSize, logf); err != nil {
						t.Errorf("writer %d: %v", g, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		after := content(files[0])
		mu.Lock()
		got := mergeSpans(spans)
		oplog := log
		spans, log = nil, nil
		mu.Unlock()
		if t.Failed() {
			t.Fatalf("seed %d (-dax.watchseed), round %d", seed, round)
		}
		for i := int64(0); i < int64(max(len(before), len(after))); i++ {
			if i < int64(min(len(before), len(after))) && before[i] == after[i] {
				continue
			}
			if !covered(got, i) {
				t.Fatalf("seed %d (-dax.watchseed), round %d: byte %d changed (size %d -> %d) and no change reported covers it; reported %v; ops:\n  %s",
					seed, round, i, len(before), len(after), got, strings.Join(oplog, "\n  "))
			}
		}
		before = after
	}
	mustCheck(t, s)
}

// watchOp applies one random change to f (writer g's File of the file),
// logging it. Errors a race with another writer explains (a pin past an
// end a truncate moved) are not failures.
func watchOp(rng *rand.Rand, s *Store, f *File, g int, maxSize int64, logf func(string, ...any)) error {
	off := rng.Int64N(maxSize)
	n := 1 + rng.Int64N(min(3*testBS, maxSize-off))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	switch k := rng.IntN(100); {
	case k < 40:
		buf := make([]byte, n)
		fill(buf)
		logf("g%d write [%d,+%d)", g, off, n)
		_, err := f.WriteAt(buf, off)
		return err
	case k < 50:
		logf("g%d truncate %d", g, off)
		return f.Truncate(off)
	case k < 60:
		logf("g%d punch [%d,+%d)", g, off, n)
		return f.PunchHole(off, n)
	case k < 70:
		logf("g%d zero [%d,+%d)", g, off, n)
		return f.ZeroRange(off, n)
	case k < 75:
		logf("g%d allocate [%d,+%d)", g, off, n)
		return f.Allocate(off, n)
	case k < 99:
		size, err := f.Size()
		if err != nil || size == 0 {
			return err
		}
		off = rng.Int64N(size)
		n = 1 + rng.Int64N(min(3*testBS, size-off))
		logf("g%d pin [%d,+%d)", g, off, n)
		p, err := f.Pin(off, n, PinOptions{Writable: true})
		if errors.Is(err, ErrInvalidRange) {
			return nil // a truncate got there first
		} else if err != nil {
			return err
		}
		for _, b := range p.Bytes() {
			fill(b)
		}
		if rng.IntN(2) == 0 {
			if err := p.Flush(); err != nil {
				return err
			}
		}
		return p.Unpin()
	default:
		buf := make([]byte, rng.Int64N(maxSize))
		fill(buf)
		logf("g%d put %d bytes", g, len(buf))
		return s.Put("a", buf)
	}
}

// mergeSpans sorts spans and merges the ones that overlap or touch.
func mergeSpans(spans []byteSpan) []byteSpan {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b byteSpan) int { return cmp.Compare(a.lo, b.lo) })
	var out []byteSpan
	for _, sp := range spans {
		if sp.hi <= sp.lo {
			continue
		}
		if len(out) > 0 && sp.lo <= out[len(out)-1].hi {
			out[len(out)-1].hi = max(out[len(out)-1].hi, sp.hi)
			continue
		}
		out = append(out, sp)
	}
	return out
}

func covered(spans []byteSpan, i int64) bool {
	j, _ := slices.BinarySearchFunc(spans, i, func(sp byteSpan, i int64) int {
		switch {
		case sp.hi <= i:
			return -1
		case sp.lo > i:
			return 1
		}
		return 0
	})
	return j < len(spans) && spans[j].lo <= i && i < spans[j].hi
}
