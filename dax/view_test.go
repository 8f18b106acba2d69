package dax

// Tests of the reads into a caller's buffer: AppendGet (a copy into dst) and
// View (the mapping itself, under a short-term reference).

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

func TestAppendGetAndViewRefuseBadInputWithoutChange(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, 5000))
	before := snapshot(t, s)
	dst := []byte("prefix")
	called := false
	fn := func([]byte) error { called = true; return nil }
	for _, c := range []struct {
		name string
		key  string
		fn   func([]byte) error
		want error
	}{
		{"an empty key", "", fn, ErrInvalidKey},
		{"a key with a NUL byte", "a\x00b", fn, ErrInvalidKey},
		{"a key longer than MaxKeyLen", strings.Repeat("k", MaxKeyLen+1), fn, ErrInvalidKey},
		{"a missing key", "missing", fn, ErrNotFound},
		{"a nil function", "k", nil, ErrInvalidRange},
	} {
		t.Run("it refuses "+c.name, func(t *testing.T) {
			if c.fn != nil {
				got, err := s.AppendGet(dst, c.key)
				wantErr(t, err, c.want)
				if string(got) != "prefix" {
					t.Fatalf("AppendGet returned %q on an error, want dst unchanged", got)
				}
			}
			wantErr(t, s.View(c.key, c.fn), c.want)
			if called {
				t.Fatal("View called fn on an error")
			}
		})
	}
	sameState(t, s, before)
}

func TestAppendGetAndViewOfAClosedStoreFail(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, 100))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.AppendGet(nil, "k")
	wantErr(t, err, ErrClosed)
	wantErr(t, s.View("k", func([]byte) error { t.Fatal("fn called"); return nil }), ErrClosed)
}

func TestAppendGetAppendsAndViewShowsTheValue(t *testing.T) {
	s := newStore(t, 4<<20, nil)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 3*4096 + 5, 1 << 20} {
		t.Run(fmt.Sprintf("a value of %d bytes", n), func(t *testing.T) {
			want := pattern(byte(n), n)
			mustPut(t, s, "k", want)
			got, err := s.AppendGet([]byte("head:"), "k")
			if err != nil || string(got[:5]) != "head:" || !bytes.Equal(got[5:], want) {
				t.Fatalf("AppendGet: %d bytes, %v; want head: and the %d-byte value", len(got), err, n)
			}
			seen := false
			err = s.View("k", func(v []byte) error {
				seen = true
				if v == nil || !bytes.Equal(v, want) {
					return fmt.Errorf("View shows %d bytes (nil %v), want the %d-byte value", len(v), v == nil, n)
				}
				return nil
			})
			if err != nil || !seen {
				t.Fatalf("View: %v (fn called %v)", err, seen)
			}
			if g := mustGet(t, s, "k"); g == nil || !bytes.Equal(g, want) {
				t.Fatalf("Get: %d bytes (nil %v)", len(g), g == nil)
			}
		})
	}
}

func TestViewReturnsTheFunctionsErrorAsIs(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(1, 100))
	mine := errors.New("mine")
	if err := s.View("k", func([]byte) error { return mine }); err != mine {
		t.Fatalf("View returned %v, want fn's error itself", err)
	}
	// The reference View held is gone: the key can be removed and its
	// blocks return to free space, not to busy.
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if st := mustStats(t, s); st.BusyBlocks != 0 {
		t.Fatalf("%d busy blocks after View returned", st.BusyBlocks)
	}
	mustCheck(t, s)
}

func TestAppendGetAndViewReadHolesAndUnwrittenBlocksAsZeros(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	f, err := s.Create("sparse")
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(7, 100)
	if _, err := f.WriteAt(data, 2*testBS+10); err != nil { // blocks 0-1 a hole
		t.Fatal(err)
	}
	if err := f.Allocate(4*testBS, 2*testBS); err != nil { // blocks 4-5 unwritten
		t.Fatal(err)
	}
	if err := f.Truncate(7*testBS + 3); err != nil { // block 6-7 a hole
		t.Fatal(err)
	}
	want := make([]byte, 7*testBS+3)
	copy(want[2*testBS+10:], data)

	// Spare capacity full of garbage: the fill must overwrite it all.
	dst := bytes.Repeat([]byte{0xee}, 8*testBS)[:3]
	got, err := s.AppendGet(dst, "sparse")
	if err != nil || !bytes.Equal(got[:3], []byte{0xee, 0xee, 0xee}) || !bytes.Equal(got[3:], want) {
		t.Fatalf("AppendGet of a sparse value: %d bytes, %v; holes or unwritten blocks not zeros", len(got), err)
	}
	err = s.View("sparse", func(v []byte) error {
		if !bytes.Equal(v, want) {
			return errors.New("View of a sparse value: holes or unwritten blocks not zeros")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestViewOfOneRunIsTheMappingItself(t *testing.T) {
	s := newStore(t, 1<<20, nil)
	mustPut(t, s, "k", pattern(3, 3*testBS))
	f := mustOpen(t, s, "k")
	p := mustPin(t, f, 0, 3*testBS, PinOptions{})
	defer p.Unpin()
	if len(p.Bytes()) != 1 {
		t.Skipf("the value was written in %d runs", len(p.Bytes()))
	}
	err := s.View("k", func(v []byte) error {
		if unsafe.SliceData(v) != unsafe.SliceData(p.Bytes()[0]) {
			return errors.New("View copied a value that is one run of written blocks")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAppendGetIntoARoomyBufferDoesNotAllocate(t *testing.T) {
	if lockChecking {
		t.Skip("the lockcheck build allocates to record the locks held")
	}
	s := newStore(t, 4<<20, nil)
	for _, n := range []int{4 << 10, 64 << 10, 1 << 20} {
		key := fmt.Sprint("k", n)
		mustPut(t, s, key, pattern(byte(n>>10), n))
		buf := make([]byte, 0, n)
		var err error
		if a := testing.AllocsPerRun(50, func() { buf, err = s.AppendGet(buf[:0], key) }); a != 0 || err != nil {
			t.Fatalf("AppendGet of %d bytes into a roomy buffer: %v allocations, %v", n, a, err)
		}
		fn := func(v []byte) error { return nil }
		if a := testing.AllocsPerRun(50, func() { err = s.View(key, fn) }); a != 0 || err != nil {
			t.Fatalf("View of %d bytes: %v allocations, %v", n, a, err)
		}
	}
}

// TestViewRacingPutAndRemoveSeesOnlyItsKeysBytes removes or overwrites a
// key while a View of it is inside fn, then has another key take every free
// block of the region, and only then lets fn look at its slice again.
// Were the viewed blocks freed by the break, the other key's bytes would
// show through the view; the reference View holds keeps them busy instead.
func TestViewRacingPutAndRemoveSeesOnlyItsKeysBytes(t *testing.T) {
	s := newStore(t, 1<<20, func(o *Options) { o.NoSync = false }) // freed blocks reusable at once
	const n = 4 * testBS
	for _, c := range []struct {
		name    string
		breakIt func() error
	}{
		{"a Remove", func() error { return s.Remove("a") }},
		{"a Put", func() error { return s.Put("a", bytes.Repeat([]byte{'A'}, n)) }},
	} {
		t.Run(c.name+" during View", func(t *testing.T) {
			mustPut(t, s, "a", bytes.Repeat([]byte{'a'}, n))
			inside, next := make(chan struct{}), make(chan error)
			go func() { // the break and the refill, while fn waits
				<-inside
				err := c.breakIt()
				if err == nil {
					var st Stats
					if st, err = s.Stats(); err == nil {
						err = s.Put("b", bytes.Repeat([]byte{'b'}, int(st.FreeBlocks)*testBS))
					}
				}
				next <- err
			}()
			err := s.View("a", func(v []byte) error {
				close(inside)
				if err := <-next; err != nil {
					return fmt.Errorf("break or refill: %w", err)
				}
				for i, ch := range v {
					if ch != 'a' {
						return fmt.Errorf("byte %d of the view is %q after the break, want 'a'", i, ch)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Remove("b"); err != nil {
				t.Fatal(err)
			}
			settle(t, s)
			if st := mustStats(t, s); st.BusyBlocks != 0 {
				t.Fatalf("%d blocks still busy after View returned", st.BusyBlocks)
			}
			mustCheck(t, s)
		})
	}
}

// TestViewsRacingPutsAndRemovesSeeOneValue runs Views of one key while
// other goroutines overwrite and remove it and fill another key. Every value
// is one byte repeated, a byte that names its key: a View must see one
// such byte throughout.
func TestViewsRacingPutsAndRemovesSeeOneValue(t *testing.T) {
	s := newStore(t, 2<<20, nil)
	const rounds = 300
	const n = 4 * testBS
	value := func(key byte, round int) []byte {
		return bytes.Repeat([]byte{key + byte(round%50)}, n) // a: 1-50, b: 101-150
	}
	mustPut(t, s, "a", value(1, 0))
	var wg sync.WaitGroup
	var views atomic.Int64
	errs := make(chan error, 4)
	done := make(chan struct{})  // tells b's writer to stop
	aDone := make(chan struct{}) // a's writer has stopped
	wg.Add(2)
	go func() { // overwrite and remove a, until the views raced it enough
		defer wg.Done()
		defer close(aDone)
		for i := 1; i <= rounds || views.Load() < rounds; i++ {
			if err := s.Put("a", value(1, i)); err != nil {
				errs <- err
				return
			}
			if i%3 == 0 {
				if err := s.Remove("a"); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	go func() { // fill b: it takes whatever blocks a gave back
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if err := s.Put("b", value(101, i)); err != nil {
				errs <- err
				return
			}
		}
	}()
	seen := 0
	check := func(v []byte) error {
		if len(v) != n {
			return fmt.Errorf("view of %d bytes, want %d", len(v), n)
		}
		first := v[0]
		if first < 1 || first > 50 {
			return fmt.Errorf("view of a shows byte %d, not one of a's", first)
		}
		for pass := 0; pass < 3; pass++ {
			for i, c := range v {
				if c != first {
					return fmt.Errorf("view of a changed under fn: byte %d is %d, was %d (pass %d)", i, c, first, pass)
				}
			}
		}
		return nil
	}
	for stop := false; !stop; {
		select {
		case err := <-errs:
			close(done)
			wg.Wait()
			t.Fatal(err)
		case <-aDone:
			stop = true
		default:
		}
		err := s.View("a", check)
		switch {
		case err == nil:
			seen++
		case errors.Is(err, ErrNotFound):
		default:
			close(done)
			wg.Wait()
			t.Fatalf("after %d views (%d saw a value): %v", views.Load(), seen, err)
		}
		views.Add(1)
	}
	t.Logf("%d views, %d saw a value", views.Load(), seen)
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	settle(t, s)
	mustCheck(t, s)
}
