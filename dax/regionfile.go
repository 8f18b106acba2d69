package dax

// What Open says when the region file or the journal is gone while the
// other remains: which one, where it was, and what can still be done.
// init refuses a directory that holds either, so advice to run it would
// send the user in a circle.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// regionWhere describes the region path for a message: the path itself,
// and for a symbolic link (init --region makes DIR/region one) the file it
// points to.
func regionWhere(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return path
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(path), target)
	}
	return fmt.Sprintf("%s (linked from %s)", target, path)
}

// missingRegion returns nil when the region file exists, and otherwise an
// error wrapping fs.ErrNotExist that says the region is missing, where it
// was, and how large the journal says it was. blocks and blockSize come
// from the journal's metadata record.
func (s *Store) missingRegion(blocks uint64, blockSize uint32) error {
	_, err := os.Stat(s.regionPath())
	if !errors.Is(err, fs.ErrNotExist) {
		return nil // present, or an error the region's open reports
	}
	return fmt.Errorf("daxstore: open %s: the region is missing: %s does not exist, though the journal describes a "+
		"store of %d blocks of %d bytes whose data lived there (a reboot empties /dev/shm and other tmpfs); "+
		"restore the region file from a backup, or remove %s to start over: %w",
		s.dir, regionWhere(s.regionPath()), blocks, blockSize, s.dir, err)
}

// journalGoneHint is the advice for a directory without a journal: to
// create a store, unless a region file remains there, which init refuses
// to overwrite and which no journal describes any more.
func (s *Store) journalGoneHint() string {
	if _, err := os.Lstat(s.regionPath()); err == nil {
		return fmt.Sprintf("; the journal is missing but the region %s remains, and its keys cannot be read without "+
			"the journal: restore the journal from a backup, or remove the region to start over", regionWhere(s.regionPath()))
	}
	return "; create one with daxstore init"
}
