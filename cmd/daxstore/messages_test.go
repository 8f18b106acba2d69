package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A region file that is gone while the journal remains (as when a reboot
// empties /dev/shm) is reported as missing, with where it was, and without
// advice to run init, which refuses such a directory.
func TestMissingRegionMessage(t *testing.T) {
	for _, linked := range []bool{false, true} {
		name := map[bool]string{false: "DIR/region", true: "--region elsewhere"}[linked]
		t.Run(name, func(t *testing.T) {
			base := shortDir(t)
			dir := filepath.Join(base, "s")
			region := filepath.Join(dir, "region")
			args := []string{"init", "--dir", dir, "--size", "1MiB"}
			if linked {
				region = filepath.Join(base, "r")
				args = append(args, "--region", region)
			}
			mustRun(t, nil, args...)
			mustRun(t, []byte("v"), "put", "--dir", dir, "k")
			if err := os.Remove(region); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range [][]string{{"ls"}, {"get", "k"}, {"check"}, {"put", "k2"}, {"rm", "k"}} {
				r := runCLI(t, []byte("x"), append(cmd, "--dir", dir)...)
				wantOneErrorLine(t, r, 1, "the region is missing: "+region, "does not exist", "remove "+dir+" to start over")
				if linked && !strings.Contains(r.stderr, "linked from "+filepath.Join(dir, "region")) {
					t.Errorf("%s: %q does not say DIR/region links to the missing file", cmd[0], r.stderr)
				}
				if strings.Contains(r.stderr, "init") {
					t.Errorf("%s: %q suggests init, which refuses this directory", cmd[0], r.stderr)
				}
			}
			r := runCLI(t, nil, "init", "--dir", dir)
			if r.code == 0 {
				t.Fatalf("init over a store whose region is missing succeeded")
			}
		})
	}
}

// A journal that is gone while the region remains: no store, and no advice
// to run init, which refuses while the region exists.
func TestMissingJournalMessage(t *testing.T) {
	dir := newStore(t)
	if err := os.RemoveAll(filepath.Join(dir, "journal")); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"ls", "df", "put"} {
		r := runCLI(t, []byte("x"), cmd, "--dir", dir, "k")
		if cmd != "put" {
			r = runCLI(t, nil, cmd, "--dir", dir)
		}
		wantOneErrorLine(t, r, 1, "no store in "+dir, "journal is missing", "region "+filepath.Join(dir, "region")+" remains")
		if strings.Contains(r.stderr, "init") {
			t.Errorf("%s: %q suggests init, which refuses this directory", cmd, r.stderr)
		}
	}
	if r := runCLI(t, nil, "init", "--dir", dir); r.code == 0 {
		t.Fatal("init beside a leftover region succeeded; the message above would be wrong")
	}
}

// init says when it rounds --size down to whole blocks, and to what.
func TestInitSaysItRounded(t *testing.T) {
	dir := filepath.Join(shortDir(t), "s")
	out := mustRun(t, nil, "init", "--dir", dir, "--size", "10000")
	if want := "rounded --size 10000 down to 8192 bytes (8.0 KiB), a whole number of 4096-byte blocks\n"; !strings.HasPrefix(out, want) {
		t.Errorf("init --size 10000 said %q, want it to start with %q", out, want)
	}
	dir2 := filepath.Join(shortDir(t), "s")
	if out := mustRun(t, nil, "init", "--dir", dir2, "--size", "8KiB"); strings.Contains(out, "rounded") {
		t.Errorf("init --size 8KiB says it rounded: %q", out)
	}
}
