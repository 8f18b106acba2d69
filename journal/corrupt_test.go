package journal

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/daxstore/daxstore/internal/memfs"
	"github.com/daxstore/daxstore/pmem"
)

// TestCorruptTableIsOneLine flips one byte in the middle of a journal
// table: Open or Load must return one line wrapping pmem.ErrCorrupt,
// without a stack, without Pebble's redaction markers, and nothing may be
// logged. It used to log a timestamped line and return an error whose
// message ran over seventy lines.
func TestCorruptTableIsOneLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "j")
	j, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("z", 1000)
	for i := range 4000 { // about 4 MiB: several memtables reach tables
		b := j.NewBatch()
		b.SetInode(Inode{Ino: uint64(i + 1), Key: fmt.Sprintf("k%05d-%s", i, pad)})
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table was written")
	}
	var biggest string
	var size int64
	for _, p := range tables {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
	}
	data, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x40
	if err := os.WriteFile(biggest, data, 0o644); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	j, err = Open(dir, Options{})
	if err == nil {
		_, err = j.Load()
		j.Close()
	}
	if err == nil {
		t.Fatal("a flipped byte in a table went unnoticed")
	}
	if !errors.Is(err, pmem.ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Contains(msg, "carrier") || strings.Contains(msg, "‹") {
		t.Fatalf("error is not one plain line:\n%s", msg)
	}
	if logged.Len() > 0 {
		t.Fatalf("corruption was logged:\n%s", logged.String())
	}
	t.Logf("error: %s", msg)
}

// walFiles returns the write-ahead logs in dir on fs that hold data.
func walFiles(t *testing.T, fs vfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			if fi, err := fs.Stat(fs.PathJoin(dir, n)); err == nil && fi.Size() > 0 {
				logs = append(logs, fs.PathJoin(dir, n))
			}
		}
	}
	return logs
}

// damage flips the byte at frac of each file's length, or truncates the
// file there when truncate is set.
func damage(t *testing.T, fs vfs.FS, paths []string, frac float64, truncate bool) {
	t.Helper()
	for _, p := range paths {
		f, err := fs.OpenReadWrite(p, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		off := int64(float64(fi.Size()) * frac)
		if truncate {
			f.Close()
			data, err := os.ReadFile(p) // truncation is only used on real files
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data[:off], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x20
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func fillNames(t *testing.T, j *Journal, n int) {
	t.Helper()
	for i := range n {
		b := j.NewBatch()
		b.SetInode(Inode{Ino: uint64(i + 1), Key: fmt.Sprintf("w%05d", i)})
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogDamageAfterCleanCloseLosesNothing flips a byte in, or truncates,
// every write-ahead log of a cleanly closed journal: Close moved every batch
// into checksummed tables, so a reopen finds all of them. Before, Pebble
// took the damage for a torn write and dropped the last commits silently.
func TestLogDamageAfterCleanCloseLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name     string
		frac     float64
		truncate bool
	}{{"flip in the last record", 0.97, false}, {"flip in the middle", 0.5, false}, {"truncate", 0.6, true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "j")
			j, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			fillNames(t, j, n)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			damage(t, vfs.Default, walFiles(t, vfs.Default, dir), tc.frac, tc.truncate)
			j, err = Open(dir, Options{})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer j.Close()
			st, err := j.Load()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Names) != n {
				t.Fatalf("%d of %d acknowledged batches survived", len(st.Names), n)
			}
		})
	}
}

// TestLogDamageAfterCrashLeavesAPrefix pins down what survives damage to
// the log of a journal that was not closed (a crash): Pebble stops its
// replay at the damaged record, silently, because such a record looks like
// a write torn by the crash, so the journal comes back as a prefix of the
// acknowledged batches, never with a gap or a changed batch (see Durability
// in the package documentation).
func TestLogDamageAfterCrashLeavesAPrefix(t *testing.T) {
	const n = 300
	for _, frac := range []float64{0.1, 0.3, 0.5, 0.9, 0.999} {
		fs := memfs.New()
		j, err := Open("/j", Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		fillNames(t, j, n)
		crashed := fs.CrashClone()
		j.Close()
		damage(t, crashed.VFS(), walFiles(t, crashed.VFS(), "/j"), frac, false)
		j, err = Open("/j", Options{FS: crashed})
		if err != nil {
			if errors.Is(err, pmem.ErrCorrupt) {
				continue // detected: fine
			}
			t.Fatalf("damage at %.3f: %v", frac, err)
		}
		st, err := j.Load()
		j.Close()
		if err != nil {
			t.Fatalf("damage at %.3f: %v", frac, err)
		}
		for i := range len(st.Names) {
			if st.Names[fmt.Sprintf("w%05d", i)] != uint64(i+1) {
				t.Fatalf("damage at %.3f: %d batches survived but batch %d is missing or changed", frac, len(st.Names), i)
			}
		}
		t.Logf("damage at %.3f: %d of %d batches survived", frac, len(st.Names), n)
	}
}
