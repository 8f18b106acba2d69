package main

// demo: the story daxstore exists to tell, run for real in one process and
// checked at every step, so it doubles as a smoke test. A pinned range
// survives a hole punch, its blocks are never handed out while pinned, and
// an allocation waiting for them wakes when the pin drops. Beside the pin,
// a follow window over the same range sees the punch as zeros at once,
// while a pinned window keeps the old bytes as the pin does.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// The demo's figures.
const (
	demoRegionSize = 8 << 20
	demoBlockSize  = 4096
	demoKey        = "video/frame-0001"
	demoValueSize  = 1 << 20
	demoPinOffset  = 256 << 10
	demoPinLength  = 256 << 10
	demoPinLabel   = "dma-buffer"
	// The windows over the pinned range: one that follows the file and
	// one that holds its blocks as the pin does.
	demoFollowLabel = "reader-window"
	demoPinnedLabel = "frame-window"
	// demoShown is how many bytes of each reader the punch's table shows.
	demoShown    = 8
	demoFillSize = 256 << 10
	demoLateKey  = "late/waiter"
	// demoShortWait bounds each Put of the fill: long enough to show that a
	// Put waits for busy blocks before it gives up.
	demoShortWait = 200 * time.Millisecond
	// demoAllocWait is the store's AllocWait: the waiting Put of step 6 may
	// wait this long for the pin to drop. The demo drops it as soon as the
	// Put waits; the bound only catches a lost wakeup, so it allows for a
	// heavily loaded machine.
	demoAllocWait = time.Minute
	// demoPatience bounds the waits on the store's background work
	// (callbacks, the releaser) before the demo calls them lost; it too
	// only catches what is lost, not what is slow.
	demoPatience = time.Minute
)

// demoCanary is what the pin holder writes through the pin.
var demoCanary = []byte("DMA-CANARY-0042!")

func (c *cli) demoCommand() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use: "demo",
		Example: `  daxstore demo
  daxstore demo --keep`,
		Short: "Show, and check, how pinned blocks survive a hole punch",
		Long: `demo runs the story daxstore exists for, in one process, on a fresh 8 MiB
store in a temporary directory (or in --dir, which must not hold a store):
it pins part of a key and maps that range twice, as a follow window and as a
pinned window, punches the range out of the key, and shows side by side
that the follow window reads zeros at once while the pin and the pinned
window keep the old bytes. It then fills the region and shows that the
pinned blocks are kept busy - never handed out - until the pin drops, when a
waiting allocation wakes at once. Every step is checked;
the demo exits 1 if any expectation fails. The temporary store is removed
at the end unless --keep is given; a --dir store is always kept.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runDemo(cmd.Context(), cmd.Flags().Changed("dir"), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary store")
	cmd.Annotations = map[string]string{reportsInterrupt: "yes"}
	return cmd
}

// demo is one run of the story.
type demo struct {
	ctx  context.Context
	out  io.Writer
	dir  string
	s    *dax.Store
	step int

	original []byte            // demoKey's value
	file     *dax.File         // demoKey, open
	pin      dax.Pin           // the "dma-buffer" pin, the zero Pin once unpinned
	broke    chan struct{}     // receives when the pin's OnBreak runs
	filled   map[string][]byte // the keys of step 5 and their values

	follow       *dax.Window   // a follow window over the pinned range, nil once closed
	pinned       *dax.Window   // a pinned window over the pinned range, nil once closed
	pinnedBroke  chan struct{} // receives when the pinned window's OnBreak runs
	shownBefore  [4][]byte     // the first bytes of each reader before the punch (see readers)
	followGenPre uint64        // the follow window's generation before the punch
}

// readers are the four views of the pinned range that the punch's table
// shows, in order.
func (d *demo) readers() (names [4]string, first [4][]byte, err error) {
	file := make([]byte, demoShown)
	if _, err := d.file.ReadAt(file, demoPinOffset); err != nil {
		return names, first, err
	}
	names = [4]string{"file (ReadAt)", fmt.Sprintf("follow window %q", demoFollowLabel),
		fmt.Sprintf("pin %q", demoPinLabel), fmt.Sprintf("pinned window %q", demoPinnedLabel)}
	first = [4][]byte{file, bytes.Clone(d.follow.Bytes()[:demoShown]), bytes.Clone(firstBytes(d.pin, demoShown)),
		bytes.Clone(d.pinned.Bytes()[:demoShown])}
	return names, first, nil
}

func (c *cli) runDemo(ctx context.Context, ownDir, keep bool) (err error) {
	dir := c.dir
	if ownDir {
		if _, serr := os.Stat(filepath.Join(dir, "journal")); serr == nil {
			return fmt.Errorf("demo: store already exists in %s; the demo needs a fresh directory", dir)
		}
	} else {
		if dir, err = os.MkdirTemp("", "daxstore-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if !ownDir && !keep {
		defer os.RemoveAll(dir)
	}
	d := &demo{ctx: ctx, out: c.out, dir: dir, broke: make(chan struct{}, 1), pinnedBroke: make(chan struct{}, 1),
		filled: make(map[string][]byte)}
	defer func() {
		if d.s != nil {
			// Only a failed run gets here with the store open; release
			// whatever it still holds. A window closed after its store
			// still gives back its address range.
			_ = d.s.CloseWith(context.Background(), dax.CloseOptions{Force: true})
			for _, w := range []*dax.Window{d.follow, d.pinned} {
				if w != nil {
					_ = w.Close()
				}
			}
		}
	}()
	fmt.Fprintln(d.out, "daxstore demo: a pinned range survives a hole punch, its blocks stay busy - never reused -")
	fmt.Fprintln(d.out, "while pinned, and a Put waiting for space wakes when the pin drops. A follow window over")
	fmt.Fprintln(d.out, "the range sees the punch as zeros at once; a pinned window keeps the old bytes, as the pin does.")
	fmt.Fprintln(d.out)
	for _, step := range []func() error{
		d.create, d.pinAndWriteCanary, d.punch, d.listBusy, d.fill, d.wakeWaiter, d.busyEmpty, d.check,
	} {
		d.step++
		if err := step(); err != nil {
			return fmt.Errorf("demo step %d: %w", d.step, err)
		}
	}
	if err := d.s.Close(); err != nil {
		return fmt.Errorf("demo: close: %w", err)
	}
	d.s = nil
	if ownDir || keep {
		fmt.Fprintf(d.out, "\nThe store is kept in %s.\n", dir)
	}
	return nil
}

// say prints the current step's first line, numbered.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

// more prints a further line of the current step, indented.
func (d *demo) more(format string, args ...any) {
	fmt.Fprintf(d.out, "   %s\n", fmt.Sprintf(format, args...))
}

// indented prints the output of draw indented under the current step.
func (d *demo) indented(draw func(w io.Writer) error) error {
	var buf bytes.Buffer
	if err := draw(&buf); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintf(d.out, "     %s\n", l)
	}
	return nil
}

func (d *demo) stats() (dax.Stats, error) { return d.s.Stats() }

// create makes the store and puts the key the rest of the story is about.
func (d *demo) create() error {
	s, err := dax.Open(d.dir, &dax.Options{Size: demoRegionSize, BlockSize: demoBlockSize, AllocWait: demoAllocWait})
	if err != nil {
		return err
	}
	d.s = s
	d.original = make([]byte, demoValueSize)
	for i := range d.original {
		d.original[i] = byte('a' + (i/demoBlockSize+i)%26)
	}
	if err := s.Put(demoKey, d.original); err != nil {
		return err
	}
	got, err := s.Get(demoKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, d.original) {
		return fmt.Errorf("%q reads back %d bytes that differ from the %d put", demoKey, len(got), len(d.original))
	}
	st, err := d.stats()
	if err != nil {
		return err
	}
	d.say("Created a store in %s: a region of %s with %d data blocks of %s (dax: %s).",
		d.dir, formatBytes(demoRegionSize), st.DataBlocks, formatBytes(st.BlockSize), yesNo(st.DAX))
	d.more("Put %q: %s in %d blocks. Free now: %d blocks.", demoKey, formatBytes(demoValueSize),
		demoValueSize/demoBlockSize, st.FreeBlocks)
	return nil
}

// pinAndWriteCanary pins a range of the key, as a DMA engine or RDMA NIC
// would, and writes the canary through the pin's slices.
func (d *demo) pinAndWriteCanary() error {
	f, err := d.s.Open(demoKey)
	if err != nil {
		return err
	}
	d.file = f
	d.pin, err = f.Pin(demoPinOffset, demoPinLength, dax.PinOptions{
		Writable: true,
		Label:    demoPinLabel,
		OnBreak: func() {
			select {
			case d.broke <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	pos := 0
	for _, run := range d.pin.Bytes() {
		for i := range run {
			run[i] = demoCanary[(pos+i)%len(demoCanary)]
		}
		pos += len(run)
	}
	if pos != demoPinLength {
		return fmt.Errorf("the pin gives %d bytes, want %d", pos, demoPinLength)
	}
	if err := d.pin.Flush(); err != nil {
		return err
	}
	through := make([]byte, demoPinLength)
	if _, err := f.ReadAt(through, demoPinOffset); err != nil {
		return err
	}
	if !isCanary(through) {
		return errors.New("the file does not read the canary written through its pin")
	}
	d.say("Pinned bytes [%s, %s) of %q as %q: %d blocks, writable.", formatBytes(demoPinOffset),
		formatBytes(demoPinOffset+demoPinLength), demoKey, demoPinLabel, demoPinLength/demoBlockSize)
	d.more("Wrote the canary %q through the pin; the file reads it too: the pin's slices are its blocks.", demoCanary)
	return d.mapWindows()
}

// mapWindows maps the pinned range twice: as a follow window, which shows
// whatever the file holds there and holds no blocks, and as a pinned
// window, which holds its blocks as the pin does.
func (d *demo) mapWindows() (err error) {
	if d.follow, err = d.file.Map(demoPinOffset, demoPinLength, dax.MapOptions{Label: demoFollowLabel}); err != nil {
		return err
	}
	d.pinned, err = d.file.Map(demoPinOffset, demoPinLength, dax.MapOptions{
		Label: demoPinnedLabel,
		Mode:  dax.MapPinned,
		OnBreak: func() {
			select {
			case d.pinnedBroke <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	for _, w := range []*dax.Window{d.follow, d.pinned} {
		if b := w.Bytes(); len(b) != demoPinLength || !isCanary(b) {
			return fmt.Errorf("the %s window %q does not read the canary (%d bytes)", w.Mode(), w.Label(), len(b))
		}
	}
	_, d.shownBefore, err = d.readers()
	if err != nil {
		return err
	}
	d.followGenPre = d.follow.Generation()
	d.more("Mapped the same range twice, read-only, each as one contiguous []byte: a follow window %q", demoFollowLabel)
	d.more("(%s; it shows whatever the file holds there and holds no blocks) and a pinned window", plural(d.follow.Pieces(), "mapping"))
	d.more("%q (%s; it holds its blocks as a pin does). Both read the canary.", demoPinnedLabel, plural(d.pinned.Pieces(), "mapping"))
	return nil
}

// punch punches the pinned range out of the key: the file reads zeros
// there, the pin keeps its canary, and the blocks go to the busy list.
func (d *demo) punch() error {
	before, err := d.stats()
	if err != nil {
		return err
	}
	if err := d.file.PunchHole(demoPinOffset, demoPinLength); err != nil {
		return err
	}
	got, err := d.s.Get(demoKey)
	if err != nil {
		return err
	}
	if len(got) != demoValueSize {
		return fmt.Errorf("%q is %d bytes after the punch, want %d", demoKey, len(got), demoValueSize)
	}
	hole := got[demoPinOffset : demoPinOffset+demoPinLength]
	if !allZero(hole) {
		return errors.New("the punched range of the file does not read zeros")
	}
	if !bytes.Equal(got[:demoPinOffset], d.original[:demoPinOffset]) ||
		!bytes.Equal(got[demoPinOffset+demoPinLength:], d.original[demoPinOffset+demoPinLength:]) {
		return errors.New("the punch changed bytes outside its range")
	}
	if !d.pinHoldsCanary() {
		return errors.New("the pin lost its canary in the punch")
	}
	if err := d.windowsAfterPunch(); err != nil {
		return err
	}
	for _, c := range []struct {
		who   string
		broke chan struct{}
	}{{"pin", d.broke}, {"pinned window", d.pinnedBroke}} {
		select {
		case <-c.broke:
		case <-time.After(demoPatience):
			return fmt.Errorf("the %s's OnBreak callback did not run within %s", c.who, demoPatience)
		}
	}
	st, err := d.stats()
	if err != nil {
		return err
	}
	want := uint64(demoPinLength / demoBlockSize)
	if st.BusyBlocks != want || st.FreeBlocks != before.FreeBlocks {
		return fmt.Errorf("after the punch %d blocks are busy and %d free, want %d busy and %d free (unchanged)",
			st.BusyBlocks, st.FreeBlocks, want, before.FreeBlocks)
	}
	d.say("Punched [%s, %s) out of %q.", formatBytes(demoPinOffset), formatBytes(demoPinOffset+demoPinLength), demoKey)
	d.more("The file now reads %d zero bytes there (%q...), while the pin still reads %q...",
		len(hole), hole[:8], firstBytes(d.pin, len(demoCanary)))
	d.more("The first %d bytes of the range through each reader, before and after the punch:", demoShown)
	names, after, err := d.readers()
	if err != nil {
		return err
	}
	if err := d.indented(func(w io.Writer) error { return printReaders(w, names, d.shownBefore, after) }); err != nil {
		return err
	}
	d.more("The follow window was remapped before PunchHole returned (generation %d -> %d): it reads zeros,",
		d.followGenPre, d.follow.Generation())
	d.more("as the file does. The pin and the pinned window keep the old blocks, which the file no longer owns.")
	d.more("Both OnBreak callbacks ran. The %d blocks went to the busy list, not to free space (free: %d blocks).",
		st.BusyBlocks, st.FreeBlocks)
	return nil
}

// windowsAfterPunch checks both windows after the punch: the follow window
// reads what the file reads (zeros), and was remapped; the pinned window
// still reads the canary.
func (d *demo) windowsAfterPunch() error {
	if !allZero(d.follow.Bytes()) {
		return fmt.Errorf("the follow window %q does not read the punched range as zeros", demoFollowLabel)
	}
	if d.follow.Generation() <= d.followGenPre {
		return fmt.Errorf("the follow window's generation is %d after the punch, %d before: not remapped",
			d.follow.Generation(), d.followGenPre)
	}
	if d.follow.Stale() {
		return fmt.Errorf("the follow window %q is stale after a punch; only Remove or Close makes it so", demoFollowLabel)
	}
	if !isCanary(d.pinned.Bytes()) {
		return fmt.Errorf("the pinned window %q lost the canary in the punch", demoPinnedLabel)
	}
	return nil
}

// printReaders draws the punch's table: the first bytes of each reader of
// the range before and after it.
func printReaders(w io.Writer, names [4]string, before, after [4][]byte) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "READER\tBEFORE\tAFTER")
	for i, name := range names {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, showBytes(before[i]), showBytes(after[i]))
	}
	return tw.Flush()
}

// showBytes shows a few bytes for people: quoted when they are printable
// text, else in hex.
func showBytes(b []byte) string {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("% x", b)
		}
	}
	return fmt.Sprintf("%q", b)
}

// listBusy shows the busy extents as `daxstore busy` does.
func (d *demo) listBusy() error {
	snap, err := d.s.Snapshot()
	if err != nil {
		return err
	}
	var punched bool
	for _, b := range snap.Busy {
		if b.Reason == "punch" && b.Key == demoKey && slices.Contains(b.Labels, demoPinLabel) {
			punched = true
		}
	}
	if !punched {
		return fmt.Errorf("no busy extent of %q with reason punch and label %q: %+v", demoKey, demoPinLabel, snap.Busy)
	}
	d.say("Busy extents, as `daxstore busy --dir %s` shows them (from another process too, over %s):",
		d.dir, dax.AdminSocketName)
	if err := d.indented(func(w io.Writer) error { return printBusy(w, snap, time.Now()) }); err != nil {
		return err
	}
	d.more("Pins and windows, as `daxstore pins` shows them (a follow window holds no blocks):")
	return d.indented(func(w io.Writer) error { return printPins(w, snap, time.Now()) })
}

// fill puts keys until the region is full, and proves that none of them got
// a busy block.
func (d *demo) fill() error {
	st, err := d.stats()
	if err != nil {
		return err
	}
	size := demoFillSize
	counts := map[int]int{}
	var last error
	var waited time.Duration
	for i := 0; ; i++ {
		if i > int(st.DataBlocks)+2 {
			return fmt.Errorf("the region never filled up after %d puts", i)
		}
		key := fmt.Sprintf("fill/%04d", i)
		value := fillValue(i, size)
		ctx, cancel := context.WithTimeout(d.ctx, demoShortWait)
		start := time.Now()
		err := d.s.PutWith(ctx, key, value, dax.BreakOptions{})
		cancel()
		if err == nil {
			d.filled[key] = value
			counts[size]++
			continue
		}
		if d.ctx.Err() != nil {
			return d.ctx.Err()
		}
		if !errors.Is(err, dax.ErrNoSpace) {
			return fmt.Errorf("put %s: %w, want success or ErrNoSpace", formatBytes(int64(size)), err)
		}
		if waited = time.Since(start); waited < demoShortWait*3/4 {
			return fmt.Errorf("put failed with ErrNoSpace after %s, without waiting for the busy blocks", waited)
		}
		last = err
		if size == demoBlockSize {
			break
		}
		size = demoBlockSize
	}
	after, err := d.stats()
	if err != nil {
		return err
	}
	busy := uint64(demoPinLength / demoBlockSize)
	if after.FreeBlocks != 0 || after.BusyBlocks != busy {
		return fmt.Errorf("the full region has %d free and %d busy blocks, want 0 and %d", after.FreeBlocks, after.BusyBlocks, busy)
	}
	for key, want := range d.filled {
		got, err := d.s.Get(key)
		if err != nil {
			return err
		}
		if bytes.Contains(got, demoCanary) {
			return fmt.Errorf("%q contains the canary: it was given a busy block", key)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%q does not read back its value", key)
		}
	}
	if !d.pinHoldsCanary() {
		return errors.New("the pin's canary was overwritten: a busy block was handed out")
	}
	if !isCanary(d.pinned.Bytes()) || !allZero(d.follow.Bytes()) {
		return errors.New("after the fill, the pinned window lost the canary or the follow window shows bytes that are not zeros")
	}
	d.say("Filled the region: %d keys of %s, then %d keys of %s, until Put failed.",
		counts[demoFillSize], formatBytes(demoFillSize), counts[demoBlockSize], formatBytes(demoBlockSize))
	d.more("The last Put waited %s for busy blocks to come back, then gave up with ErrNoSpace:", waited.Round(time.Millisecond))
	d.more("  %v", last)
	d.more("Free: %d blocks; busy: %d blocks. Read back all %d new keys: each holds exactly its value",
		after.FreeBlocks, after.BusyBlocks, len(d.filled))
	d.more("and none contains the canary, which the pin and the pinned window still read intact: no busy")
	d.more("block was handed out. The follow window still reads zeros, never a new key's bytes.")
	return nil
}

// wakeWaiter starts a Put that needs the busy blocks, lets it wait, unpins,
// and times the wakeup.
func (d *demo) wakeWaiter() error {
	value := fillValue(-1, demoPinLength)
	type result struct {
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	started := time.Now()
	go func() {
		err := d.s.PutWith(ctx, demoLateKey, value, dax.BreakOptions{})
		done <- result{err, time.Now()}
	}()
	// The Put must be waiting before the pin drops, or nothing is shown.
	var waiters int
	for deadline := time.Now().Add(demoPatience); ; {
		select {
		case r := <-done:
			return fmt.Errorf("the Put of %s finished (%v) before the pin dropped, without waiting", formatBytes(demoPinLength), r.err)
		default:
		}
		st, err := d.stats()
		if err != nil {
			return err
		}
		if waiters = st.Waiters; waiters > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Put of %s is not waiting after %s", formatBytes(demoPinLength), demoPatience)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitingFor := time.Since(started)
	// The pinned window holds the same blocks as the pin: closing it
	// alone releases nothing, so the waiter must still be waiting.
	if err := d.pinned.Close(); err != nil {
		return err
	}
	d.pinned = nil
	select {
	case r := <-done:
		return fmt.Errorf("the Put finished (%v) when the pinned window closed, while the pin still held its blocks", r.err)
	default:
	}
	unpinned := time.Now()
	if err := d.pin.Unpin(); err != nil {
		return err
	}
	d.pin = dax.Pin{}
	var r result
	select {
	case r = <-done:
	case <-time.After(demoAllocWait + demoPatience):
		return errors.New("the waiting Put never completed")
	}
	if r.err != nil {
		return fmt.Errorf("the waiting Put failed after the unpin: %w", r.err)
	}
	wake := r.at.Sub(unpinned)
	got, err := d.s.Get(demoLateKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, value) {
		return fmt.Errorf("%q does not read back its value", demoLateKey)
	}
	// The late key may now own the blocks the follow window once showed:
	// the window must still read the file's hole, never the late key.
	if !allZero(d.follow.Bytes()) {
		return fmt.Errorf("the follow window %q shows bytes of another key after its blocks were reused", demoFollowLabel)
	}
	if err := d.follow.Close(); err != nil {
		return err
	}
	d.follow = nil
	d.say("Started a Put of %q (%s, %d blocks) in a goroutine with nothing free: it waits (waiters: %d;",
		demoLateKey, formatBytes(demoPinLength), demoPinLength/demoBlockSize, waiters)
	d.more("it may wait up to %s). After %s, closed the pinned window %q: the pin still holds the", demoAllocWait,
		waitingFor.Round(time.Millisecond), demoPinnedLabel)
	d.more("blocks, so the Put kept waiting. Then unpinned %q: the last reference dropped, the blocks were", demoPinLabel)
	d.more("released, and the waiting Put completed %s after Unpin.", wake.Round(10*time.Microsecond))
	d.more("The follow window still reads zeros, not %q's bytes; closed it.", demoLateKey)
	return nil
}

// busyEmpty shows that nothing is busy any more.
func (d *demo) busyEmpty() error {
	var snap *dax.Snapshot
	for deadline := time.Now().Add(demoPatience); ; {
		var err error
		if snap, err = d.s.Snapshot(); err != nil {
			return err
		}
		if len(snap.Busy) == 0 && snap.Stats.BusyBlocks == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d busy extents remain %s after the unpin", len(snap.Busy), demoPatience)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if snap.Stats.Pins != 0 || len(snap.Pins) != 0 {
		return fmt.Errorf("%d pins remain after the unpin", snap.Stats.Pins)
	}
	d.say("Busy extents now:")
	if err := d.indented(func(w io.Writer) error { return printBusy(w, snap, time.Now()) }); err != nil {
		return err
	}
	d.more("Free: %d blocks; busy: %d; pins: %d; blocks released since open: %d.",
		snap.Stats.FreeBlocks, snap.Stats.BusyBlocks, snap.Stats.Pins, snap.Stats.Released)
	return nil
}

// check proves the store's invariants.
func (d *demo) check() error {
	if err := d.file.Close(); err != nil {
		return err
	}
	if err := d.s.Check(); err != nil {
		return err
	}
	d.say("check: ok")
	return nil
}

// pinHoldsCanary reports whether every pinned byte still holds the canary.
func (d *demo) pinHoldsCanary() bool {
	pos := 0
	for _, run := range d.pin.Bytes() {
		for i, b := range run {
			if b != demoCanary[(pos+i)%len(demoCanary)] {
				return false
			}
		}
		pos += len(run)
	}
	return pos == demoPinLength
}

// firstBytes returns up to n of a pin's first bytes.
func firstBytes(p dax.Pin, n int) []byte {
	runs := p.Bytes()
	if len(runs) == 0 {
		return nil
	}
	return runs[0][:min(n, len(runs[0]))]
}

// fillValue is the value of fill key i: its name repeated, so any misplaced
// block is easy to recognise.
func fillValue(i, size int) []byte {
	tag := []byte(fmt.Sprintf("[fill %04d] ", i))
	return bytes.Repeat(tag, size/len(tag)+1)[:size]
}

func isCanary(b []byte) bool {
	for i, c := range b {
		if c != demoCanary[i%len(demoCanary)] {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
