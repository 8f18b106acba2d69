package main

// ls: list keys with their sizes, blocks and modification times.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) lsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "ls [PREFIX]",
		Example: `  daxstore ls --dir /mnt/pmem/store
  daxstore ls --dir /mnt/pmem/store logs/ --json`,
		Short: "List the keys that start with PREFIX",
		Long: `ls lists the keys that start with PREFIX (every key without one), in key
order, with each one's size and the blocks it uses. It opens the store
read-only.`,
		Args: argsBetween(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			var files []dax.FileInfo
			var bs int64
			err := c.withHolder(cmd.Context(), false, func(s *dax.Store) (err error) {
				bs = s.BlockSize()
				files, err = s.List(prefix)
				return err
			}, func(a *dax.AdminClient) (err error) {
				if !asJSON {
					fmt.Fprintf(c.out, "live view of the process holding the store (pid %d)\n", a.Pid())
				}
				bs = a.BlockSize()
				files, err = a.List(cmd.Context(), prefix)
				return err
			})
			if err != nil {
				return err
			}
			if files == nil {
				files = []dax.FileInfo{}
			}
			if asJSON {
				return writeJSON(c.out, files)
			}
			return printFiles(c, files, bs)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printFiles(c *cli, files []dax.FileInfo, bs int64) error {
	tw := newTable(c.out)
	fmt.Fprintln(tw, "KEY\tSIZE\tBLOCKS\tMODIFIED")
	for _, f := range files {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", displayKey(f.Key), formatBytes(f.Size), formatBlocks(f.Blocks, bs), formatTime(f.ModTime))
	}
	return tw.Flush()
}
