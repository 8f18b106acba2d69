package bench

// The scale suite (`daxstore bench --scale`): how daxstore's costs grow with
// the number of keys. At each key count it builds a store of small values,
// then measures Open (time, RSS, Go heap) in a fresh child process, a CLI
// get as a process, Put, Get and random-overwrite rates, a prefix List,
// and Check with the longest pause it causes a concurrent writer; Pebble
// and bbolt are built on the same keys and values and opened the same way
// beside it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/daxstore/daxstore/dax"
)

// DefaultScaleKeys are the key counts of a scale run; a quick run stops at
// 100k.
var DefaultScaleKeys = []int{10_000, 100_000, 1_000_000}

// ScaleConfig says what the scale suite measures. The zero value of every
// field but Exe means its default.
type ScaleConfig struct {
	// Path is the directory under which the stores are built (in a fresh
	// temporary directory that is removed at the end); empty means
	// /dev/shm when writable, else os.TempDir().
	Path string
	// Quick stops at 100k keys and shortens every rate figure.
	Quick bool
	// Keys are the key counts measured (default DefaultScaleKeys, without
	// 1M when Quick). Each must be at least 20, so that a 10-key prefix
	// exists.
	Keys []int
	// ValueSize is the size of every value in bytes (default 512). The
	// daxstore region uses blocks of the same size (a power of two from
	// 512 to 4096), so 1M keys take ValueSize × 1M bytes of region, not
	// 4 KiB each.
	ValueSize int
	// Duration is how long each rate figure runs (default 1s, or 200ms
	// with Quick).
	Duration time.Duration
	// Exe is the daxstore binary. Each Open is measured in a child
	// process, `Exe bench-child open SYSTEM DIR`, so that the parent's
	// memory does not pollute its RSS, and the CLI get runs as
	// `Exe get KEY --dir DIR`. Required.
	Exe string
	// Env is added to the environment of those children.
	Env []string
}

func (c ScaleConfig) withDefaults() ScaleConfig {
	if c.Path == "" {
		c.Path = Config{}.withDefaults().Path
	}
	if len(c.Keys) == 0 {
		c.Keys = DefaultScaleKeys
		if c.Quick {
			c.Keys = c.Keys[:2]
		}
	}
	if c.ValueSize == 0 {
		c.ValueSize = 512
	}
	if c.Duration == 0 {
		c.Duration = time.Second
		if c.Quick {
			c.Duration = 200 * time.Millisecond
		}
	}
	return c
}

func (c ScaleConfig) check() error {
	for _, n := range c.Keys {
		if n < 20 || n > 100_000_000 {
			return fmt.Errorf("bench: %d keys out of range [20, 100M]", n)
		}
	}
	switch {
	case c.ValueSize < 1 || c.ValueSize > 64<<10:
		return fmt.Errorf("bench: scale value size %d out of range [1, 64 KiB]", c.ValueSize)
	case c.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %s is shorter than a millisecond", c.Duration)
	case c.Exe == "":
		return errors.New("bench: the scale suite needs the daxstore binary to run its children")
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return fmt.Errorf("bench: path: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("bench: path %s is not a directory", c.Path)
	}
	return nil
}

// blockSize is the region block size for values of the configured size.
func (c ScaleConfig) blockSize() int {
	bs := 512
	for bs < c.ValueSize && bs < 4096 {
		bs *= 2
	}
	return bs
}

// Subjects and groups of the scale figures. Each group holds one kind of
// figure, so that a ratio compares like with like.
const (
	groupOpen      = "open"
	groupRSS       = "open rss"
	groupPeakRSS   = "open peak rss"
	groupHeap      = "open heap"
	groupFill      = "fill"
	groupCLI       = "cli get"
	groupRate      = "rate"
	groupOverwrite = "overwrite"
	groupList      = "list"
	groupCheck     = "check"
	groupPause     = "check pause"

	subjDaxOpen    = "daxstore Open"
	subjPebbleOpen = "pebble Open"
	subjBoltOpen   = "bbolt Open"
	subjFill       = "daxstore fill (Put, NoSync)"
	subjCLIGet     = "daxstore get KEY (a process)"
	subjScalePut   = "daxstore Put of a new key"
	subjScaleGet   = "daxstore AppendGet"
	subjOverwrite  = "daxstore Put over a random key"
	subjList       = "daxstore List of a 10-key prefix"
	// The same in the store of baseKeys keys, measured right after.
	subjOverwriteBase = "daxstore Put over a random key of 1k keys"
	subjListBase      = "daxstore List of a 10-key prefix of 1k keys"
	subjCheck         = "daxstore Check"
	subjPause         = "longest Put during Check"
	subjStorePause    = "Check's pause of the store"

	// baseKeys is the store size that overwrites and List are compared
	// with (the subjects above name it).
	baseKeys = 1000
)

// scaleRunner is one run of the scale suite.
type scaleRunner struct {
	ctx      context.Context
	cfg      ScaleConfig
	dir      string
	progress Progress
	report   *Report
	value    []byte // the value every key holds
	baseDir  string // the store of baseKeys keys
}

// RunScale runs the scale suite and returns its report, with a verdict on
// each scale target. It stops early, with ctx's error, when ctx ends; the
// temporary directory it creates under cfg.Path is removed before it
// returns.
func RunScale(ctx context.Context, cfg ScaleConfig, progress Progress) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	dir, err := os.MkdirTemp(cfg.Path, "daxstore-scale-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	r := &scaleRunner{ctx: ctx, cfg: cfg, dir: dir, progress: progress, report: &Report{
		Machine: describeMachine(cfg.Path), Quick: cfg.Quick, Duration: cfg.Duration.String(),
		Started: time.Now(),
		Scale: fmt.Sprintf("every key holds %d bytes; daxstore's region has %d-byte blocks; "+
			"each Open runs in a fresh child process (RSS and peak RSS from its /proc/self/status, heap is "+
			"HeapAlloc after a GC); Put, Get and overwrites are durable and pick random keys; Get copies "+
			"into one reused buffer; the VS LIMIT of an overwrite or List figure is its ratio to the same "+
			"measurement in a 1k-key store, taken right after it; the goals name 1M keys and are judged at every count", cfg.ValueSize, cfg.blockSize()),
	}}
	r.value = make([]byte, cfg.ValueSize)
	fill(r.value, uint64(cfg.ValueSize))
	steps := []func() error{func() error { return r.base() }}
	for _, n := range cfg.Keys {
		steps = append(steps, func() error { return r.one(n) })
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		runtime.GC()
		if err := step(); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
				err = fmt.Errorf("%w (%w)", ctxErr, err)
			}
			return nil, fmt.Errorf("bench: scale: %w", err)
		}
	}
	r.report.Elapsed = time.Since(r.report.Started).Round(time.Millisecond).String()
	r.report.Machine.LoadAfter = loadAverage()
	r.report.finish()
	return r.report, nil
}

// scaleKey is the name of key i: with the prefix "k/000001" exactly ten
// keys (i = 10..19) match, whatever the count.
func scaleKey(i int) string { return fmt.Sprintf("k/%07d", i) }

const tenKeyPrefix = "k/000001"

// build creates a daxstore store of n keys in dir, NoSync (a Close makes
// it durable), and returns the fill rate.
func (r *scaleRunner) build(dir string, n int) (result, error) {
	bs := r.cfg.blockSize()
	blocks := int64((r.cfg.ValueSize + bs - 1) / bs)
	// Room for every value, the new keys and overwrites of the rate
	// figures (whose count only their duration bounds: 2 GiB holds a
	// second of new 4 KiB keys at 500k a second), and slack. The region
	// is sparse: space it never uses costs nothing.
	region := (int64(n)*blocks*int64(bs))*5/4 + 2<<30
	s, err := dax.Open(dir, &dax.Options{Size: region, BlockSize: uint32(bs), NoSync: true, NoAdminSocket: true})
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	for i := range n {
		if i%4096 == 0 {
			if err := r.ctx.Err(); err != nil {
				s.Close()
				return result{}, err
			}
			r.progress(fmt.Sprintf("scale %s keys: fill %d%%", countName(n), 100*i/n))
		}
		if err := s.Put(scaleKey(i), r.value); err != nil {
			s.Close()
			return result{}, fmt.Errorf("fill: %w", err)
		}
	}
	res := result{ops: int64(n), elapsed: time.Since(start)}
	if err := s.Close(); err != nil {
		return result{}, err
	}
	return res, nil
}

// openRW opens a built store as an application would: durable, read-write.
func openRW(dir string) (*dax.Store, error) {
	return dax.Open(dir, &dax.Options{MustExist: true, NoAdminSocket: true})
}

// base builds the store that the overwrites and List of every count are
// compared with: baseKeys keys, measured again next to each count, so that
// both figures of a ratio see the same load on the machine.
func (r *scaleRunner) base() error {
	dir, err := os.MkdirTemp(r.dir, "base-")
	if err != nil {
		return err
	}
	r.progress(fmt.Sprintf("scale %s keys: fill", countName(baseKeys)))
	if _, err := r.build(dir, baseKeys); err != nil {
		return err
	}
	r.baseDir = dir
	return nil
}

// one measures the store of n keys and its peers.
func (r *scaleRunner) one(n int) error {
	dir, err := os.MkdirTemp(r.dir, fmt.Sprintf("dax-%d-", n))
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fillRes, err := r.build(dir, n)
	if err != nil {
		return err
	}
	// The fill's store is closed: give its memory back, so the children
	// measured next share the machine with a small parent.
	debug.FreeOSMemory()
	r.add(Figure{Group: groupFill, Subject: subjFill, Role: roleDax, Keys: int64(n),
		Value: fillRes.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true,
		Note: "builds each store; one Put per key with NoSync, then Close"})
	if err := r.childOpens("daxstore", subjDaxOpen, roleDax, dir, n); err != nil {
		return err
	}
	if err := r.cliGet(dir, n); err != nil {
		return err
	}
	if err := r.inProcess(dir, n); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, p := range []struct {
		system, subject string
		build           func(dir string, n int) error
	}{
		{"pebble", subjPebbleOpen, r.buildPebble},
		{"bbolt", subjBoltOpen, r.buildBolt},
	} {
		pdir, err := os.MkdirTemp(r.dir, fmt.Sprintf("%s-%d-", p.system, n))
		if err != nil {
			return err
		}
		r.progress(fmt.Sprintf("scale %s keys: fill %s", countName(n), p.system))
		err = p.build(pdir, n)
		if err == nil {
			err = r.childOpens(p.system, p.subject, rolePeer, pdir, n)
		}
		os.RemoveAll(pdir)
		if err != nil {
			return fmt.Errorf("%s: %w", p.system, err)
		}
	}
	return nil
}

// inProcess measures, in this process, the rates, List and Check of the
// store of n keys in dir.
func (r *scaleRunner) inProcess(dir string, n int) error {
	r.progress(fmt.Sprintf("scale %s keys: open in process", countName(n)))
	s, err := openRW(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	d := r.cfg.Duration
	runtime.GC()
	r.progress(fmt.Sprintf("scale %s keys: put", countName(n)))
	res, err := timed(r.ctx, d, 10, 10, func(i int) error {
		return s.Put(fmt.Sprintf("new/%d", i), r.value)
	})
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	r.rate(groupRate, subjScalePut, n, res)
	r.progress(fmt.Sprintf("scale %s keys: get", countName(n)))
	buf := make([]byte, 0, r.cfg.ValueSize)
	res, err = timed(r.ctx, d, 100, 100, func(int) error {
		key := scaleKey(rng.IntN(n))
		buf, err = s.AppendGet(buf[:0], key)
		if err == nil && !bytes.Equal(buf, r.value) {
			err = fmt.Errorf("get %s returned %d bytes that are not its value", key, len(buf))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	r.rate(groupRate, subjScaleGet, n, res)
	base, err := openRW(r.baseDir)
	if err != nil {
		return err
	}
	defer base.Close()
	for _, m := range []struct {
		s             *dax.Store
		keys          int
		role, subject string
	}{
		{s, n, roleDax, subjOverwrite},
		{base, baseKeys, roleBase, subjOverwriteBase},
	} {
		if err := r.overwrites(m.s, m.keys, n, m.role, m.subject); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		s             *dax.Store
		role, subject string
	}{
		{s, roleDax, subjList},
		{base, roleBase, subjListBase},
	} {
		if err := r.list(m.s, n, m.role, m.subject); err != nil {
			return err
		}
	}
	return r.checkPause(s, n)
}

// overwrites measures durable Puts over random keys of s, which holds
// storeKeys keys, as a figure at figKeys keys.
func (r *scaleRunner) overwrites(s *dax.Store, storeKeys, figKeys int, role, subject string) error {
	r.progress(fmt.Sprintf("scale %s keys: overwrite in %s keys", countName(figKeys), countName(storeKeys)))
	rng := rand.New(rand.NewPCG(uint64(storeKeys), 2))
	runtime.GC()
	res, err := timed(r.ctx, r.cfg.Duration, 10, 10, func(int) error {
		return s.Put(scaleKey(rng.IntN(storeKeys)), r.value)
	})
	if err != nil {
		return fmt.Errorf("overwrite: %w", err)
	}
	r.add(Figure{Group: groupOverwrite, Subject: subject, Role: role, Keys: int64(figKeys),
		Value: res.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true})
	return nil
}

// list times List of a prefix that ten keys of s match, as a figure at
// figKeys keys.
func (r *scaleRunner) list(s *dax.Store, figKeys int, role, subject string) error {
	r.progress(fmt.Sprintf("scale %s keys: list", countName(figKeys)))
	res, err := timed(r.ctx, r.cfg.Duration, 1, 3, func(int) error {
		got, err := s.List(tenKeyPrefix)
		if err == nil && len(got) != 10 {
			err = fmt.Errorf("list %q found %d keys, want 10", tenKeyPrefix, len(got))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	r.add(Figure{Group: groupList, Subject: subject, Role: role, Keys: int64(figKeys),
		Value: res.nsPerOp() / 1e3, Unit: unitUs})
	return nil
}

// checkPause runs Check while a writer goroutine overwrites random keys
// durably, and reports Check's time and the longest Put that overlapped it.
func (r *scaleRunner) checkPause(s *dax.Store, n int) error {
	r.progress(fmt.Sprintf("scale %s keys: check with a writer", countName(n)))
	var (
		mu         sync.Mutex
		checkStart time.Time
		checkEnd   time.Time // zero while Check runs
		longest    time.Duration
		during     int // Puts that overlapped Check
		writerErr  error
		stop       = make(chan struct{})
		stopped    = make(chan struct{})
		warmed     = make(chan struct{})
	)
	go func() {
		defer close(stopped)
		rng := rand.New(rand.NewPCG(uint64(n), 3))
		for i := 0; ; i++ {
			if i == 100 {
				close(warmed)
			}
			select {
			case <-stop:
				if i < 100 {
					close(warmed)
				}
				return
			default:
			}
			t0 := time.Now()
			err := s.Put(scaleKey(rng.IntN(n)), r.value)
			t1 := time.Now()
			mu.Lock()
			if err != nil {
				writerErr = err
			}
			// A Put overlaps Check when it started before Check ended
			// and ended after Check started.
			if !checkStart.IsZero() && t1.After(checkStart) && (checkEnd.IsZero() || t0.Before(checkEnd)) {
				during++
				longest = max(longest, t1.Sub(t0))
			}
			mu.Unlock()
			if err != nil {
				if i < 100 {
					close(warmed)
				}
				return
			}
		}
	}()
	<-warmed
	mu.Lock()
	checkStart = time.Now()
	mu.Unlock()
	err := s.Check()
	end := time.Now()
	st, serr := s.Stats()
	if err == nil {
		err = serr
	}
	mu.Lock()
	checkEnd = end
	mu.Unlock()
	close(stop)
	<-stopped
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if writerErr != nil {
		return fmt.Errorf("writer during check: %w", writerErr)
	}
	r.add(Figure{Group: groupCheck, Subject: subjCheck, Role: roleDax, Keys: int64(n),
		Value: float64(end.Sub(checkStart).Nanoseconds()) / 1e6, Unit: unitMs})
	r.add(Figure{Group: groupPause, Subject: subjPause, Role: roleDax, Keys: int64(n),
		Value: float64(longest.Nanoseconds()) / 1e6, Unit: unitMs,
		Count: int64(during),
		Note: "a writer goroutine overwrites random keys durably while Check runs: the longest Put that overlapped Check; " +
			"it includes the CPU Check takes from it, which on a loaded 2-core machine is most of it"})
	r.add(Figure{Group: groupPause, Subject: subjStorePause, Role: roleDax, Keys: int64(n),
		Value: float64(st.LastCheckPause.Nanoseconds()) / 1e6, Unit: unitMs,
		Note: "Stats.LastCheckPause: how long Check kept operations waiting (snapshot and copy of memory), " +
			"including the wait for the operations in flight"})
	return nil
}

func (r *scaleRunner) rate(group, subject string, n int, res result) {
	r.add(Figure{Group: group, Subject: subject, Role: roleDax, Keys: int64(n),
		Value: res.opsPerSec(), Unit: unitOpsPerSec, HigherIsBetter: true})
}

func (r *scaleRunner) add(f Figure) { r.report.Figures = append(r.report.Figures, f) }

// repeat runs measure up to three times, fewer when one run takes more
// than two seconds, and returns the run with the median first value.
func repeat(ctx context.Context, measure func() ([]float64, error)) ([]float64, int, error) {
	var runs [][]float64
	start := time.Now()
	for len(runs) < 3 {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		v, err := measure()
		if err != nil {
			return nil, 0, err
		}
		runs = append(runs, v)
		if time.Since(start) > 2*time.Second {
			break
		}
	}
	slices.SortFunc(runs, func(a, b []float64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	return runs[(len(runs)-1)/2], len(runs), nil
}

// childResult is what a bench-child open prints.
type childResult struct {
	OpenNs    int64  `json:"open_ns"`
	HeapBytes uint64 `json:"heap_bytes"`
	RSSBytes  int64  `json:"rss_bytes"`  // VmRSS with the store open
	PeakBytes int64  `json:"peak_bytes"` // VmHWM: the peak RSS of the process so far
}

// childOpens opens the store or database in dir in fresh child processes
// and adds its Open time, peak RSS and Go heap.
func (r *scaleRunner) childOpens(system, subject, role, dir string, n int) error {
	r.progress(fmt.Sprintf("scale %s keys: open %s in a child", countName(n), system))
	v, runs, err := repeat(r.ctx, func() ([]float64, error) {
		var out bytes.Buffer
		cmd := exec.CommandContext(r.ctx, r.cfg.Exe, "bench-child", "open", system, dir)
		cmd.Env = append(os.Environ(), r.cfg.Env...)
		cmd.Stdout = &out
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("child open: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		var res childResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("child open printed %q: %w", out.String(), err)
		}
		return []float64{float64(res.OpenNs) / 1e6, float64(res.RSSBytes), float64(res.PeakBytes), float64(res.HeapBytes)}, nil
	})
	if err != nil {
		return err
	}
	note := "each in a fresh child process; the median of 3 runs, or fewer when they take over 2 s"
	r.add(Figure{Group: groupOpen, Subject: subject, Role: role, Keys: int64(n), Value: v[0], Unit: unitMs, Count: int64(runs), Note: note})
	r.add(Figure{Group: groupRSS, Subject: strings.Replace(subject, "Open", "RSS after Open", 1), Role: role,
		Keys: int64(n), Value: v[1], Unit: unitBytes, Note: "the child's VmRSS with the store open"})
	r.add(Figure{Group: groupPeakRSS, Subject: strings.Replace(subject, "Open", "peak RSS through Open", 1), Role: role,
		Keys: int64(n), Value: v[2], Unit: unitBytes, Note: "the child's VmHWM, read by the child itself: " +
			"its rusage would report the parent's RSS, which a child started by vfork inherits as its maximum across exec"})
	r.add(Figure{Group: groupHeap, Subject: strings.Replace(subject, "Open", "Go heap after Open", 1), Role: role,
		Keys: int64(n), Value: v[3], Unit: unitBytes, Note: "HeapAlloc after a GC, in the child, with the store open"})
	return nil
}

// cliGet times `daxstore get KEY --dir DIR` as a process, end to end.
func (r *scaleRunner) cliGet(dir string, n int) error {
	r.progress(fmt.Sprintf("scale %s keys: daxstore get", countName(n)))
	key := scaleKey(n / 2)
	v, runs, err := repeat(r.ctx, func() ([]float64, error) {
		var out, stderr bytes.Buffer
		cmd := exec.CommandContext(r.ctx, r.cfg.Exe, "get", key, "--dir", dir)
		cmd.Env = append(os.Environ(), r.cfg.Env...)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		start := time.Now()
		err := cmd.Run()
		el := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("daxstore get: %w: %s", err, strings.TrimSpace(stderr.String()))
		}
		if !bytes.Equal(out.Bytes(), r.value) {
			return nil, fmt.Errorf("daxstore get %s printed %d bytes that are not its value", key, out.Len())
		}
		return []float64{float64(el.Nanoseconds()) / 1e6}, nil
	})
	if err != nil {
		return err
	}
	r.add(Figure{Group: groupCLI, Subject: subjCLIGet, Role: roleDax, Keys: int64(n), Value: v[0], Unit: unitMs,
		Count: int64(runs), Note: "wall time of the process, start to exit; the median of 3 runs, or fewer when they take over 2 s"})
	return nil
}

// buildPebble writes the same keys and values into a Pebble database, in
// batches without sync, and closes it.
func (r *scaleRunner) buildPebble(dir string, n int) error {
	db, err := openPebble(dir)
	if err != nil {
		return err
	}
	b := db.NewBatch()
	for i := range n {
		if err := b.Set([]byte(scaleKey(i)), r.value, nil); err != nil {
			b.Close()
			db.Close()
			return err
		}
		if (i+1)%10_000 == 0 || i == n-1 {
			if err := b.Commit(pebble.NoSync); err != nil {
				b.Close()
				db.Close()
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	b.Close()
	return db.Close()
}

// buildBolt writes the same keys and values into a bbolt database, in
// transactions of 10k keys, and closes it.
func (r *scaleRunner) buildBolt(dir string, n int) error {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	for lo := 0; lo < n; lo += 10_000 {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(boltBucket)
			if err != nil {
				return err
			}
			for i := lo; i < min(n, lo+10_000); i++ {
				if err := bk.Put([]byte(scaleKey(i)), r.value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return err
		}
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// RunChild is the child side of the scale suite, run by a hidden
// subcommand of daxstore: `open SYSTEM DIR` opens the daxstore store,
// Pebble or bbolt database in DIR, and writes a JSON childResult to w
// with the Open time and the Go heap with it open; then it closes it.
func RunChild(args []string, w io.Writer) error {
	if len(args) != 3 || args[0] != "open" {
		return fmt.Errorf("bench child: want open SYSTEM DIR, got %q", args)
	}
	system, dir := args[1], args[2]
	var closeIt func() error
	start := time.Now()
	switch system {
	case "daxstore":
		s, err := openRW(dir)
		if err != nil {
			return err
		}
		closeIt = s.Close
	case "pebble":
		db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{}, ErrorIfNotExists: true})
		if err != nil {
			return err
		}
		closeIt = db.Close
	case "bbolt":
		db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, nil)
		if err != nil {
			return err
		}
		closeIt = db.Close
	default:
		return fmt.Errorf("bench child: unknown system %q", system)
	}
	el := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := childResult{OpenNs: el.Nanoseconds(), HeapBytes: ms.HeapAlloc}
	var err error
	if res.RSSBytes, res.PeakBytes, err = procRSS(); err != nil {
		closeIt()
		return err
	}
	cerr := closeIt()
	if err := json.NewEncoder(w).Encode(res); err != nil {
		return err
	}
	return cerr
}

// countName shows a key count: 200, 2k, 100k, 1M.
func countName[T int | int64](n T) string {
	v := int64(n)
	switch {
	case v >= 1_000_000 && v%1_000_000 == 0:
		return strconv.FormatInt(v/1_000_000, 10) + "M"
	case v >= 1000 && v%1000 == 0:
		return strconv.FormatInt(v/1000, 10) + "k"
	}
	return strconv.FormatInt(v, 10)
}

// scaleGroups are the groups of the scale figures, in the order the table
// shows them.
var scaleGroups = []string{groupFill, groupOpen, groupRSS, groupPeakRSS, groupHeap, groupCLI, groupRate, groupOverwrite,
	groupList, groupCheck, groupPause}

// findKeys returns the figure of group and subject at n keys, or nil.
func (rep *Report) findKeys(group, subject string, n int64) *Figure {
	for i := range rep.Figures {
		f := &rep.Figures[i]
		if f.Group == group && f.Subject == subject && f.Keys == n {
			return f
		}
	}
	return nil
}

// scaleTargets judges the goals of the scale issue at every key count
// measured (the goals name 1M keys; a store independent of its key count
// meets them at every count). List and overwrites are judged by their
// ratio to the same measurement in the store of baseKeys keys, taken right
// after (the VS LIMIT column).
func (rep *Report) scaleTargets() []Target {
	var out []Target
	var counts []int64
	for _, f := range rep.Figures {
		if f.Group == groupOpen && f.Role == roleDax && !slices.Contains(counts, f.Keys) {
			counts = append(counts, f.Keys)
		}
	}
	atMost := func(goal string, f *Figure, limit float64, unit string) {
		if f == nil {
			return
		}
		text := formatValue(f.Value, unit)
		out = append(out, Target{Goal: goal, Value: f.Value, Text: text, Met: f.Value <= limit})
	}
	for _, n := range counts {
		k := countName(n)
		atMost(fmt.Sprintf("Open of %s keys ≤ 100 ms (goal 1)", k), rep.findKeys(groupOpen, subjDaxOpen, n), 100, unitMs)
		if f := rep.findKeys(groupHeap, "daxstore Go heap after Open", n); f != nil {
			out = append(out, Target{Goal: fmt.Sprintf("Go heap after Open of %s keys ≤ 64 MiB (goal 1)", k),
				Value: f.Value, Text: formatBytes(f.Value), Met: f.Value <= 64<<20})
		}
		atMost(fmt.Sprintf("CLI get of one key in %s keys ≤ 100 ms (goal 1)", k), rep.findKeys(groupCLI, subjCLIGet, n), 100, unitMs)
		atMost(fmt.Sprintf("Check pauses the store at %s keys ≤ 10 ms (goal 8)", k), rep.findKeys(groupPause, subjStorePause, n), 10, unitMs)
		if f := rep.findKeys(groupList, subjList, n); f != nil && f.VsLimit > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("List of a 10-key prefix at %s keys ≤ 2x at 1k keys: in proportion to matches (goal 9)", k),
				Value: f.VsLimit, Text: fmt.Sprintf("%.2fx (%s)", f.VsLimit, formatValue(f.Value, unitUs)), Met: f.VsLimit <= 2})
		}
		if f := rep.findKeys(groupOverwrite, subjOverwrite, n); f != nil && f.VsLimit > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("Random overwrites at %s keys ≥ 0.8x the 1k-key rate (goal 11)", k),
				Value: f.VsLimit, Text: fmt.Sprintf("%.2fx (%s)", f.VsLimit, formatValue(f.Value, unitOpsPerSec)), Met: f.VsLimit >= 0.8})
		}
	}
	return out
}

// procRSS returns this process's resident set now and at its peak (VmRSS
// and VmHWM of /proc/self/status), in bytes.
func procRSS() (rss, peak int64, err error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) (int64, error) {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, name+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				return kb << 10, err
			}
		}
		return 0, fmt.Errorf("no %s in /proc/self/status", name)
	}
	if rss, err = field("VmRSS"); err != nil {
		return 0, 0, err
	}
	peak, err = field("VmHWM")
	return rss, peak, err
}
