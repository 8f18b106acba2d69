package stress

// The schedule is a function of the seed and the worker: planned without
// running, and run exactly as planned.

import (
	"context"
	"reflect"
	"testing"
)

func TestPlanIsReproducible(t *testing.T) {
	c := Config{Seed: seed(t)}
	const k = 200
	workers := c.Workers()
	if len(workers) == 0 {
		t.Fatal("the default config has no workers")
	}
	seen := map[string]Worker{}
	for _, w := range workers {
		a, b := Plan(c, w, k), Plan(c, w, k)
		if len(a) != k {
			t.Fatalf("%s: planned %d operations, want %d", w, len(a), k)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: two plans of the same seed differ", w)
		}
		if other := Plan(Config{Seed: c.Seed + 1}, w, k); reflect.DeepEqual(a, other) {
			t.Errorf("%s: seeds %d and %d plan the same operations", w, c.Seed, c.Seed+1)
		}
		d := Digest(a)
		if prev, dup := seen[d]; dup {
			t.Errorf("%s plans the same operations as %s", w, prev)
		}
		seen[d] = w
		for i, op := range a {
			if err := planError(c.EnsureDefaults(), w, op); err != "" {
				t.Fatalf("%s op %d (%s): %s", w, i, op, err)
			}
		}
	}
}

// planError says what is wrong with a planned operation, or "".
func planError(c Config, w Worker, op Op) string {
	aligned := op.Off%wordSize == 0 && op.Len%wordSize == 0
	switch {
	case !aligned && op.Kind != OpPin && op.Kind != OpMapPinned:
		return "offset or length not a multiple of 8"
	case op.Key < 0 || (op.Kind != OpPressure && op.Key >= c.Keys) || op.Key >= max(c.Keys, fillerSlots):
		return "key out of range"
	case (op.Kind == OpWrite || op.Kind == OpRead || op.Kind == OpPunch || op.Kind == OpZero) &&
		(op.Off < 0 || op.Len < wordSize || op.Off+op.Len > c.ValueMax):
		return "range outside [0, ValueMax)"
	case op.Kind == OpPut && (op.Len < c.ValueMin || op.Len > c.ValueMax):
		return "put size outside [ValueMin, ValueMax]"
	case op.Kind == OpMap && (op.Off < 0 || op.Len < wordSize || op.Off+op.Len > c.ValueMax+c.ValueMax/4 || op.Hold > c.PinHoldLong):
		return "window outside its bounds"
	case (op.Kind == OpPin || op.Kind == OpMapPinned) && (op.Off < 0 || op.Off >= pinScale || op.Len < wordSize || op.Hold > c.PinHoldLong):
		return "pin outside its bounds"
	case op.Kind == OpTruncate && (op.Off < 0 || op.Off > c.ValueMax):
		return "truncate size outside [0, ValueMax]"
	}
	want := map[WorkerKind][]OpKind{
		KindWriter: {OpWrite}, KindPutter: {OpPut}, KindReader: {OpRead, OpGet}, KindPinner: {OpPin},
		KindTruncater: {OpTruncate}, KindPuncher: {OpPunch}, KindZeroer: {OpZero}, KindRemover: {OpRemove},
		KindPressure: {OpPressure}, KindWindower: {OpMap, OpMapPinned},
	}[w.Kind]
	for _, k := range want {
		if op.Kind == k {
			return ""
		}
	}
	return "operation of another worker kind"
}

// TestRunFollowsThePlan runs a fixed number of operations per worker twice
// with one seed: each worker must run exactly its planned operations.
func TestRunFollowsThePlan(t *testing.T) {
	c := smallConfig(t)
	c.Ops = 40
	c.Dir = ""
	want := map[string]string{}
	for _, w := range c.Workers() {
		want[w.String()] = Digest(Plan(c, w, c.Ops))
	}
	for run := range 2 {
		r, err := Run(context.Background(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			logReport(t, r)
			t.Fatalf("run %d: %d violations", run, r.Violations)
		}
		if len(r.Workers) != len(want) {
			t.Fatalf("run %d: %d workers reported, want %d", run, len(r.Workers), len(want))
		}
		for _, w := range r.Workers {
			if w.Ops != int64(c.Ops) || w.Digest != want[w.Worker] {
				t.Errorf("run %d: %s ran %d operations with digest %s, want %d with %s",
					run, w.Worker, w.Ops, w.Digest, c.Ops, want[w.Worker])
			}
		}
	}
}

// TestWindowersNeedPageBlocks: windows need blocks of at least a page, so
// by default a run over smaller blocks has no windowers, and one over
// page-sized blocks has some.
func TestWindowersNeedPageBlocks(t *testing.T) {
	if got := (Config{BlockSize: 512}).EnsureDefaults().Windowers; got >= 0 {
		t.Errorf("512-byte blocks: %d windowers by default, want none (-1)", got)
	}
	if got := (Config{}).EnsureDefaults().Windowers; got <= 0 {
		t.Errorf("default blocks: %d windowers by default, want some", got)
	}
	if got := (Config{BlockSize: 512, Windowers: 3}).EnsureDefaults().Windowers; got != 3 {
		t.Errorf("an explicit count became %d", got)
	}
}
