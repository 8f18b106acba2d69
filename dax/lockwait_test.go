package dax

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// setLockBusyHook installs fn as lockBusyHook for the test. Tests using it
// must not run in parallel with each other.
func setLockBusyHook(t *testing.T, fn func()) {
	t.Helper()
	lockBusyHook = fn
	t.Cleanup(func() { lockBusyHook = nil })
}

func openHeld(t *testing.T) (string, *Store) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 32 * testBS, NoSync: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "k", []byte("v"))
	return dir, s
}

// A lock released while an Open waits for it lets that Open through, for a
// writer and for a reader.
func TestLockTimeoutWaitsForRelease(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			dir, holder := openHeld(t)
			busy := make(chan struct{}, 1)
			setLockBusyHook(t, func() { busy <- struct{}{} })
			type result struct {
				s   *Store
				err error
			}
			done := make(chan result, 1)
			go func() {
				s, err := Open(dir, &Options{NoAdminSocket: true, ReadOnly: ro, LockTimeout: time.Hour})
				done <- result{s, err}
			}()
			<-busy // the second Open found the lock held and waits
			if err := holder.Close(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("Open waiting for the lock: %v", r.err)
			}
			if got := mustGet(t, r.s, "k"); string(got) != "v" {
				t.Fatalf("got %q after the wait, want v", got)
			}
			if err := r.s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A wait that runs out fails with ErrLocked naming the holder's pid and
// how long it waited.
func TestLockTimeoutExpiresWithPid(t *testing.T) {
	dir, holder := openHeld(t)
	defer holder.Close()
	busy := 0
	setLockBusyHook(t, func() { busy++ })
	const wait = 30 * time.Millisecond
	start := time.Now()
	_, err := Open(dir, &Options{NoAdminSocket: true, LockTimeout: wait})
	wantErr(t, err, ErrLocked)
	if pid := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), pid) {
		t.Errorf("error %q does not name the holder (%s)", err, pid)
	}
	if !strings.Contains(err.Error(), "waited "+wait.String()) {
		t.Errorf("error %q does not say how long it waited", err)
	}
	if el := time.Since(start); el < wait {
		t.Errorf("Open gave up after %v, before its timeout %v", el, wait)
	}
	if busy != 1 {
		t.Errorf("lock busy hook ran %d times, want 1", busy)
	}
	mustCheck(t, holder)
}

// LockTimeout 0 fails at once, as Open always did: it never waits.
func TestLockTimeoutZeroFailsAtOnce(t *testing.T) {
	dir, holder := openHeld(t)
	defer holder.Close()
	setLockBusyHook(t, func() { t.Error("Open with LockTimeout 0 waited for the lock") })
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, &Options{NoAdminSocket: true, ReadOnly: ro})
		wantErr(t, err, ErrLocked)
	}
}

// A cancelled context ends the wait with the context's error, long before
// the timeout, and leaves the holder undisturbed.
func TestOpenContextCancelEndsLockWait(t *testing.T) {
	dir, holder := openHeld(t)
	defer holder.Close()
	ctx, cancel := context.WithCancel(context.Background())
	setLockBusyHook(t, cancel)
	_, err := OpenContext(ctx, dir, &Options{NoAdminSocket: true, LockTimeout: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenContext cancelled during the wait: %v, want context.Canceled", err)
	}
	if got := mustGet(t, holder, "k"); string(got) != "v" {
		t.Fatal("the holder was disturbed")
	}
	mustCheck(t, holder)
}

func TestNegativeLockTimeoutIsInvalid(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, &Options{LockTimeout: -time.Second})
	wantErr(t, err, ErrInvalidRange)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused Open left %d entries in %s", len(entries), dir)
	}
}
