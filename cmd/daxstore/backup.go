package main

// backup: a consistent, sparse copy of the store, taken while it is in use.

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// backupReport is backup's JSON output.
type backupReport struct {
	Dest        string `json:"dest"`
	Live        bool   `json:"live"`          // written by the process holding the store
	Pid         int    `json:"pid,omitempty"` // that process
	Files       int64  `json:"files"`
	RegionBytes int64  `json:"region_bytes"`
	CopiedBytes int64  `json:"copied_bytes"`
	BusyBlocks  uint64 `json:"busy_blocks_skipped"`
	HeldBlocks  uint64 `json:"held_blocks"`
	PauseNs     int64  `json:"longest_writer_stall_ns"`
	ElapsedNs   int64  `json:"elapsed_ns"`
}

func (c *cli) backupCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "backup DEST",
		Short: "Copy the store, consistently, while it is in use",
		Long: `backup writes a copy of the store into DEST (a missing or empty directory): the
journal as of one instant and the file blocks it references, in a sparse region
of the same size, so a copy of a 64 GiB region with 1 GiB used takes about
1 GiB. The copy is a normal store: open it with --dir DEST.

When another process holds the store, that process writes the copy (DEST must
then be a path on this machine that it can write); writers there are held off
only while the checkpoint is taken, and backup prints that longest stall. A
key replaced, removed or punched during the backup is copied as it was at the
checkpoint; bytes written in place during it may or may not be in the copy.
Interrupting backup removes the partial copy.`,
		Example: `  daxstore backup --dir /mnt/pmem/store /backup/store-$(date +%F)
  daxstore backup --dir /mnt/pmem/store --json /backup/store`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.requireStore(); err != nil {
				return err
			}
			dest := args[0]
			ctx := cmd.Context()
			var st dax.BackupStats
			live := false
			s, err := dax.Open(c.dir, &dax.Options{RegionPath: c.region, ReadOnly: true})
			switch {
			case errors.Is(err, dax.ErrLocked):
				live = true
				st, err = dax.BackupLive(ctx, c.dir, dest)
			case err == nil:
				stop := startProgress(c.errOut, c.name)
				st, err = s.Backup(ctx, dest)
				stop()
				if cerr := s.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return err
			}
			r := backupReport{Dest: dest, Live: live, Pid: st.Pid, Files: st.Files, RegionBytes: st.RegionBytes,
				CopiedBytes: st.CopiedBytes, BusyBlocks: st.BusyBlocks, HeldBlocks: st.HeldBlocks,
				PauseNs: int64(st.Pause), ElapsedNs: int64(st.Elapsed)}
			if asJSON {
				return writeJSON(c.out, r)
			}
			via := "the store opened read-only"
			if live {
				via = fmt.Sprintf("live view: written by pid %d, which holds the store", st.Pid)
			}
			fmt.Fprintf(c.out, "backup of %s in %s (%s)\n", c.dir, dest, via)
			fmt.Fprintf(c.out, "  %d files, %s copied into a sparse region of %s; %d busy blocks skipped\n",
				st.Files, formatBytes(st.CopiedBytes), formatBytes(st.RegionBytes), st.BusyBlocks)
			fmt.Fprintf(c.out, "  longest writer stall %v, %d blocks held from reuse during the copy, took %v\n",
				st.Pause.Round(time.Microsecond), st.HeldBlocks, st.Elapsed.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
