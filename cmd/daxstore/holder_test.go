package main

// The CLI through the holder: while another process holds the store, ls,
// stat, get, df, check, busy and pins are answered by it over its admin
// socket and say so; put, rm, truncate, punch and zero go through it only
// when it accepts writes, and otherwise fail with one line that names it
// and says how to allow them.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/internal/poll"
)

// newLiveStore creates a 32 MiB store holding a 5 MiB random value under
// "big", written before any holder starts, and returns its directory and
// the value.
func newLiveStore(t *testing.T) (string, []byte) {
	t.Helper()
	dir := filepath.Join(shortDir(t), "s")
	mustRun(t, nil, "init", "--dir", dir, "--size", "32MiB")
	big := make([]byte, 5<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	mustRun(t, big, "put", "--dir", dir, "big")
	return dir, big
}

func TestTheCLIReadsThroughTheHolder(t *testing.T) {
	t.Parallel()
	dir, big := newLiveStore(t)
	h := startHolder(t, dir)
	live := fmt.Sprintf("pid %d", h.pid)

	t.Run("ls", func(t *testing.T) {
		out := mustRun(t, nil, "ls", "--dir", dir)
		for _, want := range []string{"live view", live, "big", holderKey} {
			if !strings.Contains(out, want) {
				t.Errorf("ls does not show %q:\n%s", want, out)
			}
		}
		var files []dax.FileInfo
		mustJSON(t, &files, "ls", "--json", "--dir", dir, "b")
		if len(files) != 1 || files[0].Key != "big" || files[0].Size != int64(len(big)) {
			t.Errorf("ls --json b: %+v, want big of %d bytes", files, len(big))
		}
	})
	t.Run("stat", func(t *testing.T) {
		out := mustRun(t, nil, "stat", "--dir", dir, "big")
		for _, want := range []string{"live view", live, fmt.Sprintf("%d bytes", len(big))} {
			if !strings.Contains(out, want) {
				t.Errorf("stat big does not show %q:\n%s", want, out)
			}
		}
		if out := mustRun(t, nil, "stat", "--dir", dir); !strings.Contains(out, "live view") {
			t.Errorf("stat does not say it is a live view:\n%s", out)
		}
		wantOneErrorLine(t, runCLI(t, nil, "stat", "--dir", dir, "nothing"), 1, "not found", "nothing")
	})
	t.Run("get streams the value", func(t *testing.T) {
		r := runCLI(t, nil, "get", "--dir", dir, "big")
		if r.code != 0 || !bytes.Equal([]byte(r.stdout), big) {
			t.Fatalf("get big: exit %d, %d bytes (want the %d put), stderr %q", r.code, len(r.stdout), len(big), r.stderr)
		}
		if !strings.Contains(r.stderr, "live view") || !strings.Contains(r.stderr, live) {
			t.Errorf("get does not say it came from the holder: stderr %q", r.stderr)
		}
		wantOneErrorLine(t, runCLI(t, nil, "get", "--dir", dir, "nothing"), 1, "not found", "nothing")
	})
	t.Run("df", func(t *testing.T) {
		var r dfReport
		mustJSON(t, &r, "df", "--json", "--dir", dir)
		if !r.Live || r.Pid != h.pid {
			t.Errorf("df: live=%v pid=%d, want live from pid %d", r.Live, r.Pid, h.pid)
		}
	})
	t.Run("check runs in the holder and reports the pause", func(t *testing.T) {
		out := mustRun(t, nil, "check", "--dir", dir)
		if !strings.HasPrefix(out, "ok\n") || !strings.Contains(out, live) || !strings.Contains(out, "paused the store for") {
			t.Errorf("check:\n%s", out)
		}
		var r checkReport
		mustJSON(t, &r, "check", "--json", "--dir", dir)
		if !r.OK || r.Pid != h.pid || r.Pause <= 0 {
			t.Errorf("check --json: %+v, want ok from pid %d with a pause", r, h.pid)
		}
	})
	t.Run("busy and pins", func(t *testing.T) {
		for _, c := range []string{"busy", "pins"} {
			if out := mustRun(t, nil, c, "--dir", dir); !strings.Contains(out, "live view") || !strings.Contains(out, live) {
				t.Errorf("%s does not say it is a live view:\n%s", c, out)
			}
		}
	})
	t.Run("writes are refused without the holder's consent", func(t *testing.T) {
		for _, args := range [][]string{
			{"put", "big"}, {"rm", "big"}, {"truncate", "big", "0"},
			{"punch", "big", "0", "4096"}, {"zero", "big", "0", "4096"},
		} {
			r := runCLI(t, []byte("new"), append([]string{args[0], "--dir", dir}, args[1:]...)...)
			wantOneErrorLine(t, r, 1, "locked by "+live, "--admin-writes")
		}
		if r := runCLI(t, nil, "get", "--dir", dir, "big"); !bytes.Equal([]byte(r.stdout), big) {
			t.Errorf("a refused write changed big (%d bytes now)", len(r.stdout))
		}
	})
}

func TestTheCLIWritesThroughAHolderThatAllowsIt(t *testing.T) {
	t.Parallel()
	dir, big := newLiveStore(t)
	startHolderWith(t, dir, true)

	get := func(key string) []byte {
		t.Helper()
		r := runCLI(t, nil, "get", "--dir", dir, key)
		if r.code != 0 {
			t.Fatalf("get %s: exit %d, stderr %q", key, r.code, r.stderr)
		}
		return []byte(r.stdout)
	}
	// A value from a regular file (size known) and one from a pipe.
	src := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(src, big[:3<<20], 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "put", "--dir", dir, "k", src)
	if got := get("k"); !bytes.Equal(got, big[:3<<20]) {
		t.Fatalf("get k after put from a file: %d bytes, want %d", len(got), 3<<20)
	}
	mustRun(t, big[:1<<20+5], "put", "--dir", dir, "k")
	want := bytes.Clone(big[:1<<20+5])
	if got := get("k"); !bytes.Equal(got, want) {
		t.Fatalf("get k after put from a pipe: %d bytes, want %d", len(got), len(want))
	}
	mustRun(t, nil, "punch", "--dir", dir, "k", "4096", "8192")
	mustRun(t, nil, "zero", "--dir", dir, "k", "65536", "100")
	mustRun(t, nil, "truncate", "--dir", dir, "k", "100000")
	clear(want[4096 : 4096+8192])
	clear(want[65536 : 65536+100])
	want = want[:100000]
	if got := get("k"); !bytes.Equal(got, want) {
		t.Fatalf("get k after punch, zero and truncate: %d bytes, not what they should have left", len(got))
	}
	mustRun(t, nil, "rm", "--dir", dir, "k")
	wantOneErrorLine(t, runCLI(t, nil, "stat", "--dir", dir, "k"), 1, "not found")
	wantOneErrorLine(t, runCLI(t, nil, "rm", "--dir", dir, "k"), 1, "not found")
	if out := mustRun(t, nil, "check", "--dir", dir); !strings.HasPrefix(out, "ok\n") {
		t.Errorf("check after the writes:\n%s", out)
	}
}

// TestStressWithAdminWritesLetsTheCLIWriteMeanwhile: `daxstore stress
// --admin-writes` holds its store and lets put, get and rm of this user
// through its admin socket while its workers run, and still ends clean.
func TestStressWithAdminWritesLetsTheCLIWriteMeanwhile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(shortDir(t), "s")
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, daxstoreBin, "stress", "--dir", dir, "--duration", "10m", "--admin-writes",
		"--size", "32MiB", "--seed", "1")
	cmd.Env = cliEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	poll.Until(t, "stress serves its admin socket", func() bool {
		c, err := dax.Dial(ctx, dir)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	value := bytes.Repeat([]byte("operator"), 40000)
	mustRun(t, value, "put", "--dir", dir, "operator/v")
	if r := runCLI(t, nil, "get", "--dir", dir, "operator/v"); r.code != 0 || !bytes.Equal([]byte(r.stdout), value) {
		t.Fatalf("get of the value put through stress: exit %d, %d bytes (want %d), stderr %q",
			r.code, len(r.stdout), len(value), r.stderr)
	}
	mustRun(t, nil, "rm", "--dir", dir, "operator/v")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Interrupted, stress reports what it found and exits 1 for stopping
	// early; what matters is that the foreign key broke none of its checks.
	err := <-exited
	if !strings.Contains(out.String(), "violations: none") {
		t.Fatalf("stress: %v\n%s", err, out.String())
	}
}
