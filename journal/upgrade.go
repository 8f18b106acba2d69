package journal

// Upgrading a format 1 journal, in which every file was a name record, an
// inode record and one record per extent, to format 2, in which the name
// record is the whole inode (see nameVersion).

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// upgradeBatch is how many files one upgrade batch converts: enough that a
// million files take a few hundred batches, few enough that a batch stays a
// few megabytes.
const upgradeBatch = 4096

// Upgrade rewrites every format 1 file record in format 2, a batch of files
// at a time, each batch atomic and synced: a crash leaves some files
// converted and the rest in format 1, and the next Upgrade finishes. The
// free-space records of format 1 are already a valid checkpoint. It
// returns the number of files converted; 0 on a format 2 journal.
func (j *Journal) Upgrade() (int, error) {
	total := 0
	for {
		n, err := j.upgradeSome()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// upgradeSome converts up to upgradeBatch files, the first in inode order.
func (j *Journal) upgradeSome() (int, error) {
	j.mu.RLock()
	if j.db == nil {
		j.mu.RUnlock()
		return 0, fmt.Errorf("journal: upgrade: %w", ErrClosed)
	}
	b := &Batch{j: j, pb: j.db.NewBatch()}
	n, err := j.collectUpgrade(b)
	j.mu.RUnlock()
	if err != nil || n == 0 {
		b.Close()
		return 0, err
	}
	if err := b.Commit(true); err != nil {
		return 0, fmt.Errorf("journal: upgrade: %w", err)
	}
	return n, nil
}

// collectUpgrade queues in b the conversion of up to upgradeBatch format 1
// inodes. j.mu must be held shared.
func (j *Journal) collectUpgrade(b *Batch) (n int, err error) {
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixInode}, UpperBound: []byte{prefixInode + 1}})
	if err != nil {
		return 0, j.loadError(err)
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = j.loadError(cerr)
		}
	}()
	for valid := it.First(); valid && n < upgradeBatch; valid = it.Next() {
		value, err := it.ValueAndErr()
		if err != nil {
			return 0, j.loadError(err)
		}
		in, err := decodeLegacyInode(it.Key(), value)
		if err != nil {
			return 0, err
		}
		if in.Ino == 0 {
			return 0, corruptError("inode", it.Key(), "inode number 0")
		}
		if err := j.checkLegacyName(in); err != nil {
			return 0, err
		}
		exts, err := j.externalExtents(j.db, in.Ino)
		if err != nil {
			return 0, err
		}
		for _, r := range exts {
			in.Blocks += r.Len
		}
		if len(exts) <= MaxInlineExtents {
			in.Extents = exts
			b.DeleteExtents(in.Ino)
		} else {
			in.External = true
		}
		b.SetInode(in)
		b.del("upgrade", inodeKey(in.Ino))
		n++
	}
	if err := it.Error(); err != nil {
		return 0, j.loadError(err)
	}
	return n, b.err
}

// checkLegacyName checks that the format 1 name record of in names it back.
func (j *Journal) checkLegacyName(in Inode) error {
	k := nameKey(in.Key)
	value, closer, err := j.db.Get(k)
	if err != nil {
		return fmt.Errorf("journal: upgrade: inode %d names key %q, which has no record: %w", in.Ino, in.Key, corruptError("name", k, "%v", err))
	}
	defer closer.Close()
	_, ino, err := decodeLegacyName(k, value)
	if err != nil {
		return err
	}
	if ino != in.Ino {
		return corruptError("name", k, "names inode %d, but inode %d names it", ino, in.Ino)
	}
	return nil
}
