package dax

// Bad input gets a clear error wrapping the right sentinel, and changes no
// state: every case compares the store before and after.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// badCase is one call that must fail with target and change nothing.
type badCase struct {
	name   string
	do     func() error
	target error
}

func runBadCases(t *testing.T, s *Store, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, s)
			err := tc.do()
			wantErr(t, err, tc.target)
			if !strings.HasPrefix(err.Error(), "daxstore: ") {
				t.Errorf("error %q does not say where it comes from", err)
			}
			sameState(t, s, before)
		})
	}
}

func TestBadKeysAreRejected(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 2*testBS))
	keys := map[string]string{
		"an empty key":                  "",
		"a key one byte over MaxKeyLen": strings.Repeat("k", MaxKeyLen+1),
		"a key holding a NUL byte":      "a\x00b",
		"a key that is not UTF-8":       "a\xffb",
	}
	var cases []badCase
	for what, key := range keys {
		calls := map[string]func() error{
			"Put":           func() error { return s.Put(key, []byte("x")) },
			"Get":           func() error { _, err := s.Get(key); return err },
			"Create":        func() error { _, err := s.Create(key); return err },
			"Open":          func() error { _, err := s.Open(key); return err },
			"Remove":        func() error { return s.Remove(key) },
			"Stat":          func() error { _, err := s.Stat(key); return err },
			"Rename from":   func() error { return s.Rename(key, "b") },
			"Rename onto":   func() error { return s.Rename("a", key) },
			"PutWith(Wait)": func() error { return s.PutWith(context.Background(), key, nil, BreakOptions{Policy: PolicyWait}) },
		}
		for call, do := range calls {
			cases = append(cases, badCase{fmt.Sprintf("%s with %s fails with ErrInvalidKey", call, what), do, ErrInvalidKey})
		}
	}
	runBadCases(t, s, cases)

	t.Run("a key of exactly MaxKeyLen bytes is accepted", func(t *testing.T) {
		key := strings.Repeat("é", MaxKeyLen/2)
		mustPut(t, s, key, []byte("v"))
		if got := mustGet(t, s, key); string(got) != "v" {
			t.Fatalf("got %q", got)
		}
		if err := s.Remove(key); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadRangesAreRejected(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	const size = 2*testBS + 7
	mustPut(t, s, "a", pattern(1, size))
	f := mustOpen(t, s, "a")
	buf := make([]byte, 16)
	big := int64(math.MaxInt64)
	cases := []badCase{
		{"ReadAt at a negative offset", func() error { _, err := f.ReadAt(buf, -1); return err }, ErrInvalidRange},
		{"ReadAt starting past MaxFileSize", func() error { _, err := f.ReadAt(buf, MaxFileSize+1); return err }, ErrInvalidRange},
		{"WriteAt at a negative offset", func() error { _, err := f.WriteAt(buf, -1); return err }, ErrInvalidRange},
		{"WriteAt whose end overflows int64", func() error { _, err := f.WriteAt(buf, big-4); return err }, ErrInvalidRange},
		{"WriteAt ending past MaxFileSize", func() error { _, err := f.WriteAt(buf, MaxFileSize-8); return err }, ErrInvalidRange},
		{"Truncate to a negative size", func() error { return f.Truncate(-1) }, ErrInvalidRange},
		{"Truncate past MaxFileSize", func() error { return f.Truncate(MaxFileSize + 1) }, ErrInvalidRange},
		{"PunchHole at a negative offset", func() error { return f.PunchHole(-1, 10) }, ErrInvalidRange},
		{"PunchHole of a negative length", func() error { return f.PunchHole(0, -1) }, ErrInvalidRange},
		{"PunchHole whose end overflows int64", func() error { return f.PunchHole(big, big) }, ErrInvalidRange},
		{"ZeroRange at a negative offset", func() error { return f.ZeroRange(-testBS, testBS) }, ErrInvalidRange},
		{"ZeroRange of a negative length", func() error { return f.ZeroRange(0, -testBS) }, ErrInvalidRange},
		{"ZeroRange whose end overflows int64", func() error { return f.ZeroRange(1, big) }, ErrInvalidRange},
		{"Allocate at a negative offset", func() error { return f.Allocate(-1, 1) }, ErrInvalidRange},
		{"Allocate of a negative length", func() error { return f.Allocate(0, -1) }, ErrInvalidRange},
		{"Allocate past MaxFileSize", func() error { return f.Allocate(MaxFileSize, 1) }, ErrInvalidRange},
		{"Pin at a negative offset", func() error { _, err := f.Pin(-1, 1, PinOptions{}); return err }, ErrInvalidRange},
		{"Pin of a negative length", func() error { _, err := f.Pin(0, -1, PinOptions{}); return err }, ErrInvalidRange},
		{"Pin of length 0", func() error { _, err := f.Pin(0, 0, PinOptions{}); return err }, ErrInvalidRange},
		{"Pin starting at EOF", func() error { _, err := f.Pin(size, 1, PinOptions{}); return err }, ErrInvalidRange},
		{"Pin reaching past EOF", func() error { _, err := f.Pin(0, size+1, PinOptions{}); return err }, ErrInvalidRange},
		{"Pin whose end overflows int64", func() error { _, err := f.Pin(big, big, PinOptions{}); return err }, ErrInvalidRange},
	}
	runBadCases(t, s, cases)
}

func TestMissingAndExistingKeysAreReported(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 2*testBS))
	mustPut(t, s, "b", pattern(2, testBS))
	runBadCases(t, s, []badCase{
		{"Create of an existing key fails with ErrExist", func() error { _, err := s.Create("a"); return err }, ErrExist},
		{"Rename onto an existing key fails with ErrExist", func() error { return s.Rename("a", "b") }, ErrExist},
		{"Open of a missing key fails with ErrNotFound", func() error { _, err := s.Open("nope"); return err }, ErrNotFound},
		{"Get of a missing key fails with ErrNotFound", func() error { _, err := s.Get("nope"); return err }, ErrNotFound},
		{"Stat of a missing key fails with ErrNotFound", func() error { _, err := s.Stat("nope"); return err }, ErrNotFound},
		{"Remove of a missing key fails with ErrNotFound", func() error { return s.Remove("nope") }, ErrNotFound},
		{"Rename of a missing key fails with ErrNotFound", func() error { return s.Rename("nope", "c") }, ErrNotFound},
	})

	t.Run("a File of a removed key reports ErrNotFound", func(t *testing.T) {
		f := mustOpen(t, s, "b")
		if err := s.Remove("b"); err != nil {
			t.Fatal(err)
		}
		runBadCases(t, s, []badCase{
			{"Size", func() error { _, err := f.Size(); return err }, ErrNotFound},
			{"ReadAt", func() error { _, err := f.ReadAt(make([]byte, 1), 0); return err }, ErrNotFound},
			{"WriteAt", func() error { _, err := f.WriteAt([]byte("x"), 0); return err }, ErrNotFound},
			{"Truncate", func() error { return f.Truncate(0) }, ErrNotFound},
			{"PunchHole", func() error { return f.PunchHole(0, 1) }, ErrNotFound},
			{"ZeroRange", func() error { return f.ZeroRange(0, 1) }, ErrNotFound},
			{"Allocate", func() error { return f.Allocate(0, 1) }, ErrNotFound},
			{"Pin", func() error { _, err := f.Pin(0, 1, PinOptions{}); return err }, ErrNotFound},
		})
	})
}

func TestDoubleUnpinChangesNothing(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 4*testBS))
	f := mustOpen(t, s, "a")
	keep := mustPin(t, f, 0, 2*testBS, PinOptions{Label: "keep"})
	defer keep.Unpin()
	p := mustPin(t, f, testBS, 2*testBS, PinOptions{Label: "twice"})
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	runBadCases(t, s, []badCase{
		{"a second Unpin fails with ErrUnpinned", p.Unpin, ErrUnpinned},
		{"Flush after Unpin fails with ErrUnpinned", p.Flush, ErrUnpinned},
	})
	if st := mustStats(t, s); st.PinnedBlocks != 2 || st.Pins != 1 {
		t.Fatalf("%d pinned blocks and %d pins, want the 2 blocks of the 1 other pin", st.PinnedBlocks, st.Pins)
	}
	if p.Bytes() != nil {
		t.Fatal("Bytes after Unpin is not nil")
	}
}

func TestAClosedFileRefusesEveryCall(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 2*testBS))
	f := mustOpen(t, s, "a")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runBadCases(t, s, fileCalls(f, ErrClosed))
}

// fileCalls is every File method, each expected to fail with target.
func fileCalls(f *File, target error) []badCase {
	buf := make([]byte, 8)
	ctx := context.Background()
	return []badCase{
		{"Size fails", func() error { _, err := f.Size(); return err }, target},
		{"Sync fails", f.Sync, target},
		{"ReadAt fails", func() error { _, err := f.ReadAt(buf, 0); return err }, target},
		{"WriteAt fails", func() error { _, err := f.WriteAt(buf, 0); return err }, target},
		{"Truncate fails", func() error { return f.Truncate(1) }, target},
		{"TruncateWith fails", func() error { return f.TruncateWith(ctx, 1, BreakOptions{Policy: PolicyWait}) }, target},
		{"PunchHole fails", func() error { return f.PunchHole(0, 1) }, target},
		{"ZeroRange fails", func() error { return f.ZeroRange(0, 1) }, target},
		{"Allocate fails", func() error { return f.Allocate(0, 1) }, target},
		{"Pin fails", func() error { _, err := f.Pin(0, 1, PinOptions{}); return err }, target},
		{"Close fails", f.Close, ErrClosed},
	}
}

func TestAClosedStoreRefusesEveryCall(t *testing.T) {
	s := newStore(t, 64*testBS, nil)
	mustPut(t, s, "a", pattern(1, 2*testBS))
	f := mustOpen(t, s, "a")
	p := mustPin(t, f, 0, testBS, PinOptions{Label: "forced"})
	if err := s.CloseWith(context.Background(), CloseOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := []badCase{
		{"Put fails", func() error { return s.Put("a", nil) }, ErrClosed},
		{"Get fails", func() error { _, err := s.Get("a"); return err }, ErrClosed},
		{"Create fails", func() error { _, err := s.Create("new"); return err }, ErrClosed},
		{"Open fails", func() error { _, err := s.Open("a"); return err }, ErrClosed},
		{"Remove fails", func() error { return s.Remove("a") }, ErrClosed},
		{"Rename fails", func() error { return s.Rename("a", "b") }, ErrClosed},
		{"Stat fails", func() error { _, err := s.Stat("a"); return err }, ErrClosed},
		{"List fails", func() error { _, err := s.List(""); return err }, ErrClosed},
		{"Stats fails", func() error { _, err := s.Stats(); return err }, ErrClosed},
		{"Snapshot fails", func() error { _, err := s.Snapshot(); return err }, ErrClosed},
		{"Check fails", s.Check, ErrClosed},
		{"Close fails", s.Close, ErrClosed},
		{"CloseWith Force fails", func() error { return s.CloseWith(ctx, CloseOptions{Force: true}) }, ErrClosed},
		{"Pin.Flush fails", p.Flush, ErrClosed},
		{"Pin.Unpin fails", p.Unpin, ErrClosed},
	}
	// File.Close is left out: it only drops the handle, and returns nil
	// the first time even after Store.Close, so a deferred Close is quiet.
	fc := fileCalls(f, ErrClosed)
	calls = append(calls, fc[:len(fc)-1]...)
	for _, tc := range calls {
		t.Run(tc.name+" with ErrClosed after Store.Close", func(t *testing.T) {
			err := tc.do()
			wantErr(t, err, tc.target)
		})
	}
	if p.Bytes() != nil {
		t.Error("a forced pin's Bytes is not nil after Close")
	}
}

// closedStoreFiles creates a store in a fresh directory, puts one key and
// closes it, returning the directory and the region path.
func closedStoreFiles(t *testing.T) (dir, region string) {
	t.Helper()
	dir = t.TempDir()
	s, err := Open(dir, &Options{Size: 32 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", pattern(1, 3*testBS)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "region")
}

func TestOpenRejectsABadRegion(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, region string)
	}{
		{"a region file of garbage", func(t *testing.T, region string) {
			fi, err := os.Stat(region)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(region, bytes.Repeat([]byte("garbage!"), int(fi.Size()/8)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a superblock with a flipped byte", func(t *testing.T, region string) {
			flipByte(t, region, 30)
		}},
		{"a region shorter than its superblock says", func(t *testing.T, region string) {
			fi, err := os.Stat(region)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(region, fi.Size()-testBS); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails with ErrCorrupt and leaves the files alone", func(t *testing.T) {
			dir, region := closedStoreFiles(t)
			good, err := os.ReadFile(region)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, region)
			damaged, err := os.ReadFile(region)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir, &Options{NoAdminSocket: true})
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			wantErr(t, err, ErrCorrupt)
			if after, _ := os.ReadFile(region); !bytes.Equal(after, damaged) {
				t.Fatal("the failed open changed the region file")
			}
			// The failed Open released the lock and changed nothing in
			// the journal: with the region repaired the store opens whole.
			if err := os.WriteFile(region, good, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, &Options{NoAdminSocket: true})
			if err != nil {
				t.Fatalf("open after repair: %v", err)
			}
			defer s.Close()
			if got := mustGet(t, s, "k"); !bytes.Equal(got, pattern(1, 3*testBS)) {
				t.Fatal("value changed")
			}
			mustCheck(t, s)
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsTheRegionOfAnotherStore(t *testing.T) {
	dirA, regionA := closedStoreFiles(t)
	dirB, regionB := closedStoreFiles(t)
	for _, tc := range []struct{ dir, region string }{{dirA, regionB}, {dirB, regionA}} {
		_, err := Open(tc.dir, &Options{RegionPath: tc.region, NoAdminSocket: true})
		wantErr(t, err, ErrMismatch)
		if !strings.Contains(err.Error(), "uuid") {
			t.Errorf("error %q does not show the two identities", err)
		}
	}
	// Nothing was changed: each store still opens with its own region.
	for _, dir := range []string{dirA, dirB} {
		s, err := Open(dir, &Options{NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "k"); !bytes.Equal(got, pattern(1, 3*testBS)) {
			t.Fatal("value changed")
		}
		mustCheck(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestASecondOpenOfAnOpenStoreIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 32 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "k", []byte("v"))
	_, err = Open(dir, &Options{NoAdminSocket: true})
	wantErr(t, err, ErrLocked)
	if pid := fmt.Sprint(os.Getpid()); !strings.Contains(err.Error(), pid) {
		t.Errorf("error %q does not name the holder's pid %s", err, pid)
	}
	if got := mustGet(t, s, "k"); string(got) != "v" {
		t.Fatal("the first store was disturbed")
	}
	mustCheck(t, s)
}

func TestAFullRegionFailsWithNoSpaceAndChangesNothing(t *testing.T) {
	s := newStore(t, 17*testBS, nil) // 16 data blocks
	mustPut(t, s, "a", pattern(1, 6*testBS))
	mustPut(t, s, "b", pattern(2, 7*testBS))
	f := mustOpen(t, s, "a")
	cases := []badCase{
		{"a Put of a new key larger than the free space", func() error { return s.Put("c", pattern(3, 4*testBS)) }, ErrNoSpace},
		{"a Put over a key larger than the free space", func() error { return s.Put("a", pattern(3, 4*testBS)) }, ErrNoSpace},
		{"a write filling holes beyond the free space", func() error { _, err := f.WriteAt(pattern(4, 5*testBS), 6*testBS); return err }, ErrNoSpace},
		{"an Allocate beyond the free space", func() error { return f.Allocate(10*testBS, 4*testBS) }, ErrNoSpace},
	}
	runBadCases(t, s, cases)
	err := s.Put("c", pattern(3, 4*testBS))
	for _, want := range []string{"need 4 blocks", "3 free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// What fits still fits.
	mustPut(t, s, "c", pattern(3, 3*testBS))
	mustCheck(t, s)
}
