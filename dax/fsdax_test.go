package dax

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"
)

var fsdaxDir = flag.String("fsdax-dir", "", "a directory on an fsdax mount (ext4/XFS -o dax) for TestStoreOnFsdax")

// TestStoreOnFsdax runs the store end to end on real persistent memory:
// the region mapped with MAP_SYNC, persistence by cache-line flushes. It
// runs only when -fsdax-dir names a directory on an fsdax mount, as
// `make dax-test` does inside a QEMU guest.
func TestStoreOnFsdax(t *testing.T) {
	if *fsdaxDir == "" {
		t.Skip("no -fsdax-dir given")
	}
	dir := t.TempDir()
	opts := &Options{Size: 64 << 20, RegionPath: filepath.Join(*fsdaxDir, "store-test.region"), NoAdminSocket: true}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !s.DAX() {
		t.Fatalf("region on %s is not mapped with MAP_SYNC", *fsdaxDir)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	switch st.FlushMethod {
	case "clwb", "clflushopt", "clflush":
	default:
		t.Fatalf("region on %s is DAX but flushes with %q, not a CPU cache line flush", *fsdaxDir, st.FlushMethod)
	}
	value := bytes.Repeat([]byte("persistent!"), 10000)
	if err := s.Put("k", value); err != nil {
		t.Fatal(err)
	}
	f, err := s.Open("k")
	if err != nil {
		t.Fatal(err)
	}
	pin, err := f.Pin(8192, 16384, PinOptions{Label: "fsdax", Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	copy(pin.Bytes()[0], "CANARY")
	if err := pin.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.PunchHole(8192, 16384); err != nil {
		t.Fatal(err)
	}
	if got := string(pin.Bytes()[0][:6]); got != "CANARY" {
		t.Fatalf("pin reads %q after punch", got)
	}
	if n := len(s.Busy()); n == 0 {
		t.Fatal("punch of a pinned range left no busy extent")
	}
	if err := pin.Unpin(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(value)
	clear(want[8192 : 8192+16384])
	if !bytes.Equal(got, want) {
		t.Fatal("value after reopen differs")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("store on %s: DAX, put %d bytes, pinned, punched, reopened: ok", *fsdaxDir, len(value))
}

// TestWindowOnFsdax maps a writable follow window on real persistent
// memory: the store reports MAP_SYNC (Stats.DAX), and bytes stored through
// the window and flushed are read back after a reopen. It runs only when
// -fsdax-dir names a directory on an fsdax mount.
func TestWindowOnFsdax(t *testing.T) {
	if *fsdaxDir == "" {
		t.Skip("no -fsdax-dir given")
	}
	dir := t.TempDir()
	opts := &Options{Size: 64 << 20, RegionPath: filepath.Join(*fsdaxDir, "window-test.region"), NoAdminSocket: true}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if !st.DAX {
		t.Fatalf("region on %s is not mapped with MAP_SYNC", *fsdaxDir)
	}
	f, err := s.Create("w")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4 << 20 // 2 MiB aligned span: huge pages where the mount allows
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	w, err := f.Map(0, n, MapOptions{Writable: true, Label: "fsdax window"})
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("window on pmem "), n/15+1)[:n]
	copy(w.Bytes(), want)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.PunchHole(n/2, 8192); err != nil {
		t.Fatal(err)
	}
	clear(want[n/2 : n/2+8192])
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatal("window differs from the file after a punch")
	}
	pieces := w.Pieces()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get("w")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes stored through the window lost across reopen")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("window of %d bytes on %s: MAP_SYNC, %d pieces, stores flushed and read back after reopen", n, *fsdaxDir, pieces)
}
