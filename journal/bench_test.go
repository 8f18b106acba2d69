// This file benchmarks the journal's hot path: the batch a write into a hole
// commits (the inode with its extent, one free-space log record), synced on
// a real disk.

package journal

import (
	"fmt"
	"sync"
	"testing"

	"github.com/daxstore/daxstore/pmem"
)

// writeBatch queues the records of a typical write into a hole of a small
// file at step i: the inode with its inline extent and one free-space log
// record.
func writeBatch(j *Journal, i uint64) *Batch {
	b := j.NewBatch()
	ino := 1 + i%64
	b.SetInode(Inode{Ino: ino, Key: fmt.Sprint("bench/object-", ino), Size: int64(i+1) * 4096, ModTime: int64(i), Blocks: 1,
		Extents: []ExtentRecord{{Ino: ino, FileBlock: i, Start: pmem.Block(1000 + i), Len: 1}}})
	b.LogFree(FreeLog{Seq: i + 1, Claimed: []pmem.Extent{{Start: pmem.Block(1000 + i), Len: 1}}})
	return b
}

func benchJournal(b *testing.B) *Journal {
	b.Helper()
	j, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = j.Close() })
	return j
}

// BenchmarkCommitSync measures one synced commit of a write batch: the cost
// of one WAL fsync when nothing shares it.
func BenchmarkCommitSync(b *testing.B) {
	j := benchJournal(b)
	var i uint64
	for b.Loop() {
		if err := writeBatch(j, i).Commit(true); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkApplyWait2 measures group commit: two goroutines Apply under a
// shared mutex and wait for durability outside it, so their fsyncs can merge.
func BenchmarkApplyWait2(b *testing.B) {
	j := benchJournal(b)
	var (
		mu   sync.Mutex // orders Apply calls and guards next
		next uint64
		wg   sync.WaitGroup
	)
	work := make(chan struct{})
	b.ResetTimer()
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				mu.Lock()
				bt := writeBatch(j, next)
				next++
				wait, err := bt.Apply()
				mu.Unlock()
				if err == nil {
					err = wait()
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}
