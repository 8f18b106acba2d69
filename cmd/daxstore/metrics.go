package main

// metrics: the store's metrics in the Prometheus text exposition format,
// from the process holding the store when there is one.

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

func (c *cli) metricsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "metrics",
		Short: "Print the store's metrics in the Prometheus text format",
		Long: `metrics prints the store's metrics in the Prometheus text exposition format
(the README lists them). When a process holds the store they come from it,
over its admin socket (GET /metrics), with every counter since it opened the
store: a live view. Otherwise the store is opened read-only and its space,
files and busy extents are printed once; its counters are then zero. The
first line is a comment saying which of the two it is; the parser ignores it.
A scraper can read the socket itself:

  curl --unix-socket /mnt/pmem/store/admin.sock http://daxstore/metrics`,
		Example: `  daxstore metrics --dir /mnt/pmem/store
  DAXSTORE_DIR=/mnt/pmem/store daxstore metrics | grep daxstore_busy`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.requireStore(); err != nil {
				return err
			}
			var buf bytes.Buffer
			live, err := dax.Metrics(cmd.Context(), c.dir, &buf)
			if err != nil {
				return err
			}
			if live {
				fmt.Fprintln(c.out, "# daxstore: live view, from the process holding the store")
			} else {
				fmt.Fprintln(c.out, "# daxstore: nobody holds the store; opened read-only, counters are zero")
			}
			_, err = c.out.Write(buf.Bytes())
			return err
		},
	}
}
