package main

// rm: remove a key; its pinned blocks, if any, follow --policy.

import (
	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) rmCommand() *cobra.Command {
	var bf breakFlags
	cmd := &cobra.Command{
		Use:   "rm KEY",
		Short: "Remove KEY",
		Args:  argsBetween(1, 1),
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
