package main

// stat: one key's FileInfo, or without a key the store's statistics.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) statCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "stat [KEY]",
		Example: `  daxstore stat --dir /mnt/pmem/store
  daxstore stat --dir /mnt/pmem/store logs/today --json`,
		Short: "Describe KEY, or without KEY the store",
		Long: `stat describes KEY: size, blocks, modification time. Without KEY it shows
the store's statistics; while another process holds the store they come live
from that process.`,
		Args: argsBetween(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				snap, err := c.snapshot(cmd)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(c.out, snap.Stats)
				}
				return c.printStats(snap)
			}
			var fi dax.FileInfo
			var bs int64
			holder := 0
			err := c.withHolder(cmd.Context(), false, func(s *dax.Store) (err error) {
				bs = s.BlockSize()
				fi, err = s.Stat(args[0])
				return err
			}, func(a *dax.AdminClient) (err error) {
				bs, holder = a.BlockSize(), a.Pid()
				fi, err = a.Stat(cmd.Context(), args[0])
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.out, fi)
			}
			tw := newTable(c.out)
			fmt.Fprintf(tw, "key\t%s\n", displayKey(fi.Key))
			fmt.Fprintf(tw, "inode\t%d\n", fi.Ino)
			fmt.Fprintf(tw, "size\t%d bytes (%s)\n", fi.Size, formatBytes(fi.Size))
			fmt.Fprintf(tw, "blocks\t%s\n", formatBlocks(fi.Blocks, bs))
			fmt.Fprintf(tw, "modified\t%s\n", formatTime(fi.ModTime))
			if holder > 0 {
				fmt.Fprintf(tw, "held by\tpid %d (live view)\n", holder)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (c *cli) printStats(snap *dax.Snapshot) error {
	st := snap.Stats
	bs := st.BlockSize
	tw := newTable(c.out)
	fmt.Fprintf(tw, "store\t%s\n", c.dir)
	if snap.Live && snap.Pid > 0 {
		fmt.Fprintf(tw, "held by\tpid %d (live view)\n", snap.Pid)
	}
	if st.Region != "" {
		fmt.Fprintf(tw, "region\t%s\n", st.Region)
		fmt.Fprintf(tw, "dax\t%s\n", yesNo(st.DAX))
		if st.FlushMethod != "" {
			fmt.Fprintf(tw, "flush\t%s\n", describeFlush(st.DAX, st.FlushMethod))
		}
	}
	fmt.Fprintf(tw, "block size\t%s\n", formatBytes(bs))
	fmt.Fprintf(tw, "data blocks\t%s\n", formatBlocks(st.DataBlocks, bs))
	fmt.Fprintf(tw, "used blocks\t%s\n", formatBlocks(st.UsedBlocks, bs))
	fmt.Fprintf(tw, "busy blocks\t%s\n", formatBlocks(st.BusyBlocks, bs))
	fmt.Fprintf(tw, "free blocks\t%s\n", formatBlocks(st.FreeBlocks, bs))
	fmt.Fprintf(tw, "files\t%d\n", st.Files)
	fmt.Fprintf(tw, "pins\t%d\n", st.Pins)
	fmt.Fprintf(tw, "pinned blocks\t%s\n", formatBlocks(st.PinnedBlocks, bs))
	fmt.Fprintf(tw, "windows\t%d taking %s; %s since open\n", st.Windows, plural(st.WindowPieces, "mapping"),
		plural(int(st.WindowRemaps), "remap"))
	fmt.Fprintf(tw, "waiters\t%d\n", st.Waiters)
	fmt.Fprintf(tw, "pending release\t%d blocks\n", st.PendingRelease)
	fmt.Fprintf(tw, "released\t%d blocks in %d batches\n", st.Released, st.ReleaseBatches)
	fmt.Fprintf(tw, "detached\t%d blocks\n", st.Detached)
	fmt.Fprintf(tw, "alloc waits\t%d\n", st.AllocWaits)
	fmt.Fprintf(tw, "ref table\t%s\n", formatBytes(st.RefTableBytes))
	return tw.Flush()
}
