package main

// rm: remove a key; its pinned blocks, if any, follow --policy.

import (
	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) rmCommand() *cobra.Command {
	var bf breakFlags
	cmd := &cobra.Command{
		Use: "rm KEY",
		Example: `  daxstore rm --dir /mnt/pmem/store logs/yesterday
  daxstore rm --dir /mnt/pmem/store --policy wait --timeout 10s logs/yesterday`,
		Short: "Remove KEY",
		Long: `rm removes KEY and frees its blocks. Blocks that a pin still references
are not reused: by default (--policy detach) they move to the busy list until
the last pin drops; --policy wait waits for the pins to go (up to --timeout),
and --policy fail refuses to remove a pinned key.`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, bo, err := bf.parse(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			return c.withHolder(ctx, true, func(s *dax.Store) error {
				return s.RemoveWith(ctx, args[0], bo)
			}, func(a *dax.AdminClient) error {
				return a.Remove(ctx, args[0], bo)
			})
		},
	}
	bf.register(cmd)
	return cmd
}
