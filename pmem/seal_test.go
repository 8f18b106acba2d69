package pmem

import (
	"errors"
	"os"
	"testing"
)

func TestSealRoundTripsAndSurvivesReopen(t *testing.T) {
	r := createTestRegion(t, CreateOptions{Size: 16 * 4096})
	if got := r.Seal(); got != 0 {
		t.Fatalf("new region: Seal() = %d, want 0", got)
	}
	for _, v := range []uint64{1, 7, 1 << 40} {
		if err := r.SetSeal(v); err != nil {
			t.Fatal(err)
		}
		if got := r.Seal(); got != v {
			t.Fatalf("Seal() = %d after SetSeal(%d)", got, v)
		}
	}
	path := r.Path()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenWith(path, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := ro.Seal(); got != 1<<40 {
		t.Fatalf("reopened read-only: Seal() = %d, want %d", got, uint64(1)<<40)
	}
	if err := ro.SetSeal(2); err == nil {
		t.Fatal("SetSeal on a read-only region succeeded")
	}
	if got := ro.Seal(); got != 1<<40 {
		t.Fatalf("after a refused SetSeal: Seal() = %d", got)
	}
	if _, err := DecodeSuperblock(readAt(t, path, 0, SuperblockSize)); err != nil {
		t.Fatalf("the seal disturbed the superblock: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ro.SetSeal(3); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("SetSeal after Close: %v, want os.ErrClosed", err)
	}
}

func TestDamagedSealReadsAsZero(t *testing.T) {
	r := createTestRegion(t, CreateOptions{Size: 16 * 4096})
	if err := r.SetSeal(42); err != nil {
		t.Fatal(err)
	}
	m := r.m.Load()
	for i := sealOff; i < sealOff+sealLen; i++ {
		m.data[i] ^= 0x10
		if got := r.Seal(); got != 0 {
			t.Fatalf("byte %d of the seal flipped: Seal() = %d, want 0", i, got)
		}
		m.data[i] ^= 0x10
	}
	if got := r.Seal(); got != 42 {
		t.Fatalf("Seal() = %d, want 42", got)
	}
}

func TestSealOnEmulatedMediaKeepsOnlyFlushedValue(t *testing.T) {
	pc := newPowerCut(1)
	r := emulatedRegion(t, pc, 16)
	if err := r.SetSeal(5); err != nil {
		t.Fatal(err)
	}
	pc.CutAfter(1, 0) // the next flush, that of SetSeal(6), is cut
	if err := r.SetSeal(6); err != nil {
		t.Fatal(err)
	}
	if !pc.Cut() {
		t.Fatal("the cut did not fire in SetSeal's flush")
	}
	r2 := reopenAfterCut(t, r, pc)
	if got := r2.Seal(); got != 5 {
		t.Fatalf("after a cut inside SetSeal(6): Seal() = %d, want 5", got)
	}
}
