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
	crashRounds(t, c, *testRounds)
}

// TestCrashWaitsForASlowChild runs crash rounds whose children stall
// before they open the store and again before their first operation, as
// on a machine too busy to run them soon. A kill timer that started at
// the child's exec, or at its "ready", would kill them before they
// acknowledged anything; the even rounds' timers start at the first
// acknowledgement, so they still verify acknowledged operations.
func TestCrashWaitsForASlowChild(t *testing.T) {
	c := smallConfig(t)
	c.KillAfterMax = 100 * time.Millisecond
	c.childStall = 500 * time.Millisecond
	crashRounds(t, c, 2)
}

// crashRounds runs rounds of Crash with c and demands: no violation, every
// round reported, Check passing after every kill, acknowledged operations
// in every round armed at the first acknowledgement, and at least one key
// whose exact state was verified. How much a child got done in a round
// armed at "ready" depends on the machine, so nothing is asked of it.
func crashRounds(t *testing.T, c Config, n int) {
	t.Helper()
	var rounds []Round
	r, err := Crash(context.Background(), c, n, func(rd Round) {
		t.Logf("round %d: killed %v after %s, %d begun, %d acked, %d keys exact, %d checked, check ok %v, %d violations",
			rd.Round, rd.KilledAfter.Round(time.Millisecond), rd.ArmedAt, rd.Begun, rd.Acked, rd.KeysExact, rd.KeysChecked, rd.CheckOK, rd.Violations)
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
	if len(rounds) != n || len(r.Rounds) != n {
		t.Fatalf("%d rounds reported, %d in the report, want %d", len(rounds), len(r.Rounds), n)
	}
	armedAtAck := 0
	for _, rd := range r.Rounds {
		if !rd.CheckOK {
			t.Errorf("round %d: check failed after the kill", rd.Round)
		}
		if rd.ArmedAt != "first ack" {
			continue
		}
		armedAtAck++
		if rd.Acked == 0 || rd.KeysExact == 0 {
			t.Errorf("round %d: armed at the first acknowledgement, yet %d operations acknowledged and %d keys known exactly: want some of each",
				rd.Round, rd.Acked, rd.KeysExact)
		}
	}
	if n > 1 && armedAtAck == 0 {
		t.Errorf("no round of %d armed its kill timer at the first acknowledgement", n)
	}
}

func TestCrashRefusesNoSync(t *testing.T) {
	c := smallConfig(t)
	c.NoSync = true
	if _, err := Crash(context.Background(), c, 1, nil); err == nil {
		t.Fatal("Crash accepted NoSync, which may lose acknowledged operations by design")
	}
}

func TestLearnKnowsOnlyWhatNothingOverlapped(t *testing.T) {
	const key = "stress/k00"
	put := func(begin, end int, status string) *loggedOp {
		return &loggedOp{kind: "put", key: key, gen: uint32(begin + 1), n: 16, begin: begin, end: end, status: status}
	}
	op := func(kind string, begin, end int, status string) *loggedOp {
		return &loggedOp{kind: kind, key: key, begin: begin, end: end, status: status}
	}
	for _, tc := range []struct {
		name  string
		ops   []*loggedOp
		known bool
		want  expectedValue
	}{
		{"an acknowledged put alone is known", []*loggedOp{put(0, 1, "ack")},
			true, expectedValue{present: true, w: word{1, 1}, n: 16}},
		{"an acknowledged remove last is known", []*loggedOp{put(0, 1, "ack"), op("remove", 2, 3, "ack")},
			true, expectedValue{}},
		{"a put after a write that ended first is known", []*loggedOp{op("write", 0, 1, "ack"), put(2, 3, "ack")},
			true, expectedValue{present: true, w: word{1, 3}, n: 16}},
		{"a put overlapping a write that ended after it began is unknown",
			[]*loggedOp{op("write", 0, 3, "ack"), put(1, 2, "ack")}, false, expectedValue{}},
		{"a put followed by a write that never ended is unknown",
			[]*loggedOp{put(0, 1, "ack"), op("write", 2, -1, "")}, false, expectedValue{}},
		{"a later operation that changed nothing does not count",
			[]*loggedOp{put(0, 1, "ack"), op("punch", 2, 3, "nack")}, true, expectedValue{present: true, w: word{1, 1}, n: 16}},
		{"a put that was never acknowledged is unknown", []*loggedOp{put(0, -1, "")}, false, expectedValue{}},
		{"a failed put is unknown", []*loggedOp{put(0, 1, "fail")}, false, expectedValue{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := &crashRun{c: Config{}.EnsureDefaults(), known: map[string]expectedValue{
				key:          {present: true, w: word{1, 99}, n: 8}, // from an earlier round
				"stress/k01": {},                                    // untouched this round
			}}
			cr.learn(tc.ops)
			got, known := cr.known[key]
			if known != tc.known || got != tc.want {
				t.Fatalf("known %v %+v, want %v %+v", known, got, tc.known, tc.want)
			}
			if _, ok := cr.known["stress/k01"]; !ok {
				t.Fatal("a key the round did not touch was forgotten")
			}
		})
	}
}
