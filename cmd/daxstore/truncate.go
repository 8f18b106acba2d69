package main

// truncate: set a key's size; blocks cut off that pins still reference
// follow --policy.

import (
	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) truncateCommand() *cobra.Command {
	var bf breakFlags
	cmd := &cobra.Command{
		Use: "truncate KEY SIZE",
		Example: `  daxstore truncate --dir /mnt/pmem/store logs/today 1MiB
  daxstore truncate --dir /mnt/pmem/store --policy wait logs/today 0`,
		Short: "Set the size of KEY: growing adds a hole, shrinking drops the tail",
		Long: `truncate sets the size of KEY to SIZE (a byte count such as 0 or 64KiB).
Growing adds a hole that reads as zeros and takes no blocks; shrinking drops
the tail, and its blocks follow --policy as for rm: detached to the busy list
while pinned (the default), waited for, or refused.`,
		Args: argsBetween(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			size, err := parseSize("size", args[1])
			if err != nil {
				return err
			}
			ctx, cancel, bo, err := bf.parse(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			return c.withHolder(ctx, true, func(s *dax.Store) error {
				return withStoreKey(s, args[0], func(f *dax.File) error { return f.TruncateWith(ctx, size, bo) })
			}, func(a *dax.AdminClient) error {
				return a.Truncate(ctx, args[0], size, bo)
			})
		},
	}
	bf.register(cmd)
	return cmd
}

// withStoreKey opens key in s, runs fn, and closes the key.
func withStoreKey(s *dax.Store, key string, fn func(f *dax.File) error) (err error) {
	f, err := s.Open(key)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return fn(f)
}
