package stress

// The run as a whole: a healthy store shows no violation, every kind of
// operation runs, and planted corruption is caught.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// patience bounds a test run that goes on until what the test asks for
// has happened: only a run that can never get there fails by it.
const patience = 5 * time.Minute

// runUntil runs c for at least its Duration and then until done reports
// that what the test needs has happened, or patience ran out. It fails the
// test, naming what never happened, in the second case.
func runUntil(t *testing.T, c Config, progress func(Progress), done func(r *runner) (missing []string)) *Report {
	t.Helper()
	if c.hooks == nil {
		c.hooks = &hooks{}
	}
	var last atomic.Pointer[[]string]
	c.hooks.until = func(r *runner) bool {
		m := done(r)
		last.Store(&m)
		return len(m) == 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	r, err := Run(ctx, c, progress)
	if err != nil {
		t.Fatal(err)
	}
	if r.Interrupted {
		logReport(t, r)
		m := last.Load()
		if m == nil {
			t.Fatalf("the run did not reach its duration %v in %v", c.Duration, patience)
		}
		t.Fatalf("after %v the run still lacked: %s", patience, strings.Join(*m, "; "))
	}
	return r
}

func TestRunFindsNoViolations(t *testing.T) {
	c := smallConfig(t)
	c.Duration = *testDuration
	var progress []Progress
	var progressed atomic.Int64
	// The run goes on until each of the assertions below on how much ran
	// holds, so they test the tool and not the machine's speed.
	r := runUntil(t, c, func(p Progress) {
		progress = append(progress, p)
		progressed.Add(1)
	}, func(r *runner) (missing []string) {
		for _, k := range r.count.kinds() {
			if k.OK == 0 {
				missing = append(missing, "a successful "+k.Kind)
			}
		}
		if r.checks.Load() < 3 {
			missing = append(missing, "3 checks")
		}
		if r.canaries.Load() == 0 || r.words.Load() == 0 {
			missing = append(missing, "a verified canary and word")
		}
		if st, err := r.s.Stats(); err != nil || st.Detached == 0 {
			missing = append(missing, "a detached block")
		}
		if progressed.Load() == 0 {
			missing = append(missing, "a progress report")
		}
		return missing
	})
	logReport(t, r)
	if !r.OK() {
		t.Fatalf("%d violations on a healthy store: %v", r.Violations, r.FirstViolations)
	}
	for _, k := range r.Kinds {
		if k.Ops == 0 {
			t.Errorf("no %s operation ran", k.Kind)
		}
		if k.OK == 0 {
			t.Errorf("no %s operation succeeded", k.Kind)
		}
	}
	if r.CheckResult != "ok" || r.Checks < 3 {
		t.Errorf("check result %q after %d checks, want ok after at least 3", r.CheckResult, r.Checks)
	}
	if r.Canaries == 0 || r.WordsChecked == 0 {
		t.Errorf("verified %d canaries and %d words, want some of each", r.Canaries, r.WordsChecked)
	}
	if f := r.Final; f.BusyBlocks != 0 || f.UsedBlocks != f.FileBlocks || f.FreeBlocks+f.UsedBlocks != f.DataBlocks {
		t.Errorf("final state %+v: want no busy block and used == file blocks == data - free", f)
	}
	if f := r.Final; f.Detached == 0 || f.Released != f.Detached {
		t.Errorf("detached %d blocks and released %d: want some, all released", f.Detached, f.Released)
	}
	if len(progress) == 0 {
		t.Error("progress was never reported")
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "journal")); err != nil {
		t.Errorf("a run in a given directory must keep its store: %v", err)
	}
}

// TestWaitPolicyLatencyIsMeasured runs only pinners and Wait-policy
// punchers, so every punch over a pin waits for its release.
func TestWaitPolicyLatencyIsMeasured(t *testing.T) {
	c := smallConfig(t)
	c.Duration = time.Second
	c.Keys = 2
	c.Writers, c.Putters, c.Readers, c.Truncaters, c.Zeroers, c.Removers, c.Pressure = 1, 1, -1, -1, -1, -1, -1
	c.Pinners, c.Punchers = 4, 2
	c.Policies = PolicyMix{Wait: 1}
	r := runUntil(t, c, nil, func(r *runner) []string {
		if r.lat.summary().Samples == 0 {
			return []string{"a wake latency sample"}
		}
		return nil
	})
	logReport(t, r)
	if !r.OK() {
		t.Fatalf("%d violations: %v", r.Violations, r.FirstViolations)
	}
	if l := r.WakeLatency; l.Samples == 0 || l.Max < l.P50 || l.Max > c.EnsureDefaults().WakeBound {
		t.Errorf("wake latency %+v: want samples, ordered percentiles, max within the bound", l)
	}
}

func TestScribbledCanaryIsCaught(t *testing.T) {
	c := smallConfig(t)
	c.Duration = time.Second
	var mu sync.Mutex
	scribbled := 0
	c.hooks = &hooks{afterCanary: func(p dax.Pin) {
		mu.Lock()
		defer mu.Unlock()
		if scribbled < 5 {
			scribbled++
			putWord(p.Bytes()[0], word{id: 0xbad, gen: 1}) // a stray DMA write, as it were
		}
	}}
	r := runUntil(t, c, nil, func(*runner) []string {
		mu.Lock()
		defer mu.Unlock()
		if scribbled == 0 {
			return []string{"a canary to scribble on"}
		}
		return nil
	})
	logReport(t, r)
	if scribbled == 0 {
		t.Fatal("no canary was written, so none could be scribbled on")
	}
	if got := r.ViolationKinds[ViolationCanary]; got != scribbled {
		t.Errorf("%d canary violations, want %d (one per scribble)", got, scribbled)
	}
}

func TestCorruptedValueIsCaught(t *testing.T) {
	c := smallConfig(t)
	c.Ops = 100
	c.Removers, c.Putters = -1, -1 // keep the keys' blocks where they are
	corrupted := ""
	c.hooks = &hooks{beforeFinal: func(s *dax.Store) {
		for i := range c.EnsureDefaults().Keys {
			f, err := s.Open(keyName(i))
			if err != nil {
				continue
			}
			if size, err := f.Size(); err != nil || size < wordSize {
				f.Close()
				continue
			}
			// Overwrite the first word in the region, behind the store's
			// back: what a stale writer to a reused block would do.
			p, err := f.Pin(0, wordSize, dax.PinOptions{Writable: true, Label: "corrupter"})
			f.Close()
			if err != nil {
				t.Errorf("pin to corrupt %s: %v", keyName(i), err)
				return
			}
			putWord(p.Bytes()[0], word{id: keyID(i) + 1, gen: 1})
			if err := p.Flush(); err != nil {
				t.Error(err)
			}
			if err := p.Unpin(); err != nil {
				t.Error(err)
			}
			corrupted = keyName(i)
			return
		}
	}}
	r, err := Run(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, r)
	if corrupted == "" {
		t.Fatal("no key had a word to corrupt")
	}
	// Found once before the store is closed and once after it is reopened.
	if got := r.ViolationKinds[ViolationForeign]; got != 2 {
		t.Errorf("%d foreign-bytes violations after corrupting %s, want 2", got, corrupted)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	existing := t.TempDir()
	s, err := dax.Open(existing, &dax.Options{Size: 1 << 20, NoAdminSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
	}{
		{"a run with neither duration nor op count is refused", func(c *Config) { c.Duration, c.Ops = 0, 0 }},
		{"a negative duration is refused", func(c *Config) { c.Duration = -time.Second }},
		{"a block size that is not a power of two is refused", func(c *Config) { c.BlockSize = 3000 }},
		{"values larger than the region allows are refused", func(c *Config) { c.ValueMax = 8 << 20 }},
		{"a minimum value above the maximum is refused", func(c *Config) { c.ValueMin, c.ValueMax = 64<<10, 1<<10 }},
		{"a policy mix of negative weights is refused", func(c *Config) { c.Policies = PolicyMix{Detach: -1} }},
		{"a long hold shorter than the usual hold is refused", func(c *Config) { c.PinHold, c.PinHoldLong = time.Second, time.Millisecond }},
		{"a wake bound below the allocation wait is refused", func(c *Config) { c.WakeBound, c.AllocWait = time.Second, 2*time.Second }},
		{"a run with every worker kind off is refused", func(c *Config) {
			for k := WorkerKind(0); k < numWorkerKinds; k++ {
				*c.count(k) = -1
			}
		}},
		{"a directory that holds a store is refused", func(c *Config) { c.Dir = existing }},
		{"windowers over blocks smaller than a page are refused", func(c *Config) { c.BlockSize, c.Windowers = 512, 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Duration: time.Second, Size: 16 << 20, ValueMax: 64 << 10, Dir: filepath.Join(t.TempDir(), "store")}
			tc.edit(&c)
			dir := c.Dir
			r, err := Run(context.Background(), c, nil)
			if err == nil {
				t.Fatalf("Run accepted it: %+v", r)
			}
			t.Log(err)
			if dir != existing {
				if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
					t.Errorf("a refused run left %s behind (%v)", dir, serr)
				}
			}
		})
	}
}
