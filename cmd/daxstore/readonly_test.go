package main

// Tests that the commands which only look never create or change anything,
// work on a store the user may only read, and that an interrupt stops a
// command even when it is stuck where no context reaches.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/daxstore/daxstore/internal/tmpfs"

	"github.com/daxstore/daxstore/internal/dirsnap"
)

// lookCommands run every read-only command once; KEY is a key of the store.
var lookCommands = [][]string{
	{"ls"}, {"ls", "--json"}, {"get", "KEY"}, {"stat"}, {"stat", "KEY"}, {"stat", "--json"},
	{"df"}, {"df", "--json"}, {"check"}, {"busy"}, {"busy", "--json"}, {"pins"},
}

func withKey(args []string, key string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "KEY" {
			a = key
		}
		out[i] = a
	}
	return out
}

func tree(t *testing.T, dir string) dirsnap.Tree {
	t.Helper()
	tr, err := dirsnap.Take(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestReadOnlyCommandsChangeNothing(t *testing.T) {
	t.Parallel()
	dir := storeWithKeys(t)
	// A holder that dies leaves a busy extent in the journal, which every
	// read-write open would free.
	h := startHolder(t, dir)
	if err := h.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	for _, args := range lookCommands {
		args = withKey(args, "b")
		t.Run(strings.Join(args, " ")+" leaves every file as it was", func(t *testing.T) {
			before := tree(t, dir)
			mustRun(t, nil, append(args, "--dir", dir)...)
			if d := dirsnap.Diff(before, tree(t, dir)); d != "" {
				t.Fatalf("daxstore %s changed the store:\n%s", strings.Join(args, " "), d)
			}
		})
	}
	var snap struct{ Busy []struct{ Stale bool } }
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if len(snap.Busy) != 1 || !snap.Busy[0].Stale {
		t.Fatalf("after the read-only commands, busy shows %+v, want the one stale extent", snap.Busy)
	}
}

func TestCommandsDoNotCreateAStoreInAnEmptyJournal(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(shortDir(t), "s")
	if err := os.MkdirAll(filepath.Join(dir, "journal"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmds := append([][]string{{"put", "k", "-"}, {"rm", "k"}, {"truncate", "k", "0"}}, lookCommands...)
	for _, args := range cmds {
		args = withKey(args, "k")
		t.Run(strings.Join(args, " ")+" says there is no store and creates nothing", func(t *testing.T) {
			before := tree(t, filepath.Dir(dir))
			r := runCLI(t, []byte("v"), append(args, "--dir", dir)...)
			wantOneErrorLine(t, r, 1, "no store in "+dir)
			if d := dirsnap.Diff(before, tree(t, filepath.Dir(dir))); d != "" {
				t.Fatalf("daxstore %s changed the directory:\n%s", strings.Join(args, " "), d)
			}
		})
	}
}

// nobody is the unprivileged user the permission tests run commands as.
const nobody = 65534

// runAsNobody runs daxstore as uid and gid 65534 and returns how it ended.
func runAsNobody(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return runCLIAs(t, &syscall.Credential{Uid: nobody, Gid: nobody}, stdin, args...)
}

// nobodyCanReach makes the binary and dir's parents reachable by nobody,
// or skips the test when this process cannot run commands as nobody.
func nobodyCanReach(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a command as another user needs root")
	}
	for _, p := range []string{filepath.Dir(daxstoreBin), filepath.Dir(dir)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// chownTree gives every file under dir to nobody.
func chownTree(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readOnlyStore returns a store owned by nobody whose directories nobody
// may not write (chmod 500), with "b" holding 5000 bytes of 2.
func readOnlyStore(t *testing.T) string {
	t.Helper()
	dir := newStore(t)
	mustRun(t, bytes.Repeat([]byte{2}, 5000), "put", "--dir", dir, "b")
	nobodyCanReach(t, dir)
	chownTree(t, dir)
	for _, d := range []string{dir, filepath.Join(dir, "journal")} {
		if err := os.Chmod(d, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, filepath.Join(dir, "journal")} {
			_ = os.Chmod(d, 0o755)
		}
	})
	return dir
}

func TestReadOnlyCommandsWorkOnAStoreTheUserMayOnlyRead(t *testing.T) {
	t.Parallel()
	dir := readOnlyStore(t)
	for _, args := range lookCommands {
		args = withKey(args, "b")
		t.Run(strings.Join(args, " ")+" works and changes nothing", func(t *testing.T) {
			before := tree(t, dir)
			r := runAsNobody(t, nil, append(args, "--dir", dir)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr (%d bytes) begins %q", r.code, len(r.stderr), r.stderr[:min(len(r.stderr), 300)])
			}
			if args[0] == "get" && r.stdout != string(bytes.Repeat([]byte{2}, 5000)) {
				t.Fatalf("get printed %d bytes, want the 5000 put", len(r.stdout))
			}
			if d := dirsnap.Diff(before, tree(t, dir)); d != "" {
				t.Fatalf("changed the store:\n%s", d)
			}
		})
	}
}

func TestReadOnlyCommandsOnAStoreTheUserMayNotReadFailWithOneLine(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	mustRun(t, []byte("v"), "put", "--dir", dir, "b")
	nobodyCanReach(t, dir)
	// Root's store: the region is root's alone (mode 0600).
	for _, args := range lookCommands {
		args = withKey(args, "b")
		if args[0] == "busy" || args[0] == "pins" {
			continue // they read only the journal, which anyone may read
		}
		t.Run(strings.Join(args, " ")+" fails at once", func(t *testing.T) {
			before := tree(t, dir)
			wantOneErrorLine(t, runAsNobody(t, nil, append(args, "--dir", dir)...), 1, "permission denied")
			if d := dirsnap.Diff(before, tree(t, dir)); d != "" {
				t.Fatalf("changed the store:\n%s", d)
			}
		})
	}
}

// TestWritingCommandOnAStoreItMayNotWriteEndsWithOneLine runs put on a
// store whose directories its user may not write. Pebble used to retry its
// failed background writes forever while Open waited for them, printing
// thousands of lines a second and ignoring the first SIGINT; the journal
// now fails at the first fault, so put ends on its own with one line.
// (TestWatchRedrawsUntilInterrupted covers SIGINT.)
func TestWritingCommandOnAStoreItMayNotWriteEndsWithOneLine(t *testing.T) {
	t.Parallel()
	dir := readOnlyStore(t)
	r := runAsNobody(t, []byte("value"), "put", "--dir", dir, "k", "-")
	wantOneErrorLine(t, r, 1, "permission denied")
}

func TestReadOnlyCommandsWorkWithTheJournalOnAFullFilesystem(t *testing.T) {
	t.Parallel()
	fsDir := filepath.Join(shortDir(t), "fs")
	tmpfs.Mount(t, fsDir, "4m")
	// The store directory, and so the journal, on the small filesystem;
	// the region elsewhere.
	dir := filepath.Join(fsDir, "s")
	mustRun(t, nil, "init", "--dir", dir, "--size", "8MiB", "--region", filepath.Join(shortDir(t), "region"))
	mustRun(t, bytes.Repeat([]byte{2}, 5000), "put", "--dir", dir, "b")
	tmpfs.Fill(t, fsDir)
	for _, args := range lookCommands {
		args = withKey(args, "b")
		t.Run(strings.Join(args, " ")+" works and changes nothing", func(t *testing.T) {
			before := tree(t, dir)
			r := runCLI(t, nil, append(args, "--dir", dir)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr (%d bytes) begins %q", r.code, len(r.stderr), r.stderr[:min(len(r.stderr), 300)])
			}
			if d := dirsnap.Diff(before, tree(t, dir)); d != "" {
				t.Fatalf("changed the store:\n%s", d)
			}
		})
	}
}
