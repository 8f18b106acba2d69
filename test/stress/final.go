package stress

// The end of a run: with every pin dropped no block may stay busy; Check
// must pass; every key must still read as its own words or zeros, and every
// filler as exactly its value; and after Close and a reopen no block may be
// busy, and the blocks in use must be exactly the blocks the keys own.

import (
	"errors"
	"fmt"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// finish runs the final checks and closes the store.
func (r *runner) finish() (FinalState, error) {
	var final FinalState
	if st, ok := r.awaitIdle(); ok {
		final.Detached, final.Released, final.AllocWaits = st.Detached, st.Released, st.AllocWaits
	}
	if h := r.c.hooks; h != nil && h.beforeFinal != nil {
		h.beforeFinal(r.s)
	}
	r.check("final check")
	r.verifyAll(r.s, "before close")
	if err := r.s.Close(); err != nil {
		_ = r.s.CloseWith(r.ctx, dax.CloseOptions{Force: true})
		return final, fmt.Errorf("stress: close store: %w", err)
	}
	opts := r.c.storeOptions()
	opts.NoAdminSocket = true
	s, err := dax.Open(r.c.Dir, opts)
	if err != nil {
		return final, fmt.Errorf("stress: reopen store: %w", err)
	}
	r.s = s
	r.check("check after reopen")
	st, err := s.Stats()
	if err == nil {
		fillFinal(&final, st)
		r.checkLeaks(s, st, &final, "after reopen")
	} else {
		r.viol.add(ViolationError, "stats after reopen: %v", err)
	}
	r.verifyAll(s, "after reopen")
	if err := s.Close(); err != nil {
		return final, fmt.Errorf("stress: close reopened store: %w", err)
	}
	return final, nil
}

func fillFinal(f *FinalState, st dax.Stats) {
	f.DataBlocks, f.FreeBlocks, f.UsedBlocks, f.BusyBlocks, f.Files =
		st.DataBlocks, st.FreeBlocks, st.UsedBlocks, st.BusyBlocks, st.Files
}

// awaitIdle waits, up to WakeBound, for the store to hold no pin and no
// busy block once the workers stopped, and returns its figures then. Busy
// blocks that outlive every pin are a violation: their last release was
// lost.
func (r *runner) awaitIdle() (dax.Stats, bool) {
	deadline := time.Now().Add(max(r.c.WakeBound, time.Second))
	for {
		st, err := r.s.Stats()
		if err != nil {
			r.viol.add(ViolationError, "stats after the workers stopped: %v", err)
			return st, false
		}
		if st.Pins == 0 && st.BusyBlocks == 0 && st.PendingRelease == 0 {
			return st, true
		}
		if time.Now().After(deadline) {
			if st.Pins > 0 {
				r.viol.add(ViolationError, "%d pins outstanding after every pinner returned: %v", st.Pins, describePins(r.s.Pins()))
			} else {
				r.viol.add(ViolationBusyNotReleased, "%d blocks still busy (%d pending release) %v after the last pin dropped: %s",
					st.BusyBlocks, st.PendingRelease, r.c.WakeBound, describeBusy(r.s.Busy()))
			}
			return st, true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLeaks compares a quiet store's figures: nothing busy or pinned, and
// every data block free or owned by exactly the keys that List shows.
func (r *runner) checkLeaks(s *dax.Store, st dax.Stats, final *FinalState, when string) {
	infos, err := s.List("")
	if err != nil {
		r.viol.add(ViolationError, "list %s: %v", when, err)
		return
	}
	var owned uint64
	for _, fi := range infos {
		owned += fi.Blocks
	}
	if final != nil {
		final.FileBlocks = owned
	}
	if st.BusyBlocks != 0 {
		r.viol.add(ViolationLeak, "%d blocks busy %s: %s", st.BusyBlocks, when, describeBusy(s.Busy()))
	}
	if st.Pins != 0 {
		r.viol.add(ViolationLeak, "%d pins %s", st.Pins, when)
	}
	if st.FreeBlocks+st.UsedBlocks+st.BusyBlocks != st.DataBlocks {
		r.viol.add(ViolationLeak, "%s: free %d + used %d + busy %d blocks != %d data blocks",
			when, st.FreeBlocks, st.UsedBlocks, st.BusyBlocks, st.DataBlocks)
	}
	if st.UsedBlocks != owned {
		r.viol.add(ViolationLeak, "%s: %d blocks in use but the %d keys own %d", when, st.UsedBlocks, len(infos), owned)
	}
}

// verifyAll checks every key of the run in s: main keys word by word,
// fillers against the values their pressure worker recorded.
func (r *runner) verifyAll(s *dax.Store, when string) {
	for _, k := range r.keys {
		rule := k.readRule()
		v, err := s.Get(k.name)
		if errors.Is(err, dax.ErrNotFound) {
			continue
		}
		if err != nil {
			r.viol.add(ViolationError, "get %q %s: %v", k.name, when, err)
			continue
		}
		r.words.Add(int64(len(v) / wordSize))
		if bad, ok := k.seal(rule).firstBad(v, 0); ok {
			r.viol.add(bad.reason, "%q %s: word at offset %d is %v, want zeros or key %d generations [%d,%d)",
				k.name, when, bad.at, bad.got, k.id, rule.floor, k.seal(rule).next)
		}
	}
	for _, ws := range r.workers {
		for slot := range ws.fill {
			r.checkFiller(s, r.fillers[slot], ws.fill, slot, "final check "+when)
		}
	}
}

// describePins and describeBusy summarize the first few pins or busy
// extents for a violation.
func describePins(pins []dax.PinInfo) string {
	out := ""
	for i, p := range pins {
		if i == 3 {
			return out + fmt.Sprintf(", ... %d more", len(pins)-i)
		}
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s on %q [%d,+%d)", p.Label, p.Key, p.Offset, p.Length)
	}
	return out
}

func describeBusy(busy []dax.BusyExtent) string {
	out := ""
	for i, b := range busy {
		if i == 3 {
			return out + fmt.Sprintf(", ... %d more", len(busy)-i)
		}
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("blocks %d+%d of %q (%s, pinned %d, labels %v)", b.Start, b.Blocks, b.Key, b.Reason, b.PinnedBlocks, b.Labels)
	}
	return out
}
