package bench

// testing.B forms of the Put, Get and Pin measurements, so that a change to
// daxstore can be compared with benchstat, peers included:
//
//	go test -run '^$' -bench . -count 10 ./test/bench | tee new.txt
//
// Run them with TMPDIR on tmpfs to measure the same medium as `daxstore
// bench` does by default.

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// reportCPU reports, when the benchmark ends, the CPU time the process
// spent per operation (user and system, every goroutine): unlike ns/op it
// does not count time spent waiting for a CPU, so it stays comparable on a
// machine busy with other work.
func reportCPU(b *testing.B) {
	start := cpuTime()
	b.Cleanup(func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSystems opens each system of the Put and Get measurements.
func benchSystems(b *testing.B, size int) []kvSystem {
	slots := slotsFor(size)
	k := newKeys(slots)
	regionBytes := max(64<<20, 2*int64(slots)*int64(size)+(16<<20))
	return []kvSystem{
		{"daxstore", roleDax, func(dir string) (kv, error) { return openDax(dir, regionBytes, k) }},
		{"bbolt", rolePeer, func(dir string) (kv, error) { return openBolt(dir, k) }},
		{"pebble", rolePeer, func(dir string) (kv, error) {
			db, err := openPebble(dir)
			if err != nil {
				return nil, err
			}
			return &pebbleKV{db: db, keys: k}, nil
		}},
		{"files", rolePeer, func(dir string) (kv, error) { return openFiles(dir, slots), nil }},
		{"ideal", roleLimit, func(dir string) (kv, error) { return openIdeal(dir, slots, size, k) }},
	}
}

// openFilled opens sys in a fresh directory and writes every slot twice.
func openFilled(b *testing.B, sys kvSystem, size int) (kv, []byte) {
	b.Helper()
	db, err := sys.open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := db.close(); err != nil {
			b.Error(err)
		}
	})
	val := make([]byte, size)
	fill(val, uint64(size))
	for i := range 2 * slotsFor(size) {
		if err := db.put(i%slotsFor(size), val); err != nil {
			b.Fatal(err)
		}
	}
	return db, val
}

func BenchmarkPut(b *testing.B) {
	for _, size := range DefaultSizes {
		for _, sys := range benchSystems(b, size) {
			b.Run(fmt.Sprintf("%s/%s", sizeName(int64(size)), sys.name), func(b *testing.B) {
				db, val := openFilled(b, sys, size)
				slots := slotsFor(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				reportCPU(b)
				i := 0
				for b.Loop() {
					if err := db.put(i%slots, val); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

func BenchmarkGet(b *testing.B) {
	for _, size := range DefaultSizes {
		for _, sys := range benchSystems(b, size) {
			b.Run(fmt.Sprintf("%s/%s", sizeName(int64(size)), sys.name), func(b *testing.B) {
				db, _ := openFilled(b, sys, size)
				slots := slotsFor(size)
				// One buffer policy for every system (getBufferPolicy):
				// each copies into buf, reused; daxstore with AppendGet.
				buf := make([]byte, size)
				get := func(slot int) error {
					_, err := db.get(slot, buf)
					return err
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				reportCPU(b)
				i := 0
				for b.Loop() {
					if err := get(i % slots); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// BenchmarkDaxRead is the other reads of a whole value: Get (a new slice
// per call), the copying ReadAt, and the zero-copy View and Pin reads.
func BenchmarkDaxRead(b *testing.B) {
	for _, size := range DefaultSizes {
		sys := benchSystems(b, size)[0]
		db, _ := openFilled(b, sys, size)
		d := db.(*daxKV)
		if err := d.openFiles(); err != nil {
			b.Fatal(err)
		}
		slots := slotsFor(size)
		buf := make([]byte, size)
		b.Run(sizeName(int64(size))+"/ReadAt", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			reportCPU(b)
			i := 0
			for b.Loop() {
				if _, err := d.readAt(i%slots, buf); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(sizeName(int64(size))+"/Get", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			reportCPU(b)
			i := 0
			for b.Loop() {
				if _, err := d.s.Get(d.keys.s[i%slots]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(sizeName(int64(size))+"/View", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			reportCPU(b)
			i := 0
			for b.Loop() {
				sum, err := d.view(i%slots, countLines)
				if err != nil {
					b.Fatal(err)
				}
				sink.Add(sum)
				i++
			}
		})
		b.Run(sizeName(int64(size))+"/Pin", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			reportCPU(b)
			i := 0
			for b.Loop() {
				sum, err := d.pinRead(i%slots, int64(size), countLines)
				if err != nil {
					b.Fatal(err)
				}
				sink.Add(sum)
				i++
			}
		})
	}
}

func BenchmarkPinUnpinOneBlock(b *testing.B) {
	s, err := dax.Open(b.TempDir(), &dax.Options{Size: 64 << 20, NoAdminSocket: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bs := s.BlockSize()
	if err := s.Put("k", make([]byte, 64*bs)); err != nil {
		b.Fatal(err)
	}
	f, err := s.Open("k")
	if err != nil {
		b.Fatal(err)
	}
	pinUnpin := func(block int64) {
		p, err := f.Pin(block*bs, bs, dax.PinOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Unpin(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("one goroutine", func(b *testing.B) {
		b.ReportAllocs()
		reportCPU(b)
		for b.Loop() {
			pinUnpin(0)
		}
	})
	b.Run("parallel distinct blocks", func(b *testing.B) {
		var next int64
		var mu = make(chan struct{}, 1)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			mu <- struct{}{}
			block := next * pinSpacing % 64
			next++
			<-mu
			for pb.Next() {
				pinUnpin(block)
			}
		})
	})
	b.Run("parallel distinct files", func(b *testing.B) {
		var files []*dax.File
		for g := range 64 {
			key := fmt.Sprintf("file-%d", g)
			if err := s.Put(key, make([]byte, pinSpacing*bs)); err != nil {
				b.Fatal(err)
			}
			f, err := s.Open(key)
			if err != nil {
				b.Fatal(err)
			}
			files = append(files, f)
		}
		var next atomic.Int64
		b.ReportAllocs()
		reportCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			f := files[next.Add(1)%int64(len(files))]
			for pb.Next() {
				p, err := f.Pin(0, bs, dax.PinOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Unpin(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("parallel same block", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				pinUnpin(0)
			}
		})
	})
}
