package dax

// These tests prove the seal (seal.go): a journal whose write-ahead log lost
// acknowledged commits after a crash is refused at Open, while ordinary
// crashes and clean closes reopen as before.

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/internal/powercut"
	"github.com/daxstore/daxstore/internal/testhooks"
)

// journalLog returns the path of the largest write-ahead log (*.log) of the
// store in dir on sim's journal filesystem, and its contents.
func journalLog(t *testing.T, dir string, sim *powercut.Sim) (string, []byte) {
	t.Helper()
	fs := sim.JournalFS().VFS()
	jdir := filepath.Join(dir, "journal")
	names, err := fs.List(jdir)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	var data []byte
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		p := fs.PathJoin(jdir, n)
		if b := readJournalFile(t, sim, p); len(b) > len(data) {
			path, data = p, b
		}
	}
	if path == "" {
		t.Fatal("the journal has no write-ahead log")
	}
	return path, data
}

// rewriteLog replaces the file at path on sim's journal filesystem with data.
func rewriteLog(t *testing.T, sim *powercut.Sim, path string, data []byte) {
	t.Helper()
	fs := sim.JournalFS().VFS()
	if err := fs.Remove(path); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashAfterSealedPuts creates a store on sim, closes it cleanly (so the
// store's creation lives in tables, not in the log), reopens it, makes n
// acknowledged Puts - the first carries a commit mark, which the region
// then seals - and cuts the power.
func crashAfterSealedPuts(t *testing.T, dir string, sim *powercut.Sim, n int) {
	t.Helper()
	s := powerCutStore(t, dir, sim)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = powerCutStore(t, dir, sim)
	for i := range n {
		if err := s.Put(keyN(i), []byte("acknowledged")); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.region.Seal(); got == 0 {
		t.Fatalf("region seal is 0 after %d synced Puts, want at least 1", n)
	}
	sim.CutNow(0)
	_ = s.CloseWith(context.Background(), CloseOptions{Force: true})
	sim.Restart()
}

// copyJournalOut copies the store's journal from sim's filesystem to dir on
// the real one, so that the store opens without the simulator.
func copyJournalOut(t *testing.T, dir string, sim *powercut.Sim) {
	t.Helper()
	fs := sim.JournalFS().VFS()
	jdir := filepath.Join(dir, "journal")
	if err := os.MkdirAll(jdir, 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := fs.List(jdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "LOCK" {
			continue
		}
		b := readJournalFile(t, sim, fs.PathJoin(jdir, n))
		if err := os.WriteFile(filepath.Join(jdir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readJournalFile returns the contents of path on sim's journal filesystem.
func readJournalFile(t *testing.T, sim *powercut.Sim, path string) []byte {
	t.Helper()
	f, err := sim.JournalFS().VFS().Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyN(i int) string { return "k" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) }

func TestSealDetectsJournalLogThatLostAcknowledgedCommits(t *testing.T) {
	const n = 20
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		// Both land inside the first batch after the log's header: the
		// first Put, whose batch carries the commit mark. Pebble stops
		// its replay there and would serve the store without a single
		// acknowledged Put.
		{"flipped byte", func(b []byte) []byte { b[20] ^= 0x20; return b }},
		{"truncated", func(b []byte) []byte { return b[:16] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sim := powercut.New(1)
			crashAfterSealedPuts(t, dir, sim, n)
			path, data := journalLog(t, dir, sim)
			rewriteLog(t, sim, path, tc.damage(data))
			open := func(ro bool, sim *powercut.Sim) {
				t.Helper()
				s, err := Open(dir, &Options{NoAdminSocket: true, media: testhooks.Media{PowerCut: sim}, ReadOnly: ro})
				if err == nil {
					var lost int
					for i := range n {
						if _, gerr := s.Get(keyN(i)); errors.Is(gerr, ErrNotFound) {
							lost++
						}
					}
					_ = s.Close()
					t.Fatalf("Open (read-only %v) of a journal whose log lost acknowledged Puts succeeded; %d of %d Puts are gone", ro, lost, n)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "lost acknowledged operations") {
					t.Fatalf("Open (read-only %v): %v, want ErrCorrupt saying acknowledged operations were lost", ro, err)
				}
				t.Logf("read-only %v: %v", ro, err)
			}
			open(false, sim)
			open(false, sim) // the refusal changed nothing: it stands
			// Emulated media cannot be opened read-only: move the
			// journal to the real filesystem, where the region is.
			copyJournalOut(t, dir, sim)
			open(true, nil)
			open(false, nil)
		})
	}
}

func TestSealPassesUndamagedCrashAndCleanClose(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	sim := powercut.New(2)
	crashAfterSealedPuts(t, dir, sim, n)
	s := powerCutStore(t, dir, sim)
	for i := range n {
		if _, err := s.Get(keyN(i)); err != nil {
			t.Fatalf("Get %s after the crash: %v", keyN(i), err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A clean Close moved the log into tables: damage to the log now
	// loses nothing, and the seal must not object.
	path, data := journalLog(t, dir, sim)
	if len(data) > 20 {
		data[20] ^= 0x20
		rewriteLog(t, sim, path, data)
	}
	s = powerCutStore(t, dir, sim)
	defer s.Close()
	if _, err := s.Get("after"); err != nil {
		t.Fatal(err)
	}
}

func TestNoSyncSealsOnlyWhatASyncMadeDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 1 << 20, NoAdminSocket: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.commitMu.Lock()
	mark := s.seal.mark
	s.commitMu.Unlock()
	if mark == 0 {
		t.Fatal("the first Put carried no commit mark")
	}
	if got := s.region.Seal(); got != 0 {
		t.Fatalf("NoSync: seal %d before any journal sync, want 0", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := ro.region.Seal(); got != mark {
		t.Fatalf("after a clean Close: seal %d, want the last mark %d", got, mark)
	}
}
