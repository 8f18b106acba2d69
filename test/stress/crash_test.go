package stress

// Crash torture end to end: real child processes, SIGKILL, reopen, verify.

import (
	"context"
	"testing"
	"time"
)

func TestCrashKeepsAcknowledgedOperations(t *testing.T) {
	c := smallConfig(t)
	c.KillAfterMax = 600 * time.Millisecond
	var rounds []Round
	r, err := Crash(context.Background(), c, *testRounds, func(rd Round) {
		t.Logf("round %d: killed after %v, %d begun, %d acked, %d keys exact, %d checked, check ok %v, %d violations",
			rd.Round, rd.KilledAfter.Round(time.Millisecond), rd.Begun, rd.Acked, rd.KeysExact, rd.KeysChecked, rd.CheckOK, rd.Violations)
		rounds = append(rounds, rd)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.FirstViolations {
		t.Logf("violation: %s", v)
	}
	if !r.OK() {
		t.Fatalf("%d violations in %d rounds", r.Violations, len(r.Rounds))
	}
	if len(rounds) != *testRounds || len(r.Rounds) != *testRounds {
		t.Fatalf("%d rounds reported, %d in the report, want %d", len(rounds), len(r.Rounds), *testRounds)
	}
	for _, rd := range r.Rounds {
		if rd.Acked == 0 || !rd.CheckOK {
			t.Errorf("round %d: %d operations acknowledged, check ok %v: want some, and ok", rd.Round, rd.Acked, rd.CheckOK)
		}
	}
	if r.KeysExact == 0 {
		t.Error("no key's exact state was known after any kill: the verification proved nothing")
	}
}

func TestCrashRefusesNoSync(t *testing.T) {
	c := smallConfig(t)
	c.NoSync = true
	if _, err := Crash(context.Background(), c, 1, nil); err == nil {
		t.Fatal("Crash accepted NoSync, which may lose acknowledged operations by design")
	}
}
