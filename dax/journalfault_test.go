package dax

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/tmpfs"
)

const journalFullEnv = "DAXSTORE_JOURNAL_FULL_CHILD"

// fullKey is the i-th key of the journal-filling workload: long keys fill
// the journal's filesystem within a thousand Puts.
func fullKey(i int) string { return fmt.Sprintf("%05d-%s", i, strings.Repeat("k", 900)) }

// journalFullChild runs in a re-executed test binary: it fills the journal
// of the store in dir, whose journal directory is a 2 MiB tmpfs, and prints
// one "ack N" line per acknowledged Put and "done" when it got through the
// fault alive. Any other outcome prints "fail ...".
func journalFullChild(dir string) {
	s, err := Open(dir, &Options{Size: 64 << 20, NoAdminSocket: true})
	if err != nil {
		fmt.Println("fail open:", err)
		return
	}
	var perr error
	for i := 0; i < 50000; i++ {
		if perr = s.Put(fullKey(i), []byte{byte(i)}); perr != nil {
			break
		}
		fmt.Println("ack", i)
	}
	switch {
	case perr == nil:
		fmt.Println("fail: the journal never filled up")
	case !errors.Is(perr, ErrNoSpace) || !errors.Is(perr, syscall.ENOSPC):
		fmt.Printf("fail: Put on a full journal: %v, want ErrNoSpace and ENOSPC\n", perr)
	case strings.Contains(perr.Error(), "\n"):
		fmt.Printf("fail: the error spans lines: %q\n", perr)
	default:
		if err := s.Put("later", []byte("x")); !errors.Is(err, ErrNoSpace) {
			fmt.Printf("fail: Put after the fault: %v, want the store's ErrNoSpace\n", err)
			return
		}
		if err := s.Close(); err == nil {
			fmt.Println("fail: Close of the failed store returned nil")
			return
		}
		fmt.Println("done")
	}
}

// TestJournalFullFilesystem fills a journal on a real 2 MiB tmpfs: the Put
// that meets the full filesystem returns an error matching ErrNoSpace, the
// process lives on (the workload runs in a child process, which used to
// exit with "pebble: fatal commit error"), later changes are refused with
// the same cause, and once the filesystem grows a reopen finds every
// acknowledged Put.
func TestJournalFullFilesystem(t *testing.T) {
	if dir := os.Getenv(journalFullEnv); dir != "" {
		journalFullChild(dir)
		return
	}
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	tmpfs.Mount(t, jdir, "2m")

	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalFullFilesystem$")
	cmd.Env = append(os.Environ(), journalFullEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	acked, done := -1, false
	var other []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		var n int
		switch {
		case strings.HasPrefix(line, "ack "):
			if _, err := fmt.Sscanf(line, "ack %d", &n); err != nil {
				t.Fatalf("child line %q: %v", line, err)
			}
			acked = n
		case line == "done":
			done = true
		case line == "PASS" || line == "":
		default:
			other = append(other, line)
		}
	}
	if err != nil || !done || len(other) > 0 {
		if len(other) > 20 {
			other = other[:20]
		}
		t.Fatalf("child after %d acknowledged Puts: exit %v, done %v, other output:\n%s", acked+1, err, done, strings.Join(other, "\n"))
	}
	if acked < 0 {
		t.Fatal("the child acknowledged no Put before the journal filled")
	}

	t.Logf("the journal filled after %d acknowledged Puts", acked+1)
	tmpfs.Resize(t, jdir, "16m")
	s, err := Open(dir, &Options{NoAdminSocket: true})
	if err != nil {
		t.Fatalf("reopen after the fault: %v", err)
	}
	defer s.Close()
	mustCheck(t, s)
	for i := 0; i <= acked; i++ {
		v, err := s.Get(fullKey(i))
		if err != nil || len(v) != 1 || v[0] != byte(i) {
			t.Fatalf("acknowledged Put %d of %d: %v %v", i, acked+1, v, err)
		}
	}
	if err := s.Put("after", []byte("x")); err != nil {
		t.Fatalf("Put after the reopen: %v", err)
	}
}
