// This file tests read-only journals: they change nothing on disk, refuse
// commits, create nothing where no journal is, and exclude writers in this
// process and in others.

package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/daxstore/daxstore/internal/dirsnap"
)

// journalOnDisk makes a journal in a fresh directory whose last commits sit
// only in the write-ahead log (Close does not flush the memtable), so a
// reader must replay them, and returns it closed with its state.
func journalOnDisk(t *testing.T) (string, *State) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, want := fullBatch(j)
	commit(t, b, true)
	closeJournal(t, j)
	return dir, want
}

func snap(t *testing.T, dir string) dirsnap.Tree {
	t.Helper()
	tree, err := dirsnap.Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestReadOnlyOpenChangesNothing(t *testing.T) {
	dir, want := journalOnDisk(t)
	before := snap(t, dir)
	for round := range 2 {
		j, err := Open(dir, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := load(t, j); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: read-only Load got %+v\nwant %+v", round, got, want)
		}
		b := j.NewBatch()
		b.SetInode(Inode{Ino: 9, Key: "new"})
		if err := b.Commit(true); err == nil {
			t.Fatalf("round %d: a commit on a read-only journal succeeded", round)
		}
		closeJournal(t, j)
		if d := dirsnap.Diff(before, snap(t, dir)); d != "" {
			t.Fatalf("round %d: a read-only open changed the journal:\n%s", round, d)
		}
	}
	// The writer still finds every record.
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeJournal(t, j)
	if got := load(t, j); !reflect.DeepEqual(got, want) {
		t.Fatalf("after read-only opens got %+v\nwant %+v", got, want)
	}
}

func TestReadOnlyOpenWhereNoJournalIs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(dir string) error
	}{
		{"a missing directory", func(string) error { return nil }},
		{"an empty directory", func(dir string) error { return os.Mkdir(dir, 0o755) }},
		{"a directory with an unrelated file", func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "notes"), []byte("x"), 0o644)
		}},
		{"a file", func(dir string) error { return os.WriteFile(dir, []byte("x"), 0o644) }},
	} {
		t.Run(tt.name+" gives ErrNotExist and stays as it was", func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "journal")
			if err := tt.setup(dir); err != nil {
				t.Fatal(err)
			}
			before := snap(t, filepath.Dir(dir))
			j, err := Open(dir, Options{ReadOnly: true})
			if err == nil {
				j.Close()
				t.Fatal("read-only Open succeeded")
			}
			if !errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("read-only Open = %v, want ErrNotExist", err)
			}
			if d := dirsnap.Diff(before, snap(t, filepath.Dir(dir))); d != "" {
				t.Fatalf("a failed read-only open changed the directory:\n%s", d)
			}
		})
	}
}

func TestReadOnlyOpenConflictsInsideTheProcess(t *testing.T) {
	dir, want := journalOnDisk(t)
	r1, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a writer beside two readers: %v, want ErrLocked", err)
	}
	closeJournal(t, r1)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a writer beside one reader: %v, want ErrLocked", err)
	}
	// The readers' locks held through the refused opens.
	if got := load(t, r2); !reflect.DeepEqual(got, want) {
		t.Fatalf("reader got %+v", got)
	}
	closeJournal(t, r2)

	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{ReadOnly: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a reader beside a writer: %v, want ErrLocked", err)
	}
	// The refused reader must not have dropped the writer's POSIX lock:
	// another process still cannot open the journal.
	if got := openInChild(t, dir, false); !errors.Is(got, ErrLocked) {
		t.Fatalf("another process opened the journal beside this one's writer: %v", got)
	}
	closeJournal(t, w)
}

func TestReadOnlyOpenConflictsAcrossProcesses(t *testing.T) {
	dir, _ := journalOnDisk(t)
	for _, tt := range []struct {
		name               string
		here, there        bool // read-only here / in the child
		wantLockedForChild bool
	}{
		{"a reader here keeps out a writer there", true, false, true},
		{"a reader here lets a reader there in", true, true, false},
		{"a writer here keeps out a reader there", false, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Open(dir, Options{ReadOnly: tt.here})
			if err != nil {
				t.Fatal(err)
			}
			defer closeJournal(t, j)
			err = openInChild(t, dir, tt.there)
			if tt.wantLockedForChild != errors.Is(err, ErrLocked) {
				t.Fatalf("the child's open: %v", err)
			}
			if !tt.wantLockedForChild && err != nil {
				t.Fatalf("the child's open: %v", err)
			}
		})
	}
}

// childEnv names the journal a child process of this test binary opens.
const childEnv = "JOURNAL_TEST_CHILD_OPEN"

// openInChild opens dir in a child process (read-only if readOnly) and
// returns its error, with ErrLocked restored when the child saw it.
func openInChild(t *testing.T, dir string, readOnly bool) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildOpen$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s", childEnv, dir), fmt.Sprintf("%s_RO=%t", childEnv, readOnly))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v (said %q)", err, line)
	}
	switch {
	case line == "ok\n":
		return nil
	case line == "locked\n":
		return ErrLocked
	}
	return errors.New(line)
}

// TestChildOpen is the child of openInChild; it does nothing in a normal
// run.
func TestChildOpen(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("only run as the child of openInChild")
	}
	j, err := Open(dir, Options{ReadOnly: os.Getenv(childEnv+"_RO") == "true"})
	switch {
	case errors.Is(err, ErrLocked):
		fmt.Println("locked")
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("ok")
		j.Close()
	}
}
