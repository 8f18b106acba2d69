package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupThroughTheHolder(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	h := startHolder(t, dir)
	dest := filepath.Join(shortDir(t), "copy")
	var r backupReport
	mustJSON(t, &r, "backup", "--json", "--dir", dir, dest)
	if !r.Live || r.Pid != h.pid {
		t.Fatalf("report %+v: want written live by the holder, pid %d", r, h.pid)
	}
	if r.BusyBlocks != holderPin/4096 || r.PauseNs <= 0 || r.Files != 1 {
		t.Fatalf("report %+v: want %d busy blocks skipped, one file and a measured stall", r, holderPin/4096)
	}
	if out := mustRun(t, nil, "check", "--dir", dest); out != "ok\n" {
		t.Fatalf("check of the copy: %q", out)
	}
	want := append(make([]byte, holderPin), bytes.Repeat([]byte("h"), holderPin)...)
	if got := mustRun(t, nil, "get", "--dir", dest, holderKey); got != string(want) {
		t.Fatalf("the copy's %q differs from the holder's", holderKey)
	}

	// A destination that is not empty: one line, through the holder, and
	// nothing changes.
	res := runCLI(t, nil, "backup", "--dir", dir, dest)
	wantOneErrorLine(t, res, 1, "not empty", dest)
	text := mustRun(t, nil, "backup", "--dir", dir, filepath.Join(shortDir(t), "c2"))
	for _, s := range []string{"live view: written by pid", "longest writer stall", "busy blocks skipped"} {
		if !strings.Contains(text, s) {
			t.Errorf("backup's report does not say %q:\n%s", s, text)
		}
	}
}

func TestBackupOfAStoreNobodyHolds(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	src := filepath.Join(shortDir(t), "v")
	value := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	if err := os.WriteFile(src, value, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "put", "--dir", dir, "k", src)
	dest := filepath.Join(shortDir(t), "copy")
	out := mustRun(t, nil, "backup", "--dir", dir, dest)
	if !strings.Contains(out, "opened read-only") || !strings.Contains(out, "1 files") {
		t.Fatalf("backup said:\n%s", out)
	}
	if got := mustRun(t, nil, "get", "--dir", dest, "k"); got != string(value) {
		t.Fatal("the copy's value differs")
	}
	if out := mustRun(t, nil, "check", "--dir", dest); out != "ok\n" {
		t.Fatalf("check of the copy: %q", out)
	}
	wantOneErrorLine(t, runCLI(t, nil, "backup", "--dir", dir, dest), 1, "not empty")
}
