package fusefs_test

// The concurrency test exists for a full region seen through a mount:
// several processes write and read different files of one mount while the
// region runs out of space, with blocks held busy by a pin. Every writer
// must end (no hang), the ones that ran out must have seen ENOSPC, the mount
// must keep serving, and every file must hold exactly the bytes its writer
// or the setup put there.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMountConcurrentWritersOnAFullRegion(t *testing.T) {
	needFUSE(t)
	needTools(t, "dd", "cmp", "sh", "fallocate")
	const bs = 4096
	m := startMount(t, mountConfig{RegionSize: 16 << 20, AllocWait: 200 * time.Millisecond})
	tmp := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Ballast: three files of 3 MiB that readers compare throughout.
	ballast := make([][]byte, 3)
	for i := range ballast {
		ballast[i] = randBytes(rng, 3<<20)
		sh(t, "cp", write(fmt.Sprintf("bal%d", i), ballast[i]), filepath.Join(m.Mnt, fmt.Sprintf("bal%d", i)))
	}
	// A pin holds the first MiB of bal0, which a punch then detaches: busy
	// blocks that allocations wait for (AllocWait) before they give up.
	pin := m.Must("pin bal0 0 %d", 1<<20)
	sh(t, "fallocate", "-p", "-o", "0", "-l", strconv.Itoa(1<<20), filepath.Join(m.Mnt, "bal0"))
	clear(ballast[0][:1<<20])
	for i := range ballast {
		write(fmt.Sprintf("bal%d", i), ballast[i])
	}
	stats := m.Must("stats")
	var free, busy int64
	if _, err := fmt.Sscanf(stats, "free=%d busy=%d", &free, &busy); err != nil || busy == 0 {
		t.Fatalf("stats %q (%v): want busy blocks after punching a pinned range", stats, err)
	}

	// Four writers whose files together need 4 MiB more than is free.
	const writers = 4
	each := (free*bs + 4<<20) / writers
	each -= each % 1000
	srcs := make([][]byte, writers)
	ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
	defer cancel()
	type proc struct {
		name string
		cmd  *exec.Cmd
		out  bytes.Buffer
	}
	var procs []*proc
	run := func(name string, args ...string) {
		p := &proc{name: name, cmd: exec.CommandContext(ctx, args[0], args[1:]...)}
		p.cmd.Stdout, p.cmd.Stderr, p.cmd.Env = &p.out, &p.out, cLocale()
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	for i := range writers {
		srcs[i] = randBytes(rng, int(each))
		run(fmt.Sprintf("w%d", i), "dd", "if="+write(fmt.Sprintf("w%d", i), srcs[i]),
			"of="+filepath.Join(m.Mnt, fmt.Sprintf("w%d", i)), "bs=64k", "conv=fsync", "status=none")
	}
	for i := range ballast {
		run(fmt.Sprintf("r%d", i), "sh", "-c", fmt.Sprintf("for i in 1 2 3; do cmp %s %s || exit 1; done",
			filepath.Join(tmp, fmt.Sprintf("bal%d", i)), filepath.Join(m.Mnt, fmt.Sprintf("bal%d", i))))
	}
	failed := map[string]string{}
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s did not finish within %v on the full region: a hang; mount log:\n%s", p.name, replyTimeout, m.tail())
			}
			failed[p.name] = p.out.String()
		}
	}
	for i := range ballast {
		if out, ok := failed[fmt.Sprintf("r%d", i)]; ok {
			t.Errorf("reader of bal%d failed while writers filled the region: %s", i, out)
		}
	}
	nospace := 0
	for i := range writers {
		name := fmt.Sprintf("w%d", i)
		got, err := os.ReadFile(filepath.Join(m.Mnt, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, ok := failed[name]
		switch {
		case !ok:
			if !bytes.Equal(got, srcs[i]) {
				t.Errorf("%s succeeded but reads %d bytes, first difference at %d", name, len(got), firstDiff(got, srcs[i]))
			}
		case strings.Contains(out, "No space left on device"):
			nospace++
			if len(got) > len(srcs[i]) || !bytes.Equal(got, srcs[i][:len(got)]) {
				t.Errorf("%s ran out of space; its %d bytes are not a prefix of what it wrote", name, len(got))
			}
		default:
			t.Errorf("%s failed with something else than ENOSPC: %s", name, out)
		}
	}
	if nospace == 0 {
		t.Fatalf("no writer saw ENOSPC though they wrote %d bytes more than was free", 4<<20)
	}
	t.Logf("%d of %d writers ran out of space; %d blocks were free and %d busy", nospace, writers, free, busy)
	// The mount explains a full region in its log: the busy blocks and the
	// pin holding them (its label is in the store's error).
	if l := m.tail(); !strings.Contains(l, "busy") || !strings.Contains(l, "fusetest") {
		t.Errorf("the mount's log does not explain ENOSPC with the busy blocks and the pin's label:\n%s", l)
	}
	// The mount still serves: the ballast reads back, the store checks,
	// and once the pin drops and the writers' files go, a file fits again.
	for i := range ballast {
		sameBytes(t, filepath.Join(m.Mnt, fmt.Sprintf("bal%d", i)), ballast[i])
	}
	m.Must("check")
	m.Must("unpin %s", pin)
	for i := range writers {
		if err := os.Remove(filepath.Join(m.Mnt, fmt.Sprintf("w%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, "cp", filepath.Join(tmp, "w0"), filepath.Join(m.Mnt, "again"))
	sameBytes(t, filepath.Join(m.Mnt, "again"), srcs[0])
	m.Must("check")
	m.Quit()
}
