package bench

// The report: every figure with its ratios to the best peer and to the
// limit, the verdict on each target of the benchmark issue, and the table
// that `daxstore bench` prints.

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Roles of a figure's subject.
const (
	roleDax   = "daxstore"
	rolePeer  = "peer"
	roleLimit = "limit"
	// roleBase is the baseline of a scale figure: the same measurement in
	// a small store. Ratios treat it as the limit.
	roleBase = "baseline"
)

// Units of a figure's value.
const (
	unitOpsPerSec = "ops/s"
	unitNs        = "ns"
	unitUs        = "µs"
	unitMs        = "ms"
	unitBytes     = "bytes"
	unitRecords   = "records"
)

// Report is the outcome of a Run.
type Report struct {
	// Machine describes where the figures were measured.
	Machine Machine `json:"machine"`
	// Command is the command line that produced the report, when the
	// caller sets it.
	Command  string    `json:"command,omitempty"`
	Quick    bool      `json:"quick"`
	Duration string    `json:"duration_per_figure"`
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	// GetBuffers says how the Get figures of every system treat their
	// buffer, when the run measured Get.
	GetBuffers string `json:"get_buffer_policy,omitempty"`
	// Scale describes the stores of a scale run (RunScale).
	Scale string `json:"scale,omitempty"`
	// Skipped names each part that could not run on this machine, with
	// the reason ("mount: not root").
	Skipped []string `json:"skipped,omitempty"`
	Figures []Figure `json:"figures"`
	Targets []Target `json:"targets"`
}

// Figure is one measured figure. Ratios compare Value with another figure
// of the same group and size: VsBestPeer = Value / the best peer's Value,
// VsLimit = Value / the limit's Value. Whether above 1 is good depends on
// HigherIsBetter: a throughput ratio of 2 is twice as fast, a time ratio of
// 2 is twice as slow.
type Figure struct {
	Group          string  `json:"group"` // put, get, pin, punch, wakeup, memory
	Subject        string  `json:"subject"`
	Role           string  `json:"role"`              // daxstore, peer or limit
	Size           int64   `json:"size,omitempty"`    // value or file size in bytes
	Keys           int64   `json:"keys,omitempty"`    // keys in the store, for the scale figures
	Count          int64   `json:"count,omitempty"`   // runs or samples behind Value, where it says
	Threads        int     `json:"threads,omitempty"` // goroutines, where figures differ only in it
	Value          float64 `json:"value"`
	Unit           string  `json:"unit"` // ops/s, ns, µs, ms or bytes
	HigherIsBetter bool    `json:"higher_is_better"`
	MBPerSec       float64 `json:"mb_per_sec,omitempty"` // ops/s × size, in 10⁶ bytes per second
	BestPeer       string  `json:"best_peer,omitempty"`
	VsBestPeer     float64 `json:"vs_best_peer,omitempty"`
	VsLimit        float64 `json:"vs_limit,omitempty"`
	Note           string  `json:"note,omitempty"`
}

// Target is one goal of the benchmark issue and whether this run met it.
type Target struct {
	// Goal states the target, as the README does.
	Goal  string  `json:"goal"`
	Value float64 `json:"value"` // the ratio or figure the goal is about
	Text  string  `json:"text"`  // Value for people, with what it was compared to
	Met   bool    `json:"met"`
}

// throughput adds a figure measured by a timed loop.
func (r *runner) throughput(group, subject, role string, size int, res result) {
	r.report.Figures = append(r.report.Figures, Figure{
		Group: group, Subject: subject, Role: role, Size: int64(size),
		Value: res.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true,
		MBPerSec: res.opsPerSec() * float64(size) / 1e6,
	})
}

// add adds any other figure.
func (r *runner) add(f Figure) { r.report.Figures = append(r.report.Figures, f) }

// find returns the figure of group, subject and size, or nil.
func (rep *Report) find(group, subject string, size int64) *Figure {
	for i := range rep.Figures {
		f := &rep.Figures[i]
		if f.Group == group && f.Subject == subject && f.Size == size {
			return f
		}
	}
	return nil
}

// finish computes every ratio and the targets.
func (rep *Report) finish() {
	order := map[string]int{"put": 0, groupSpace: 1, "get": 2, "pin": 3, "punch": 4, "wakeup": 5, "memory": 6, groupReaders: 7, groupWriters: 8, "region": 9, groupRecords: 1,
		groupWindowRead: 10, groupWindowMap: 11, groupWindowPunch: 12,
		groupMountSeqRead: 13, groupMountSeqWrite: 14, groupMountRandRead: 15, groupMountRandWrite: 16}
	for i, g := range scaleGroups {
		order[g] = 20 + i
	}
	slices.SortStableFunc(rep.Figures, func(a, b Figure) int {
		if a.Keys != b.Keys {
			return cmp.Compare(a.Keys, b.Keys)
		}
		return order[a.Group] - order[b.Group]
	})
	type bucket struct {
		group   string
		size    int64
		keys    int64
		threads int
	}
	best := map[bucket]*Figure{}
	limit := map[bucket]*Figure{}
	for i := range rep.Figures {
		f := &rep.Figures[i]
		b := bucket{f.Group, f.Size, f.Keys, f.Threads}
		switch f.Role {
		case rolePeer:
			if p := best[b]; p == nil || (f.Value > p.Value) == f.HigherIsBetter {
				best[b] = f
			}
		case roleLimit, roleBase:
			limit[b] = f
		}
	}
	for i := range rep.Figures {
		f := &rep.Figures[i]
		b := bucket{f.Group, f.Size, f.Keys, f.Threads}
		if p := best[b]; p != nil && p.Value > 0 {
			f.BestPeer, f.VsBestPeer = p.Subject, f.Value/p.Value
		}
		if l := limit[b]; l != nil && l.Value > 0 && f.Role != roleLimit && f.Role != roleBase {
			f.VsLimit = f.Value / l.Value
		}
	}
	rep.Targets = append(rep.targets(), rep.scaleTargets()...)
	rep.Targets = append(rep.Targets, rep.metricsTargets()...)
}

// targets checks the goals of the benchmark issue against the figures,
// skipping those whose figures were not measured.
func (rep *Report) targets() []Target {
	var out []Target
	ratio := func(goal, group, subject string, size int64, vsLimit bool, want float64) {
		f := rep.find(group, subject, size)
		if f == nil {
			return
		}
		v, other := f.VsBestPeer, f.BestPeer
		if vsLimit {
			v, other = f.VsLimit, "the limit"
		}
		if v == 0 {
			return
		}
		out = append(out, Target{Goal: goal, Value: v, Text: fmt.Sprintf("%.2fx %s", v, other), Met: v >= want})
	}
	// Goal 3 of the scale issue: single-writer Put at 4 KiB ≥ 1.0x the
	// best peer (Pebble) and ≥ 0.8x the ideal path, at 64 KiB ≥ 4x the
	// best peer, at 1 MiB ≥ 0.9x the ideal path; 1 MiB against the peers
	// and 64 KiB against the ideal path keep the earlier goals.
	peerGoal := map[int64]float64{4 << 10: 1.0, 64 << 10: 4, 1 << 20: 8}
	idealGoal := map[int64]float64{4 << 10: 0.8, 64 << 10: 0.7, 1 << 20: 0.9}
	for _, size := range rep.sizes("put") {
		if want, ok := peerGoal[size]; ok {
			ratio(fmt.Sprintf("Put %s ≥ %.1fx the best peer", sizeName(size), want), "put", "daxstore Put", size, false, want)
		}
		want, ok := idealGoal[size]
		if !ok {
			want = 0.7
		}
		ratio(fmt.Sprintf("Put %s ≥ %.1fx the ideal path", sizeName(size), want), "put", "daxstore Put", size, true, want)
	}
	for _, size := range rep.sizes(groupSpace) {
		// Goal 4 of the scale issue: small values at Pebble's cost, in
		// time and in space.
		ratio(fmt.Sprintf("Put %s ≥ 1.0x Pebble (small values)", sizeName(size)), "put", "daxstore Put", size, false, 1.0)
		if f := rep.find(groupSpace, subjSpaceDax, size); f != nil && f.VsBestPeer > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("Space per %s value ≤ 1.3x Pebble's", sizeName(size)), Value: f.VsBestPeer,
				Text: fmt.Sprintf("%.2fx %s (%.0f vs %.0f bytes)", f.VsBestPeer, f.BestPeer, f.Value, f.Value/f.VsBestPeer), Met: f.VsBestPeer <= 1.3})
		}
	}
	for _, size := range rep.sizes(groupRecords) {
		if f := rep.find(groupRecords, subjRecordsPerPut, size); f != nil {
			out = append(out, Target{Goal: fmt.Sprintf("Journal records per Put of %s ≤ 2 (one extent)", sizeName(size)), Value: f.Value,
				Text: fmt.Sprintf("%.2f records", f.Value), Met: f.Value <= 2})
		}
	}
	for _, size := range rep.sizes("get") {
		// Goal 5 of the scale issue: a read into a caller's buffer, or a
		// zero-copy View, at 0.8x the limit (at 4 KiB the limit's map
		// lookup is a large part of it).
		for _, s := range []string{subjAppendGet, subjView, subjReadAt} {
			ratio(fmt.Sprintf("%s %s ≥ 0.8x the limit (map lookup + copy)", strings.TrimPrefix(s, "daxstore "), sizeName(size)), "get", s, size, true, 0.8)
		}
	}
	for _, s := range []string{subjAppendGet, subjReadAt} {
		if f, b := rep.find("get", s, 4<<10), rep.find("get", "bbolt", 4<<10); f != nil && b != nil && b.Value > 0 {
			v := f.Value / b.Value
			out = append(out, Target{Goal: strings.TrimPrefix(s, "daxstore ") + " 4KiB ≥ 1.5x bbolt", Value: v,
				Text: fmt.Sprintf("%.2fx bbolt", v), Met: v >= 1.5})
		}
	}
	for _, size := range []int64{64 << 10, 1 << 20} {
		ratio(fmt.Sprintf("Pin (zero-copy) %s ≥ 0.9x the limit", sizeName(size)), "get", subjPin, size, true, 0.9)
	}
	if f := rep.find("pin", subjPinLatency, 0); f != nil {
		out = append(out, Target{Goal: "Pin+Unpin of one block ≤ 100 ns on one goroutine", Value: f.Value,
			Text: fmt.Sprintf("%.0f ns", f.Value), Met: f.Value <= 100})
	}
	for _, c := range []struct{ subject, goal string }{
		{subjPinDistinct, "Pin+Unpin throughput on distinct blocks (of distinct files) grows with cores"},
		{subjPinOneFile, "Pin+Unpin throughput on distinct blocks of one file grows with cores"},
	} {
		if one, all := rep.find("pin", subjPinOne, 0), rep.find("pin", c.subject, 0); one != nil && all != nil && one.Value > 0 {
			v := all.Value / one.Value
			out = append(out, Target{Goal: c.goal, Value: v,
				Text: fmt.Sprintf("%.2fx one goroutine on %d CPUs", v, rep.Machine.GOMAXPROCS), Met: v > 1.05})
		}
	}
	if whole, one := rep.findPrefix("pin", subjPinLong), rep.findPrefix("pin", subjPinLongOne); whole != nil && one != nil && one.Value > 0 {
		v := whole.Value / one.Value
		out = append(out, Target{Goal: "Pin+Unpin of a " + sizeName(whole.Size) + " contiguous range ≤ 10x one block (one operation per run)",
			Value: v, Text: fmt.Sprintf("%.1fx one block (%.0f ns)", v, whole.Value), Met: v <= 10})
	}
	punch := rep.findPrefix("punch", subjPunch+", nothing pinned")
	if punch != nil && punch.VsBestPeer > 0 {
		out = append(out, Target{Goal: "Punch of " + sizeName(punch.Size) + ", nothing pinned, ≤ 0.25x fallocate(PUNCH_HOLE)",
			Value: punch.VsBestPeer, Text: fmt.Sprintf("%.3fx fallocate", punch.VsBestPeer), Met: punch.VsBestPeer <= 0.25})
	}
	if pinned := rep.findPrefix("punch", subjPunch+", 1% pinned"); punch != nil && pinned != nil && punch.Value > 0 {
		v := pinned.Value / punch.Value
		out = append(out, Target{Goal: "Punch with 1% pinned ≤ 2x the unpinned punch", Value: v,
			Text: fmt.Sprintf("%.2fx unpinned", v), Met: v <= 2})
		// Scale goal 7: a break with pins journals O(runs) records.
		if pinned.VsBestPeer > 0 {
			out = append(out, Target{Goal: "Punch of " + sizeName(pinned.Size) + " with 1% pinned ≤ 0.5x fallocate(PUNCH_HOLE)",
				Value: pinned.VsBestPeer, Text: fmt.Sprintf("%.3fx fallocate", pinned.VsBestPeer), Met: pinned.VsBestPeer <= 0.5})
		}
		out = append(out, Target{Goal: "Punch with 1% pinned ≤ 4x the unpinned punch", Value: v,
			Text: fmt.Sprintf("%.2fx unpinned", v), Met: v <= 4})
	}
	if f := rep.find("wakeup", subjWakeP99, 0); f != nil {
		out = append(out, Target{Goal: "Release→wakeup p99 ≤ 100 µs", Value: f.Value,
			Text: fmt.Sprintf("%.1f µs", f.Value), Met: f.Value <= 100})
	}
	for _, f := range rep.Figures {
		if f.Group == groupReaders {
			out = append(out, Target{Goal: fmt.Sprintf("%s ≤ %d µs", f.Subject, readerGoalUs),
				Value: f.Value, Text: fmt.Sprintf("%.1f µs", f.Value), Met: f.Value <= readerGoalUs})
		}
	}
	for _, f := range rep.Figures {
		if f.Group == groupWriters && f.Role == roleDax && f.VsBestPeer > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("%d concurrent Puts, journal on disk, ≥ 1.0x Pebble (sync writes)", f.Threads),
				Value: f.VsBestPeer, Text: fmt.Sprintf("%.2fx %s", f.VsBestPeer, f.BestPeer), Met: f.VsBestPeer >= 1.0})
		}
	}
	if f := rep.find("memory", subjMemPerGiB, 0); f != nil {
		out = append(out, Target{Goal: "Refcount table ≤ 64 KiB per GiB of region, nothing pinned", Value: f.Value,
			Text: fmt.Sprintf("%.0f bytes", f.Value), Met: f.Value <= 64<<10})
	}
	out = append(out, rep.regionTargets()...)
	return append(out, rep.windowTargets()...)
}

// windowTargets judges goal 7 of the windows issue: a sequential read
// through a window at windowReadGoal of the copy out of the region mapping
// (steady state; the first touch is shown beside it, unjudged, because its
// page faults are the kernel's), and a 2 MiB punch under a live follow
// window returning within windowPunchGoalUs at p99, shown against the same
// punch without a window.
func (rep *Report) windowTargets() []Target {
	var out []Target
	if f := rep.findPrefix(groupWindowRead, subjWindowRead); f != nil && f.VsLimit > 0 {
		text := fmt.Sprintf("%.2fx the limit", f.VsLimit)
		if ft := rep.findPrefix(groupWindowRead, subjWindowFirstTouch); ft != nil && ft.VsLimit > 0 {
			text += fmt.Sprintf(" (first touch %.2fx)", ft.VsLimit)
		}
		out = append(out, Target{Goal: fmt.Sprintf("Sequential read of %s through a window ≥ %.1fx copy from the mapping", sizeName(f.Size), windowReadGoal),
			Value: f.VsLimit, Text: text, Met: f.VsLimit >= windowReadGoal})
	}
	if f := rep.findPrefix(groupWindowPunch, subjWindowPunchP99); f != nil {
		text := fmt.Sprintf("%.1f µs", f.Value)
		if ref := rep.findPrefix(groupWindowPunch, subjNoWindowPunchP99); ref != nil && ref.Value > 0 {
			text += fmt.Sprintf(" (%.2fx the punch without a window, %.1f µs", f.Value/ref.Value, ref.Value)
			if floor := rep.findPrefix(groupWindowPunch, subjZapFloorP99); floor != nil {
				text += fmt.Sprintf("; kernel floor %.1f µs", floor.Value)
			}
			text += ")"
		}
		out = append(out, Target{Goal: fmt.Sprintf("PunchHole of %s under a follow window p99 ≤ %d µs", sizeName(f.Size), windowPunchGoalUs),
			Value: f.Value, Text: text, Met: f.Value <= windowPunchGoalUs})
	}
	return out
}

// sizes returns the sizes measured in group, in order.
func (rep *Report) sizes(group string) []int64 {
	var out []int64
	seen := map[int64]bool{}
	for _, f := range rep.Figures {
		if f.Group == group && !seen[f.Size] {
			seen[f.Size] = true
			out = append(out, f.Size)
		}
	}
	return out
}

// findPrefix returns the first figure of group whose subject starts with
// prefix, or nil.
func (rep *Report) findPrefix(group, prefix string) *Figure {
	for i := range rep.Figures {
		if f := &rep.Figures[i]; f.Group == group && strings.HasPrefix(f.Subject, prefix) {
			return f
		}
	}
	return nil
}

// Met reports whether every target was met.
func (rep *Report) Met() bool {
	for _, t := range rep.Targets {
		if !t.Met {
			return false
		}
	}
	return true
}

// Format writes the report as aligned tables for people: the machine, every
// figure with its ratios, and the targets.
func (rep *Report) Format(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s memory, %s %s, %s, GOMAXPROCS %d, GOGC %s\n",
		m.CPUs, m.CPUModel, formatBytes(float64(m.MemoryBytes)), m.OS, m.Kernel, m.GoVersion, m.GOMAXPROCS, m.GOGC)
	fmt.Fprintf(w, "medium:  %s (%s)\n", m.Path, m.Filesystem)
	if rep.Command != "" {
		fmt.Fprintf(w, "command: %s\n", rep.Command)
	}
	fmt.Fprintf(w, "run:     %s per figure, %s in all; load average %s before, %s after\n\n",
		rep.Duration, rep.Elapsed, m.LoadBefore, m.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TEST\tSIZE\tSUBJECT\tRESULT\tMB/s\tVS BEST PEER\tVS LIMIT\t")
	for i, f := range rep.Figures {
		// Scale figures are grouped by store size, the others by test.
		if i > 0 {
			p := rep.Figures[i-1]
			if (f.Keys == 0 && f.Group != p.Group) || f.Keys != p.Keys {
				fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
			}
		}
		size, mbs, peer, lim := "", "", "", ""
		switch {
		case f.Keys > 0:
			size = countName(f.Keys) + " keys"
		case f.Size > 0:
			size = sizeName(f.Size)
		}
		if f.MBPerSec > 0 {
			mbs = fmt.Sprintf("%.0f", f.MBPerSec)
		}
		if f.VsBestPeer > 0 {
			peer = fmt.Sprintf("%.2fx %s", f.VsBestPeer, f.BestPeer)
		}
		if f.VsLimit > 0 {
			lim = fmt.Sprintf("%.2fx", f.VsLimit)
		}
		subject := f.Subject
		if f.Threads > 0 {
			subject = fmt.Sprintf("%s, %d goroutines", subject, f.Threads)
		}
		if f.Role != roleDax {
			subject += " (" + f.Role + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Group, size, subject, formatValue(f.Value, f.Unit), mbs, peer, lim)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios are this figure over the other one: for ops/s higher is better, for times lower is better.")
	if rep.GetBuffers != "" {
		fmt.Fprintf(w, "get buffers: %s.\n", rep.GetBuffers)
	}
	if rep.Scale != "" {
		fmt.Fprintf(w, "scale: %s.\n", rep.Scale)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
	noted := map[string]bool{}
	for _, f := range rep.Figures {
		if f.Note != "" && !noted[f.Subject+f.Note] {
			noted[f.Subject+f.Note] = true
			fmt.Fprintf(w, "%s: %s\n", f.Subject, f.Note)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tRESULT\t")
	for _, t := range rep.Targets {
		verdict := "met"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Goal, t.Text, verdict)
	}
	return tw.Flush()
}

// formatValue shows a figure's value with its unit.
func formatValue(v float64, unit string) string {
	switch unit {
	case unitOpsPerSec:
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM ops/s", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk ops/s", v/1e3)
		}
		return fmt.Sprintf("%.0f ops/s", v)
	case unitBytes:
		return formatBytes(v)
	}
	if v < 10 {
		return fmt.Sprintf("%.2f %s", v, unit)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// formatBytes shows a byte count: "512 B", "1.5 KiB", "23.4 GiB".
func formatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
