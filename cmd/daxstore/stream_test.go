package main

// Tests of get and put on values larger than memory should hold: get of a
// sparse key streams in bounded memory, put checks for space before it
// reads input of a known size.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runWith runs daxstore with the given stdin and stdout and returns its exit
// status, stderr and peak resident memory in bytes.
func runWith(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (code int, stderr string, maxRSS int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, daxstoreBin, args...)
	cmd.Env = cliEnv()
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("daxstore %s: %v", strings.Join(args, " "), err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage for the child")
	}
	return code, errBuf.String(), ru.Maxrss << 10 // Linux reports KiB
}

func TestGetStreamsASparseKeyInBoundedMemory(t *testing.T) {
	t.Parallel()
	const size = 1 << 30
	// Far below the 1 GiB the value holds, far above what streaming needs
	// (a race-enabled binary included).
	const rssLimit = 256 << 20
	dir := newStore(t)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	head := make([]byte, 3*4096+100)
	for i := range head {
		head[i] = byte(rng.UintN(256))
	}
	mustRun(t, head, "put", "--dir", dir, "k")
	mustRun(t, nil, "punch", "--dir", dir, "k", "4096", "4096")
	mustRun(t, nil, "truncate", "--dir", dir, "k", "1GiB")
	clear(head[4096:8192])

	// The expected value: head, then zeros up to 1 GiB.
	want := sha256.New()
	want.Write(head)
	zero := make([]byte, 1<<20)
	for left := int64(size - len(head)); left > 0; left -= int64(len(zero)) {
		want.Write(zero[:min(left, int64(len(zero)))])
	}
	wantSum := want.Sum(nil)

	t.Run("to a pipe, holes are written as zeros", func(t *testing.T) {
		got := sha256.New()
		n := &countWriter{w: got}
		code, stderr, rss := runWith(t, nil, n, "get", "--dir", dir, "k")
		if code != 0 || stderr != "" {
			t.Fatalf("get: exit %d, stderr %q", code, stderr)
		}
		if n.n != size || !bytes.Equal(got.Sum(nil), wantSum) {
			t.Fatalf("get wrote %d bytes with another hash than the %d expected (seed %d)", n.n, int64(size), seed)
		}
		if rss > rssLimit {
			t.Fatalf("get of a sparse 1 GiB key peaked at %d MiB resident, want under %d MiB", rss>>20, rssLimit>>20)
		}
	})
	t.Run("to a regular file, holes stay holes", func(t *testing.T) {
		out, err := os.Create(filepath.Join(shortDir(t), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		code, stderr, rss := runWith(t, nil, out, "get", "--dir", dir, "k")
		if code != 0 || stderr != "" {
			t.Fatalf("get: exit %d, stderr %q", code, stderr)
		}
		if rss > rssLimit {
			t.Fatalf("get of a sparse 1 GiB key peaked at %d MiB resident, want under %d MiB", rss>>20, rssLimit>>20)
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(out.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != size {
			t.Fatalf("the output file is %d bytes, want %d", st.Size, int64(size))
		}
		if st.Blocks*512 > 1<<20 {
			t.Errorf("the output file takes %d bytes on disk: its holes were written out", st.Blocks*512)
		}
		got := sha256.New()
		if _, err := io.Copy(got, io.NewSectionReader(out, 0, size)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Sum(nil), wantSum) {
			t.Fatalf("the output file holds other bytes than the key (seed %d)", seed)
		}
	})
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestPutOfMoreThanTheRegionHoldsFailsEarlyAndKeepsTheOldValue(t *testing.T) {
	t.Parallel()
	dir := newStore(t) // 8 MiB
	old := []byte("the old value\n")
	mustRun(t, old, "put", "--dir", dir, "k")
	const big = 16 << 20
	bigFile := filepath.Join(shortDir(t), "big")
	if err := os.WriteFile(bigFile, make([]byte, big), 0o644); err != nil {
		t.Fatal(err)
	}
	after := func(t *testing.T, code int, stderr string) {
		t.Helper()
		if code != 1 || !strings.Contains(stderr, "no space") {
			t.Fatalf("put of 16 MiB into 8 MiB: exit %d, stderr %q; want exit 1 and no space", code, stderr)
		}
		if got := mustRun(t, nil, "get", "--dir", dir, "k"); got != string(old) {
			t.Fatalf("after the failed put, get returned %q, want the old value", got)
		}
		if out := mustRun(t, nil, "check", "--dir", dir); out != "ok\n" {
			t.Fatalf("check printed %q", out)
		}
	}
	t.Run("stdin a regular file: nothing is read", func(t *testing.T) {
		f, err := os.Open(bigFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		code, stderr, _ := runWith(t, f, io.Discard, "put", "--dir", dir, "k")
		// The child shares f's file offset: it moved only if it read.
		if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
			t.Fatalf("put read %d bytes of its input before failing (%v), want 0", pos, err)
		}
		after(t, code, stderr)
	})
	t.Run("FILE: nothing is read", func(t *testing.T) {
		code, stderr, _ := runWith(t, nil, io.Discard, "put", "--dir", dir, "k", bigFile)
		after(t, code, stderr)
	})
	t.Run("a pipe with --size: nothing is read", func(t *testing.T) {
		r := &countReader{r: bytes.NewReader(make([]byte, big))}
		code, stderr, _ := runWith(t, r, io.Discard, "put", "--dir", dir, "--size", "16MiB", "k")
		// What the pipe buffers is read from r whether or not put reads.
		if r.n > 1<<20 {
			t.Fatalf("%d bytes of input were consumed, want at most what the pipe buffers", r.n)
		}
		after(t, code, stderr)
	})
	t.Run("a pipe of unknown size fails once the region is full", func(t *testing.T) {
		code, stderr, _ := runWith(t, bytes.NewReader(make([]byte, big)), io.Discard, "put", "--dir", dir, "k")
		after(t, code, stderr)
	})
	t.Run("input longer than --size is refused", func(t *testing.T) {
		code, stderr, _ := runWith(t, strings.NewReader("0123456789"), io.Discard, "put", "--dir", dir, "--size", "4", "k")
		if code != 1 || !strings.Contains(stderr, "more bytes than its declared size") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		if got := mustRun(t, nil, "get", "--dir", dir, "k"); got != string(old) {
			t.Fatalf("get returned %q, want the old value", got)
		}
	})
}
