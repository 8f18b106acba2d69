package main

// init: create a store, and nothing else. It is the only command that may
// create one, so a typo in --dir never leaves a fresh 1 GiB region behind.

import (
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// Block size bounds, as dax.Options documents them.
const (
	minBlockSize = 512
	maxBlockSize = 1 << 20
)

func (c *cli) initCommand() *cobra.Command {
	var (
		size, blockSize string
		preallocate     bool
	)
	cmd := &cobra.Command{
		Use: "init",
		Example: `  daxstore init --dir ./store --size 64MiB
  daxstore init --dir /var/lib/app/store --region /mnt/pmem/app.region --size 16GiB --preallocate`,
		Short: "Create a store in --dir",
		Long: `init creates an empty store: the region file (--region, default DIR/region)
and the journal in DIR/journal. It fails if DIR already holds a store or the
region file exists. With --region, DIR/region becomes a symbolic link to it,
so later commands find the region without --region.

The region file is sparse: it takes space (RAM on tmpfs) as the store uses
it, so a 64GiB region costs nothing until written, and a write that finds
its filesystem full fails with "no space left". --preallocate allocates the
whole region now instead, and fails if the filesystem cannot hold it.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runInit(size, blockSize, preallocate)
		},
	}
	cmd.Flags().StringVar(&size, "size", "1GiB", "region size, e.g. 64MiB, 1GiB")
	cmd.Flags().StringVar(&blockSize, "block-size", "4096", "block size: a power of two from 512 to 1MiB")
	cmd.Flags().BoolVar(&preallocate, "preallocate", false, "allocate the whole region file now, not as it is used")
	return cmd
}

func (c *cli) runInit(sizeArg, blockSizeArg string, preallocate bool) error {
	size, err := parseSize("size", sizeArg)
	if err != nil {
		return err
	}
	bs, err := parseSize("block size", blockSizeArg)
	if err != nil {
		return err
	}
	if bs < minBlockSize || bs > maxBlockSize || bits.OnesCount64(uint64(bs)) != 1 {
		return fmt.Errorf("invalid block size %q: must be a power of two from 512 to 1MiB", blockSizeArg)
	}
	if size < 2*bs {
		return fmt.Errorf("invalid size %q: a region needs at least 2 blocks of %d bytes (%d bytes)", sizeArg, bs, 2*bs)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "journal")); err == nil {
		return fmt.Errorf("store already exists in %s", c.dir)
	}
	link, err := filepath.Abs(filepath.Join(c.dir, "region"))
	if err != nil {
		return fmt.Errorf("store %s: %w", c.dir, err)
	}
	region := link
	if c.region != "" {
		if region, err = filepath.Abs(c.region); err != nil {
			return fmt.Errorf("region %s: %w", c.region, err)
		}
	}
	for _, p := range []string{region, link} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("region file %s already exists; remove it or choose another --region", p)
		}
	}

	undo := c.snapshotDir()
	s, err := dax.Open(c.dir, &dax.Options{Size: size, BlockSize: uint32(bs), RegionPath: region, NoAdminSocket: true,
		Preallocate: preallocate})
	if err != nil {
		if !errors.Is(err, dax.ErrLocked) {
			// Another init holding the lock owns what it created; ours is
			// only what appeared before we failed.
			undo()
		}
		return err
	}
	st, err := s.Stats()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if region != link {
		if err := os.Symlink(region, link); err != nil {
			return fmt.Errorf("store created, but linking %s to the region failed (pass --region %s to every command): %w",
				link, region, err)
		}
	}
	space := "allocated as used"
	if preallocate {
		space = "preallocated"
	}
	if rounded := size / bs * bs; rounded != size {
		// The region holds whole blocks only: say so rather than let the
		// figures below differ silently from what was asked for.
		fmt.Fprintf(c.out, "rounded --size %s down to %d bytes (%s), a whole number of %d-byte blocks\n",
			sizeArg, rounded, formatBytes(rounded), bs)
	}
	fmt.Fprintf(c.out, "created store in %s: region %s, %s in %d data blocks of %s (%s), dax: %s\n",
		c.dir, region, formatBytes(int64(st.DataBlocks)*st.BlockSize), st.DataBlocks, formatBytes(st.BlockSize), space, yesNo(st.DAX))
	return nil
}

// snapshotDir records what c.dir holds now and returns a function that
// removes whatever appeared since: the whole directory if init created it.
// A failed init thus leaves the directory as it found it.
func (c *cli) snapshotDir() (undo func()) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return func() { _ = os.RemoveAll(c.dir) }
	}
	if err != nil {
		return func() {}
	}
	before := make(map[string]bool, len(entries))
	for _, e := range entries {
		before[e.Name()] = true
	}
	return func() {
		after, _ := os.ReadDir(c.dir)
		for _, e := range after {
			if !before[e.Name()] {
				_ = os.RemoveAll(filepath.Join(c.dir, e.Name()))
			}
		}
	}
}
