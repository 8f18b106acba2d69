package dax_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"sync"

	"github.com/daxstore/daxstore/dax"
)

// exampleStore opens a small new store in a fresh directory and returns it
// with a function that closes it and removes the directory.
func exampleStore() (*dax.Store, func()) {
	dir, err := os.MkdirTemp("", "daxstore-example")
	if err != nil {
		log.Fatal(err)
	}
	// 16 MiB is plenty here; the region file is sparse either way.
	s, err := dax.Open(dir, &dax.Options{Size: 16 << 20, NoAdminSocket: true})
	if err != nil {
		log.Fatal(err)
	}
	return s, func() {
		if err := s.Close(); err != nil {
			log.Fatal(err)
		}
		os.RemoveAll(dir)
	}
}

// Open a store, put a value and get it back. Open creates the store when
// the directory holds none; Put is durable when it returns.
func Example() {
	dir, err := os.MkdirTemp("", "daxstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := dax.Open(dir, &dax.Options{Size: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.Put("greeting", []byte("hello, pmem")); err != nil {
		log.Fatal(err)
	}
	v, err := s.Get("greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)

	_, err = s.Get("missing")
	fmt.Println(errors.Is(err, dax.ErrNotFound))
	// Output:
	// hello, pmem
	// true
}

// A File is a random-access handle: WriteAt grows the file, Truncate
// shrinks it, and PunchHole unmaps whole blocks, which then read as zeros
// and take no space.
func ExampleFile() {
	s, done := exampleStore()
	defer done()

	f, err := s.Create("data")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	bs := s.BlockSize()
	block := make([]byte, bs)
	for i := range block {
		block[i] = 'x'
	}
	for i := range int64(3) { // three blocks of x
		if _, err := f.WriteAt(block, i*bs); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.PunchHole(bs, bs); err != nil { // the middle block
		log.Fatal(err)
	}
	if err := f.Truncate(2*bs + 10); err != nil {
		log.Fatal(err)
	}

	size, _ := f.Size()
	fi, _ := f.Stat()
	buf := make([]byte, 1)
	f.ReadAt(buf, 0)
	first := buf[0]
	f.ReadAt(buf, bs)
	fmt.Printf("size %d blocks, %d bytes over\n", size/bs, size%bs)
	fmt.Printf("blocks owned: %d\n", fi.Blocks)
	fmt.Printf("first byte %q, punched byte %q\n", first, buf[0])
	// Output:
	// size 2 blocks, 10 bytes over
	// blocks owned: 2
	// first byte 'x', punched byte '\x00'
}

// A pin gives zero-copy access to a file's bytes in the region. A punch
// (or truncate, zero-range, remove, overwrite) under a pin follows a break
// policy: Fail refuses it; Detach, the default, returns at once: the file
// loses the blocks, the pin keeps its bytes, and Busy lists the blocks until
// the last pin on them drops; Wait detaches the same way, then waits for
// that. Here a Wait punch runs while the pin is held, Busy shows what it
// detached, and Unpin frees it, which lets the punch return.
func ExamplePin() {
	s, done := exampleStore()
	defer done()

	bs := s.BlockSize()
	if err := s.Put("video", make([]byte, 4*bs)); err != nil {
		log.Fatal(err)
	}
	f, err := s.Open("video")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	broken := make(chan struct{})
	p, err := f.Pin(0, 2*bs, dax.PinOptions{Label: "encoder", OnBreak: func() { close(broken) }})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pinned blocks:", p.Len()/bs)

	ctx := context.Background()
	err = f.PunchHoleWith(ctx, 0, 2*bs, dax.BreakOptions{Policy: dax.PolicyFail})
	fmt.Println("fail policy refused:", errors.Is(err, dax.ErrPinned))

	punched := make(chan error)
	go func() { punched <- f.PunchHoleWith(ctx, 0, 2*bs, dax.BreakOptions{Policy: dax.PolicyWait}) }()
	<-broken // the punch detached the pinned blocks and now waits
	for _, b := range s.Busy() {
		fmt.Printf("busy: %d blocks of %s (%s), held by %v\n", b.Blocks, b.Key, b.Reason, b.Labels)
	}

	if err := p.Unpin(); err != nil {
		log.Fatal(err)
	}
	if err := <-punched; err != nil {
		log.Fatal(err)
	}
	fmt.Println("busy extents after unpin:", len(s.Busy()))
	// Output:
	// pinned blocks: 2
	// fail policy refused: true
	// busy: 2 blocks of video (punch), held by [encoder]
	// busy extents after unpin: 0
}

// A follow window maps a file range into memory and keeps showing the
// file: a punch under it remaps the punched pages to zeros before the
// punch returns, and Generation counts the remaps.
func ExampleFile_Map() {
	s, done := exampleStore()
	defer done()

	bs := s.BlockSize()
	value := make([]byte, 2*bs)
	for i := range value {
		value[i] = 'w'
	}
	if err := s.Put("table", value); err != nil {
		log.Fatal(err)
	}
	f, err := s.Open("table")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	w, err := f.Map(0, 2*bs, dax.MapOptions{Label: "reader"})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	b := w.Bytes()
	fmt.Printf("before: %q %q, generation %d\n", b[0], b[bs], w.Generation())

	if err := f.PunchHole(bs, bs); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("after:  %q %q, generation %d\n", b[0], b[bs], w.Generation())
	// Output:
	// before: 'w' 'w', generation 0
	// after:  'w' '\x00', generation 1
}

// Inspect reads a store without opening it: from the journal when no
// process holds it, or from the holder over its admin socket.
func ExampleInspect() {
	dir, err := os.MkdirTemp("", "daxstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := dax.Open(dir, &dax.Options{Size: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	s.Put("a", make([]byte, 10000))
	s.Put("b", []byte("small"))
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	snap, err := dax.Inspect(context.Background(), dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("live:", snap.Live)
	fmt.Println("files:", snap.Stats.Files)
	fmt.Println("used blocks:", snap.Stats.UsedBlocks)
	// Output:
	// live: false
	// files: 2
	// used blocks: 3
}

// Snapshot is what Inspect shows, taken from the open store itself: its
// figures, pins and busy extents at one instant.
func ExampleStore_Snapshot() {
	s, done := exampleStore()
	defer done()

	s.Put("log", make([]byte, s.BlockSize()))
	f, _ := s.Open("log")
	defer f.Close()
	p, err := f.Pin(0, 100, dax.PinOptions{Label: "tailer"})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Unpin()

	snap, err := s.Snapshot()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("live:", snap.Live)
	for _, pi := range snap.Pins {
		fmt.Printf("pin %q on %s, %d bytes\n", pi.Label, pi.Key, pi.Length)
	}
	// Output:
	// live: true
	// pin "tailer" on log, 100 bytes
}

// Store.FS serves the store as an io/fs file system, so the standard
// library's tools work on it.
func ExampleStore_FS() {
	s, done := exampleStore()
	defer done()

	s.Put("etc/motd", []byte("welcome\n"))
	s.Put("etc/hosts", []byte("127.0.0.1 localhost\n"))

	fsys := s.FS()
	b, err := fs.ReadFile(fsys, "etc/motd")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", b)
	names, err := fs.Glob(fsys, "etc/*")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(names)
	// Output:
	// welcome
	// [etc/hosts etc/motd]
}

// Watch reports every change once it is applied, in the goroutine that
// made it, before the changing call returns.
func ExampleStore_Watch() {
	s, done := exampleStore()
	defer done()

	var mu sync.Mutex
	var seen []string
	stop := s.Watch(func(c dax.FileChange) {
		mu.Lock()
		defer mu.Unlock()
		switch c.Kind {
		case dax.ChangeCreate:
			seen = append(seen, "create "+c.Key)
		case dax.ChangeReplace:
			seen = append(seen, "replace "+c.Key)
		case dax.ChangeRename:
			seen = append(seen, "rename "+c.Key+" to "+c.NewKey)
		case dax.ChangeRemove:
			seen = append(seen, "remove "+c.Key)
		}
	})
	s.Put("draft", []byte("v1"))
	s.Put("draft", []byte("v2"))
	s.Rename("draft", "final")
	s.Remove("final")
	stop()

	mu.Lock()
	defer mu.Unlock()
	for _, e := range seen {
		fmt.Println(e)
	}
	// Output:
	// create draft
	// replace draft
	// rename draft to final
	// remove final
}
