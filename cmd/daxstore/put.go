package main

// put: store a value, read from a file or stdin, under a key in one atomic
// replace.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) putCommand() *cobra.Command {
	var bf breakFlags
	cmd := &cobra.Command{
		Use:   "put KEY [FILE|-]",
		Short: "Store the contents of FILE (default stdin) under KEY",
		Long: `put stores the contents of FILE, or of stdin when FILE is "-" or absent,
under KEY, replacing any earlier value atomically: after a crash KEY holds the
old or the new value, never a mix. Old blocks that pins still reference are
handled by --policy.`,
		Args: argsBetween(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, bo, err := bf.parse(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			src := "-"
			if len(args) == 2 {
				src = args[1]
			}
			value, err := c.readValue(src)
			if err != nil {
				return err
			}
			return c.withStore(func(s *dax.Store) error {
				return s.PutWith(ctx, args[0], value, bo)
			})
		},
	}
	bf.register(cmd)
	return cmd
}

// readValue reads the whole value from the file src, or from stdin for "-".
// It refuses to wait for a value typed at a terminal.
func (c *cli) readValue(src string) ([]byte, error) {
	if src != "-" {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read value: %w", err)
		}
		return b, nil
	}
	if isTerminal(c.in) {
		return nil, errors.New("put: stdin is a terminal; pass FILE or pipe the value in")
	}
	b, err := io.ReadAll(c.in)
	if err != nil {
		return nil, fmt.Errorf("read value from stdin: %w", err)
	}
	return b, nil
}
