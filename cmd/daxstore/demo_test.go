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
	t.Run("the punch's table shows the follow window reading zeros beside the pin's old bytes", func(t *testing.T) {
		zeros := `00 00 00 00 00 00 00 00`
		for _, row := range []string{
			`READER\s+BEFORE\s+AFTER`,
			`file \(ReadAt\)\s+"DMA-CANA"\s+` + zeros + `\n`,
			`follow window "reader-window"\s+"DMA-CANA"\s+` + zeros + `\n`,
			`pin "dma-buffer"\s+"DMA-CANA"\s+"DMA-CANA"\n`,
			`pinned window "frame-window"\s+"DMA-CANA"\s+"DMA-CANA"\n`,
			`remapped before PunchHole returned \(generation (\d+) -> (\d+)\)`,
		} {
			if !regexp.MustCompile(row).MatchString(r.stdout) {
				t.Errorf("demo output has no line matching %s:\n%s", row, r.stdout)
			}
		}
		if m := regexp.MustCompile(`generation (\d+) -> (\d+)`).FindStringSubmatch(r.stdout); m != nil && m[1] == m[2] {
			t.Errorf("the follow window's generation did not change in the punch: %s", m[0])
		}
	})
	t.Run("the pins table lists the pin and both windows with their modes", func(t *testing.T) {
		for _, row := range []string{
			`\spin\s+.*dma-buffer\s+yes\s`,
			`\sfollow window\s+.*reader-window\s+no\s+\S+\s+0\s+0\s+\d+\n`,
			`\spinned window\s+.*frame-window\s+no\s+\S+\s+64\s+64\s+\d+\n`,
			`total: 1 pin and 2 windows`,
		} {
			if !regexp.MustCompile(row).MatchString(r.stdout) {
				t.Errorf("demo output has no line matching %s:\n%s", row, r.stdout)
			}
		}
	})
	t.Run("the busy list empties only when the pin drops, after the pinned window closed", func(t *testing.T) {
		for _, want := range []string{"closed the pinned window \"frame-window\": the pin still holds",
			"the Put kept waiting. Then unpinned \"dma-buffer\"", "7. Busy extents now:\n     no busy extents\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
			}
		}
	})
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
