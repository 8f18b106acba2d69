package main

// punch and zero: make a byte range of a key read as zeros, by unmapping its
// blocks (punch) or by keeping them allocated as unwritten (zero). Blocks
// that pins still reference follow --policy.

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) punchCommand() *cobra.Command {
	return c.rangeCommand("punch", "Punch a hole: unmap bytes [OFFSET, OFFSET+LENGTH) of KEY",
		func(ctx context.Context, f *dax.File, off, n int64, bo dax.BreakOptions) error {
			return f.PunchHoleWith(ctx, off, n, bo)
		}, (*dax.AdminClient).PunchHole)
}

func (c *cli) zeroCommand() *cobra.Command {
	return c.rangeCommand("zero", "Zero bytes [OFFSET, OFFSET+LENGTH) of KEY, keeping its blocks allocated",
		func(ctx context.Context, f *dax.File, off, n int64, bo dax.BreakOptions) error {
			return f.ZeroRangeWith(ctx, off, n, bo)
		}, (*dax.AdminClient).ZeroRange)
}

// rangeCommand builds a command KEY OFFSET LENGTH that runs op on the range.
func (c *cli) rangeCommand(name, short string,
	op func(ctx context.Context, f *dax.File, off, n int64, bo dax.BreakOptions) error,
	remote func(a *dax.AdminClient, ctx context.Context, key string, off, n int64, bo dax.BreakOptions) error) *cobra.Command {
	var bf breakFlags
	cmd := &cobra.Command{
		Use: name + " KEY OFFSET LENGTH",
		Example: "  daxstore " + name + " --dir /mnt/pmem/store logs/today 0 64KiB\n" +
			"  daxstore " + name + " --dir /mnt/pmem/store --policy wait --timeout 5s logs/today 8192 4096",
		Short: short,
		Long: short + `.
The size does not change; the part of the range past the end is ignored.
OFFSET and LENGTH are byte counts such as 8192 or 64KiB.`,
		Args: argsBetween(3, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			off, err := parseSize("offset", args[1])
			if err != nil {
				return err
			}
			n, err := parseSize("length", args[2])
			if err != nil {
				return err
			}
			ctx, cancel, bo, err := bf.parse(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			return c.withHolder(ctx, true, func(s *dax.Store) error {
				return withStoreKey(s, args[0], func(f *dax.File) error { return op(ctx, f, off, n, bo) })
			}, func(a *dax.AdminClient) error {
				return remote(a, ctx, args[0], off, n, bo)
			})
		},
	}
	bf.register(cmd)
	return cmd
}
