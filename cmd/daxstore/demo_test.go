package main

// The demo is the project's story and a smoke test: it must run to the end.

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/dax"
)

func TestDemoRunsTheWholeStoryAndCleansUp(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "demo")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("demo: exit %d, stderr %q\n%s", r.code, r.stderr, r.stdout)
	}
	for _, want := range []string{"1. Created a store", "dma-buffer", "4. Busy extents", "ErrNoSpace",
		"none contains the canary", "the waiting Put completed", "7. Busy extents now:", "8. check: ok"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	m := regexp.MustCompile(`Created a store in (\S+):`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("demo does not say where its store is:\n%s", r.stdout)
	}
	if _, err := os.Stat(m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the demo's temporary store %s is still there: %v", m[1], err)
	}
}

func TestDemoInADirKeepsAConsistentStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(shortDir(t), "demo")
	out := mustRun(t, nil, "demo", "--dir", dir)
	if !strings.Contains(out, "check: ok") || !strings.Contains(out, "kept in "+dir) {
		t.Fatalf("demo --dir printed:\n%s", out)
	}
	if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
		t.Fatalf("check of the demo's store printed %q", out)
	}
	var snap dax.Snapshot
	mustJSON(t, &snap, "busy", "--json", "--dir", dir)
	if snap.Live || len(snap.Busy) != 0 {
		t.Fatalf("the demo left busy extents: %+v", snap)
	}
	t.Run("a second demo refuses the same directory", func(t *testing.T) {
		wantOneErrorLine(t, runCLI(t, nil, "demo", "--dir", dir), 1, "store already exists")
	})
}
