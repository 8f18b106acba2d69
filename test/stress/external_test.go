package stress

// Crash rounds run as the QEMU power cut of test/fsdax runs them: the
// child is started and killed by someone else, its lines handed over.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestExternalCrashRoundsVerify runs two rounds whose children this test
// starts from CrashChildEnv and kills after a few acknowledgements, and
// checks each with VerifyCrash: no violation, the marker's exact state
// known. Then it forges an acknowledged Put that never happened and wants
// VerifyCrash to call it lost.
func TestExternalCrashRoundsVerify(t *testing.T) {
	c := smallConfig(t)
	if err := PrepareCrash(c); err != nil {
		t.Fatal(err)
	}
	if err := PrepareCrash(c); err == nil {
		t.Fatal("PrepareCrash on a directory that holds a store succeeded")
	}
	var rounds [][]string
	for i := 1; i <= 2; i++ {
		env, err := CrashChildEnv(c, i, rounds)
		if err != nil {
			t.Fatal(err)
		}
		lines := runKilledChild(t, env, 5)
		rounds = append(rounds, lines)
		rep, err := VerifyCrash(c, rounds)
		if err != nil {
			t.Fatal(err)
		}
		rd := rep.Rounds[0]
		t.Logf("round %d: %d lines, %d begun, %d acked, %d keys exact, %d checked, check ok %v",
			rd.Round, len(lines), rd.Begun, rd.Acked, rd.KeysExact, rd.KeysChecked, rd.CheckOK)
		if !rep.OK() || !rd.CheckOK {
			t.Fatalf("round %d: %d violations: %v", i, rep.Violations, rep.FirstViolations)
		}
		if rd.Round != i || rd.Acked < 5 || rd.KeysExact == 0 {
			t.Fatalf("round %d reported as %+v: want round %d, at least 5 acks, the marker exact", i, rd, i)
		}
	}
	if _, err := CrashChildEnv(c, 4, rounds); err == nil {
		t.Fatal("CrashChildEnv of round 4 after 2 rounds succeeded")
	}

	// The marker's last Put, acknowledged, with a generation it never had.
	last := slices.Clone(rounds[1])
	last = append(last, fmt.Sprintf("begin 999999 put %s %d %d", markerName, 1<<31, markerLen), "ack 999999")
	rep, err := VerifyCrash(c, [][]string{rounds[0], last})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ViolationKinds[ViolationLost] == 0 {
		t.Fatalf("a forged acknowledged put went unnoticed: %d violations %v", rep.Violations, rep.FirstViolations)
	}
}

// runKilledChild runs this test binary as a crash child with orders env,
// kills it once it acknowledged acks operations, and returns its lines.
func runKilledChild(t *testing.T, env string, acks int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ChildEnv+"="+env)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := 0
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "ack ") {
			if seen++; seen == acks {
				_ = cmd.Process.Kill()
			}
		}
	}
	_ = cmd.Wait()
	if seen < acks {
		t.Fatalf("the child ended after %d acknowledgements: %s", seen, stderr.String())
	}
	return lines
}
