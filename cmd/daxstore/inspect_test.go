package main

// Tests of the commands that describe a store: ls, stat, df and check, as
// tables and as JSON.

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// storeWithKeys returns a store holding "a/one" (1 MiB), "a/two" (10 bytes)
// and "b" (5000 bytes).
func storeWithKeys(t *testing.T) string {
	t.Helper()
	dir := newStore(t)
	mustRun(t, bytes.Repeat([]byte{1}, 1<<20), "put", "--dir", dir, "a/one")
	mustRun(t, []byte("0123456789"), "put", "--dir", dir, "a/two") // inline: no block
	mustRun(t, bytes.Repeat([]byte{2}, 5000), "put", "--dir", dir, "b")
	return dir
}

func TestLsListsKeysWithSizesAndBlocks(t *testing.T) {
	t.Parallel()
	dir := storeWithKeys(t)
	t.Run("the table has a header and one aligned row per key", func(t *testing.T) {
		out := mustRun(t, nil, "ls", "--dir", dir)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "KEY") ||
			!strings.Contains(lines[0], "SIZE") || !strings.Contains(lines[0], "BLOCKS") || !strings.Contains(lines[0], "MODIFIED") {
			t.Fatalf("ls printed:\n%s", out)
		}
		for i, want := range []string{"a/one  1.0 MiB  256 (1.0 MiB)", "a/two  10 B", "b      4.9 KiB  2 (8.0 KiB)"} {
			if !strings.HasPrefix(lines[i+1], want) {
				t.Errorf("row %d is %q, want it to start with %q", i+1, lines[i+1], want)
			}
		}
	})
	t.Run("json lists every key with size and blocks", func(t *testing.T) {
		var files []dax.FileInfo
		mustJSON(t, &files, "ls", "--json", "--dir", dir)
		want := []struct {
			key    string
			size   int64
			blocks uint64
		}{{"a/one", 1 << 20, 256}, {"a/two", 10, 0}, {"b", 5000, 2}}
		if len(files) != len(want) {
			t.Fatalf("ls --json listed %d files, want %d: %+v", len(files), len(want), files)
		}
		for i, w := range want {
			f := files[i]
			if f.Key != w.key || f.Size != w.size || f.Blocks != w.blocks || time.Since(f.ModTime) > time.Hour {
				t.Errorf("file %d is %+v, want key %q size %d blocks %d, modified just now", i, f, w.key, w.size, w.blocks)
			}
		}
	})
	t.Run("a prefix lists only the keys that start with it", func(t *testing.T) {
		var files []dax.FileInfo
		mustJSON(t, &files, "ls", "--json", "--dir", dir, "a/")
		if len(files) != 2 || files[0].Key != "a/one" || files[1].Key != "a/two" {
			t.Fatalf("ls a/ listed %+v", files)
		}
	})
	t.Run("no match prints an empty json array", func(t *testing.T) {
		if out := mustRun(t, nil, "ls", "--json", "--dir", dir, "zzz"); strings.TrimSpace(out) != "[]" {
			t.Fatalf("ls --json zzz printed %q, want []", out)
		}
	})
}

func TestStatDescribesAKeyOrTheStore(t *testing.T) {
	t.Parallel()
	dir := storeWithKeys(t)
	t.Run("stat KEY shows size and blocks", func(t *testing.T) {
		out := mustRun(t, nil, "stat", "--dir", dir, "b")
		for _, want := range []string{"key       b", "size      5000 bytes (4.9 KiB)", "blocks    2 (8.0 KiB)", "modified"} {
			if !strings.Contains(out, want) {
				t.Errorf("stat b does not show %q:\n%s", want, out)
			}
		}
	})
	t.Run("stat KEY json is the key's FileInfo", func(t *testing.T) {
		var fi dax.FileInfo
		mustJSON(t, &fi, "stat", "--json", "--dir", dir, "a/one")
		if fi.Key != "a/one" || fi.Size != 1<<20 || fi.Blocks != 256 || fi.Ino == 0 {
			t.Fatalf("stat --json a/one = %+v", fi)
		}
	})
	t.Run("stat json without KEY is the store's Stats", func(t *testing.T) {
		var st dax.Stats
		mustJSON(t, &st, "stat", "--json", "--dir", dir)
		// 8 MiB of 4 KiB blocks, one of them the superblock.
		if st.BlockSize != 4096 || st.DataBlocks != 2047 || st.Files != 3 || st.UsedBlocks != 258 ||
			st.FreeBlocks != 2047-258 || st.BusyBlocks != 0 || st.Pins != 0 || st.Region == "" {
			t.Fatalf("stat --json = %+v", st)
		}
	})
	t.Run("stat without KEY shows the store's figures", func(t *testing.T) {
		out := mustRun(t, nil, "stat", "--dir", dir)
		for _, want := range []string{"data blocks      2047 (8.0 MiB)", "used blocks      258 (1.0 MiB)", "files            3", "region",
			"windows          0 taking 0 mappings; 0 remaps since open"} {
			if !strings.Contains(out, want) {
				t.Errorf("stat does not show %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "held by") {
			t.Errorf("stat claims another process holds the store:\n%s", out)
		}
	})
}

func TestDfShowsUsedBusyAndFreeSeparately(t *testing.T) {
	t.Parallel()
	dir := storeWithKeys(t)
	t.Run("json partitions the data blocks", func(t *testing.T) {
		var r dfReport
		mustJSON(t, &r, "df", "--json", "--dir", dir)
		if r.Live || r.BlockSize != 4096 || r.Data.Blocks != 2047 || r.Used.Blocks != 258 || r.Busy.Blocks != 0 ||
			r.Free.Blocks != 2047-258 || r.Used.Bytes != 258*4096 || r.Pins != 0 || r.Pinned.Blocks != 0 {
			t.Fatalf("df --json = %+v", r)
		}
		if r.FlushMethod == "" {
			t.Fatalf("df --json names no flush method: %+v", r)
		}
		if r.Used.Blocks+r.Busy.Blocks+r.Free.Blocks != r.Data.Blocks {
			t.Fatalf("used %d + busy %d + free %d != data %d", r.Used.Blocks, r.Busy.Blocks, r.Free.Blocks, r.Data.Blocks)
		}
		if r.Data.Percent != 100 || r.Used.Percent != 12.6 {
			t.Fatalf("data is %v%% and used %v%%, want 100 and 12.6", r.Data.Percent, r.Used.Percent)
		}
	})
	t.Run("the table has a row for each share", func(t *testing.T) {
		out := mustRun(t, nil, "df", "--dir", dir)
		for _, want := range []string{"BLOCKS", "data    2047    8.0 MiB  100.0%", "used    258     1.0 MiB  12.6%",
			"busy    0       0 B      0.0%", "free    1789    7.0 MiB  87.4%", "pinned  0", "0 pins; 0 windows (0 mappings); block size 4.0 KiB; region file takes", "\nflush: "} {
			if !strings.Contains(out, want) {
				t.Errorf("df does not show %q:\n%s", want, out)
			}
		}
	})
}

func TestCheckReportsOK(t *testing.T) {
	t.Parallel()
	dir := storeWithKeys(t)
	if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
		t.Fatalf("check printed %q, want \"ok\\n\"", out)
	}
	var r checkReport
	mustJSON(t, &r, "check", "--json", "--dir", dir)
	if !r.OK || len(r.Violations) != 0 {
		t.Fatalf("check --json = %+v, want ok", r)
	}
}
