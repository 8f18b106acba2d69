package main

// get: write a key's value to stdout, byte for byte.

import (
	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Write the value of KEY to stdout",
		Args:  argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var value []byte
			err := c.withStore(func(s *dax.Store) (err error) {
				value, err = s.Get(args[0])
				return err
			})
			if err != nil {
				return err
			}
			_, err = c.out.Write(value)
			return err
		},
	}
}
