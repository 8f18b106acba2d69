package main

// Tests that bad input ends in one clear stderr line and a non-zero status,
// and changes nothing in the store.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBadInputFailsWithOneLineAndChangesNothing(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	value := bytes.Repeat([]byte("v"), 10_000)
	mustRun(t, value, "put", "--dir", dir, "k")
	state := func() string {
		return mustRun(t, nil, "ls", "--json", "--dir", dir) + mustRun(t, nil, "df", "--json", "--dir", dir) +
			mustRun(t, nil, "get", "--dir", dir, "k")
	}
	before := state()
	tests := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"a size with an unknown unit", []string{"truncate", "k", "12XB"}, 1, []string{`"12XB"`, "unit"}},
		{"a fraction of a byte", []string{"truncate", "k", "1.1KiB"}, 1, []string{"whole number of bytes"}},
		{"a size beyond int64", []string{"truncate", "k", "9EiB"}, 1, []string{"larger than 8 EiB"}},
		{"a size beyond uint64", []string{"truncate", "k", "99999999999999999999"}, 1, []string{"larger than 8 EiB"}},
		{"a size beyond the file size limit", []string{"truncate", "k", "100TiB"}, 1, []string{"invalid range"}},
		{"a negative offset", []string{"punch", "k", "-1", "10"}, 1, []string{`"-1"`, "negative"}},
		{"a negative offset after --", []string{"punch", "k", "--", "-1", "10"}, 1, []string{"offset", "negative"}},
		{"a negative length", []string{"zero", "k", "0", "--", "-4KiB"}, 1, []string{"length", "negative"}},
		{"a length that is not a number", []string{"zero", "k", "0", "lots"}, 1, []string{`"lots"`}},
		{"a range whose end overflows", []string{"punch", "k", "4EiB", "4EiB"}, 1, []string{"invalid range"}},
		{"get of a missing key", []string{"get", "nope"}, 1, []string{"not found"}},
		{"rm of a missing key", []string{"rm", "nope"}, 1, []string{"not found"}},
		{"truncate of a missing key", []string{"truncate", "nope", "0"}, 1, []string{"not found"}},
		{"an empty key", []string{"put", "", "-"}, 1, []string{"invalid key"}},
		{"an unknown policy", []string{"rm", "k", "--policy", "sometimes"}, 1, []string{"sometimes"}},
		{"a timeout without the wait policy", []string{"rm", "k", "--timeout", "1s"}, 1, []string{"--policy wait"}},
		{"a value file that does not exist", []string{"put", "k", "/nonexistent/value"}, 1, []string{"/nonexistent/value"}},
		{"init of an existing store", []string{"init"}, 1, []string{"store already exists in " + dir}},
		{"too few arguments", []string{"punch", "k", "0"}, 2, []string{"usage: daxstore punch KEY OFFSET LENGTH"}},
		{"too many arguments", []string{"get", "k", "j"}, 2, []string{"usage: daxstore get KEY"}},
		{"an unknown flag", []string{"ls", "--bogus"}, 2, []string{"--bogus"}},
		{"an unknown command", []string{"frobnicate"}, 2, []string{`"frobnicate"`}},
		{"a zero watch interval", []string{"busy", "--watch", "0s"}, 1, []string{"--watch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" fails cleanly", func(t *testing.T) {
			r := runCLI(t, nil, append([]string{"--dir", dir}, tt.args...)...)
			wantOneErrorLine(t, r, tt.code, tt.wants...)
			if r.stdout != "" {
				t.Errorf("stdout is %q, want nothing", r.stdout)
			}
		})
	}
	if after := state(); after != before {
		t.Fatalf("the store changed:\nbefore %s\nafter  %s", before, after)
	}
}

func TestAWrappedStoreErrorNamesDaxstoreOnce(t *testing.T) {
	t.Parallel()
	// The demo wraps the store's own "daxstore: open: ..." error in its
	// step; wantOneErrorLine counts the prefix.
	r := runCLI(t, nil, "demo", "--dir", "/proc/no-such-dir/store")
	wantOneErrorLine(t, r, 1, "demo", "open")
}

func TestCommandsRefuseADirectoryWithoutAStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(shortDir(t), "none")
	for _, args := range [][]string{{"get", "k"}, {"put", "k", "-"}, {"ls"}, {"stat"}, {"df"}, {"check"}, {"busy"}, {"pins"}} {
		t.Run(strings.Join(args, " ")+" says there is no store", func(t *testing.T) {
			wantOneErrorLine(t, runCLI(t, []byte("v"), append(args, "--dir", dir)...), 1, "no store in "+dir)
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the directory was created: %v", err)
			}
		})
	}
}

func TestFailedInitLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"a block size that is not a power of two", []string{"--block-size", "1000"}, []string{"block size", "power of two"}},
		{"a region smaller than two blocks", []string{"--size", "4KiB"}, []string{"at least 2 blocks"}},
		{"a size with an unknown unit", []string{"--size", "12XB"}, []string{"12XB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			parent := shortDir(t)
			dir := filepath.Join(parent, "s")
			wantOneErrorLine(t, runCLI(t, nil, append([]string{"init", "--dir", dir}, tt.args...)...), 1, tt.wants...)
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("init left %v behind", entries)
			}
		})
	}
	t.Run("an existing region file is never overwritten", func(t *testing.T) {
		parent := shortDir(t)
		region := filepath.Join(parent, "region-file")
		if err := os.WriteFile(region, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "s")
		wantOneErrorLine(t, runCLI(t, nil, "init", "--dir", dir, "--size", "1MiB", "--region", region), 1, "already exists")
		if b, err := os.ReadFile(region); err != nil || string(b) != "precious" {
			t.Fatalf("the region file now holds %q (%v)", b, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("init created %s: %v", dir, err)
		}
	})
}

func TestInitWithARegionElsewhereLinksIt(t *testing.T) {
	t.Parallel()
	parent := shortDir(t)
	dir, region := filepath.Join(parent, "s"), filepath.Join(parent, "elsewhere.region")
	out := mustRun(t, nil, "init", "--dir", dir, "--size", "2MiB", "--block-size", "1KiB", "--region", region)
	if want := fmt.Sprintf("region %s, 2.0 MiB in 2047 data blocks of 1.0 KiB", region); !strings.Contains(out, want) {
		t.Fatalf("init printed %q, want it to say %q", out, want)
	}
	if target, err := os.Readlink(filepath.Join(dir, "region")); err != nil || target != region {
		t.Fatalf("DIR/region links to %q (%v), want %q", target, err, region)
	}
	// Later commands find the region through the link, without --region.
	mustRun(t, []byte("linked"), "put", "--dir", dir, "k")
	if got := mustRun(t, nil, "get", "--dir", dir, "k"); got != "linked" {
		t.Fatalf("get returned %q", got)
	}
}
