package stress

// TestMain exists so that Crash can re-execute this test binary as its
// child: with ChildEnv set, the binary runs the child's workload instead
// of the tests.

import (
	"flag"
	"os"
	"testing"
	"time"
)

var (
	testSeed     = flag.Int64("stress.seed", 0, "seed of the stress tests (0: time-based)")
	testDuration = flag.Duration("stress.duration", 2*time.Second, "duration of TestRunFindsNoViolations")
	testRounds   = flag.Int("stress.rounds", 3, "rounds of TestCrashKeepsAcknowledgedOperations")
)

func TestMain(m *testing.M) {
	RunChildIfRequested()
	os.Exit(m.Run())
}

// seed returns the tests' seed and logs it, so a failure can be replayed
// with -stress.seed.
func seed(t *testing.T) int64 {
	t.Helper()
	s := *testSeed
	if s == 0 {
		s = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with -stress.seed=%d)", s, s)
	return s
}

// smallConfig is a run that does its work quickly under -race: a 16 MiB
// region, values of at most 64 KiB, and two pressure workers that fill a
// third of the region less than usual, so they get to draining it soon.
// The wake bound is generous, so that only a lost wakeup, never a busy
// machine, breaks it.
func smallConfig(t *testing.T) Config {
	return Config{
		Seed: seed(t), Size: 16 << 20, ValueMin: 512, ValueMax: 64 << 10,
		PinHoldLong: 300 * time.Millisecond, CheckEvery: 250 * time.Millisecond,
		Pressure: 2, FreeTarget: 6 << 20, WakeBound: 30 * time.Second,
		Dir: t.TempDir(),
	}
}

// logReport logs the report's figures and violations.
func logReport(t *testing.T, r *Report) {
	t.Helper()
	for _, k := range r.Kinds {
		t.Logf("%-8s ops %6d ok %6d nospace %5d pinned %5d raced %5d timeouts %d unexpected %d",
			k.Kind, k.Ops, k.OK, k.NoSpace, k.Pinned, k.Raced, k.WaitTimeouts, k.Unexpected)
	}
	t.Logf("wake latency %+v; checks %d in %v (%s); canaries %d; breaks %d; words %d; window stores %d (%d faulted); final %+v",
		r.WakeLatency, r.Checks, r.CheckTime, r.CheckResult, r.Canaries, r.Breaks, r.WordsChecked, r.WindowStores, r.WindowFaults, r.Final)
	for _, v := range r.FirstViolations {
		t.Logf("violation: %s", v)
	}
}
