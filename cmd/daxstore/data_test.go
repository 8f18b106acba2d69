package main

// Tests of the commands that write and read values: put, get, truncate,
// punch, zero and rm, each checked by what get returns afterwards.

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestPutThenGetReturnsTheSameBytes(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	binary := make([]byte, 100_001)
	for i := range binary {
		binary[i] = byte(rng.UintN(256))
	}
	binary[0], binary[50_000] = 0, 0
	file := filepath.Join(shortDir(t), "value")
	fromFile := bytes.Repeat([]byte("from a file\n"), 1000)
	if err := os.WriteFile(file, fromFile, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   string
		stdin []byte
		args  []string
		want  []byte
	}{
		{"binary data with NUL bytes goes in through stdin", "bin", binary, nil, binary},
		{"a dash reads stdin too", "dash", []byte("dash\x00value"), []string{"-"}, []byte("dash\x00value")},
		{"an empty value is stored as an empty key", "empty", nil, nil, []byte{}},
		{"a value is read from FILE", "file", nil, []string{file}, fromFile},
		{"a second put replaces the value", "bin", []byte("short"), nil, []byte("short")},
		{"keys may hold slashes and spaces", "a dir/a key", []byte("spaced"), nil, []byte("spaced")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustRun(t, tt.stdin, append([]string{"put", "--dir", dir, tt.key}, tt.args...)...)
			got := mustRun(t, nil, "get", "--dir", dir, tt.key)
			if !bytes.Equal([]byte(got), tt.want) {
				t.Fatalf("get %q returned %d bytes, want the %d put (seed %d)", tt.key, len(got), len(tt.want), seed)
			}
		})
	}
	if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
		t.Fatalf("check printed %q, want ok", out)
	}
}

func TestRangeCommandsChangeWhatGetReturns(t *testing.T) {
	t.Parallel()
	const size = 3*4096 + 100
	orig := bytes.Repeat([]byte("x"), size)
	zeroed := func(off, n int) []byte {
		b := bytes.Clone(orig)
		clear(b[off : off+n])
		return b
	}
	tests := []struct {
		name string
		args []string
		want []byte
	}{
		{"truncate shrinks the value to SIZE", []string{"truncate", "k", "5000"}, orig[:5000]},
		{"truncate accepts a unit", []string{"truncate", "k", "4KiB"}, orig[:4096]},
		{"truncate to zero empties the value", []string{"truncate", "k", "0"}, []byte{}},
		{"truncate grows the value with zeros", []string{"truncate", "k", "20000"}, append(bytes.Clone(orig), make([]byte, 20000-size)...)},
		{"punch of a whole block reads zeros there", []string{"punch", "k", "4096", "4096"}, zeroed(4096, 4096)},
		{"punch of a partial range zeroes only that range", []string{"punch", "k", "10", "100"}, zeroed(10, 100)},
		{"punch past the end keeps the size", []string{"punch", "k", "12000", "1MiB"}, zeroed(12000, size-12000)},
		{"zero of a range spanning blocks reads zeros there", []string{"zero", "k", "4000", "5000"}, zeroed(4000, 5000)},
		{"zero with the fail policy succeeds without pins", []string{"zero", "k", "0", "1KiB", "--policy", "fail"}, zeroed(0, 1024)},
		{"punch with the wait policy succeeds without pins", []string{"punch", "k", "0", "8KiB", "--policy", "wait", "--timeout", "5s"}, zeroed(0, 8192)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := newStore(t)
			mustRun(t, orig, "put", "--dir", dir, "k")
			mustRun(t, nil, append(tt.args, "--dir", dir)...)
			got := mustRun(t, nil, "get", "--dir", dir, "k")
			if !bytes.Equal([]byte(got), tt.want) {
				t.Fatalf("get returned %d bytes %q..., want %d bytes %q...", len(got), head(got), len(tt.want), head(string(tt.want)))
			}
			if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
				t.Fatalf("check printed %q, want ok", out)
			}
		})
	}
}

func TestRmRemovesTheKey(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	mustRun(t, []byte("value"), "put", "--dir", dir, "k")
	mustRun(t, nil, "rm", "--dir", dir, "k")
	wantOneErrorLine(t, runCLI(t, nil, "get", "--dir", dir, "k"), 1, "not found")
	var st struct {
		Files      int    `json:"files"`
		FreeBlocks uint64 `json:"free_blocks"`
		DataBlocks uint64 `json:"data_blocks"`
	}
	mustJSON(t, &st, "stat", "--json", "--dir", dir)
	if st.Files != 0 || st.FreeBlocks != st.DataBlocks {
		t.Fatalf("after rm: %d files and %d of %d blocks free, want 0 files and all free", st.Files, st.FreeBlocks, st.DataBlocks)
	}
}

func head(s string) string {
	return s[:min(len(s), 16)]
}
