// Command guesttool is the Go side of the fsdax guest (test/fsdax): it
// runs inside the QEMU guest, next to the test binaries.
//
//	guesttool flush DIR cpu|msync
//	    Opens (creating) a store in DIR and checks how it makes stores
//	    durable, as the store itself reports it (Stats.DAX, FlushMethod)
//	    and as the kernel does (the DAX attribute of the region file):
//	    "cpu" wants MAP_SYNC and a cache line flush (clwb, clflushopt,
//	    clflush), "msync" wants neither.
//	guesttool crash-prepare --dir D --seed N
//	guesttool crash-child --dir D --seed N --logs L --round I --out TTY
//	guesttool crash-verify --dir D --seed N --logs L --rounds I
//	    A power cut, round by round across boots of a guest whose pmem is
//	    an NVDIMM backed by a host file: crash-prepare creates the store;
//	    crash-child runs round I's writer, the crash child of `daxstore
//	    stress --crash`, announcing each operation and its acknowledgement
//	    on TTY (the host keeps what arrives in L/round-I.log and kills the
//	    guest); crash-verify reopens the store after round I's power cut
//	    and checks it against every round's log, as `daxstore stress
//	    --crash` checks after a kill -9.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/test/stress"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: guesttool flush|crash-prepare|crash-child|crash-verify ...")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "flush":
		err = flush(args)
	case "crash-prepare", "crash-child", "crash-verify":
		err = crash(cmd, args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "guesttool: %v\n", err)
		os.Exit(1)
	}
}

// cpuFlush are the flush methods of a region on real fsdax.
var cpuFlush = map[string]bool{"clwb": true, "clflushopt": true, "clflush": true}

func flush(args []string) error {
	if len(args) != 2 || (args[1] != "cpu" && args[1] != "msync") {
		return errors.New("usage: guesttool flush DIR cpu|msync")
	}
	dir, want := args[0], args[1]
	s, err := dax.Open(dir, &dax.Options{Size: 16 << 20, NoAdminSocket: true})
	if err != nil {
		return err
	}
	st, err := s.Stats()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, st.Region, 0, unix.STATX_BASIC_STATS, &stx); err != nil {
		return fmt.Errorf("statx %s: %w", st.Region, err)
	}
	known := stx.Attributes_mask&unix.STATX_ATTR_DAX != 0
	fileDAX := stx.Attributes&unix.STATX_ATTR_DAX != 0
	fmt.Printf("region %s: store says DAX (MAP_SYNC) %v, flush %s; kernel says DAX file %v (attribute known %v)\n",
		st.Region, st.DAX, st.FlushMethod, fileDAX, known)
	switch {
	case want == "cpu" && !(st.DAX && cpuFlush[st.FlushMethod] && fileDAX):
		return fmt.Errorf("want MAP_SYNC, a CPU cache line flush and a DAX file; got DAX %v, flush %q, DAX file %v",
			st.DAX, st.FlushMethod, fileDAX)
	case want == "msync" && (st.DAX || st.FlushMethod != "msync" || fileDAX):
		return fmt.Errorf("want the msync fallback on a file that is not DAX; got DAX %v, flush %q, DAX file %v",
			st.DAX, st.FlushMethod, fileDAX)
	}
	return nil
}

func crash(cmd string, args []string) error {
	fl := flag.NewFlagSet(cmd, flag.ContinueOnError)
	dir := fl.String("dir", "", "store directory (on the DAX mount)")
	seed := fl.Int64("seed", 0, "seed of the run, the same in every round")
	logs := fl.String("logs", "", "directory of the rounds' logs, round-I.log")
	round := fl.Int("round", 0, "crash-child: the round to run")
	rounds := fl.Int("rounds", 0, "crash-verify: the rounds done so far")
	out := fl.String("out", "", "crash-child: where to write the lines (a tty)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *seed == 0 {
		return errors.New("--dir and --seed are needed")
	}
	cfg := stress.Config{Seed: *seed, Dir: *dir}
	switch cmd {
	case "crash-prepare":
		if err := stress.PrepareCrash(cfg); err != nil {
			return err
		}
		fmt.Printf("store created in %s\n", *dir)
		return nil
	case "crash-child":
		earlier, err := readLogs(*logs, *round-1)
		if err != nil {
			return err
		}
		env, err := stress.CrashChildEnv(cfg, *round, earlier)
		if err != nil {
			return err
		}
		if err := os.Setenv(stress.ChildEnv, env); err != nil {
			return err
		}
		w, err := openDrained(*out)
		if err != nil {
			return err
		}
		return stress.RunChild(context.Background(), w)
	default:
		all, err := readLogs(*logs, *rounds)
		if err != nil {
			return err
		}
		rep, err := stress.VerifyCrash(cfg, all)
		if err != nil {
			return err
		}
		rd := rep.Rounds[0]
		check := "check ok"
		if !rd.CheckOK {
			check = "CHECK FAILED"
		}
		fmt.Printf("round %d: %d begun, %d acked, %d keys exact, %d word-checked, %s, %d violations\n",
			rd.Round, rd.Begun, rd.Acked, rd.KeysExact, rd.KeysChecked, check, rep.Violations)
		for _, v := range rep.FirstViolations {
			fmt.Printf("  %s\n", v)
		}
		if rep.Violations > 0 {
			return fmt.Errorf("round %d: %d violations (seed %d)", rd.Round, rep.Violations, *seed)
		}
		return nil
	}
}

// readLogs reads the lines of rounds 1..n. A round's last line may be cut
// short by the power cut: a line counts only once its newline arrived.
func readLogs(dir string, n int) ([][]string, error) {
	var all [][]string
	for i := 1; i <= n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("round-%d.log", i)))
		if err != nil {
			return nil, err
		}
		text := string(b)
		if j := strings.LastIndexByte(text, '\n'); j >= 0 {
			text = text[:j]
		} else {
			text = ""
		}
		var lines []string
		if text != "" {
			lines = strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
		}
		all = append(all, lines)
	}
	return all, nil
}

// drained writes to a terminal and waits until what it wrote has left the
// machine (tcdrain): a line the host did not get must not count as
// announced, so an operation starts only after its "begin" line is out.
type drained struct{ f *os.File }

func openDrained(path string) (*drained, error) {
	if path == "" {
		return nil, errors.New("--out is needed")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	return &drained{f}, nil
}

func (d *drained) Write(p []byte) (int, error) {
	n, err := d.f.Write(p)
	if err != nil {
		return n, err
	}
	// TCSBRK with a non-zero argument is tcdrain. The runtime's own
	// signals (goroutine preemption) interrupt the wait: wait again.
	for {
		err = unix.IoctlSetInt(int(d.f.Fd()), unix.TCSBRK, 1)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return n, fmt.Errorf("tcdrain %s: %w", d.f.Name(), err)
	}
	return n, nil
}
