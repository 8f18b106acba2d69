package main

// check: prove the store's invariants and list every violation.

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// checkReport is check's JSON output.
type checkReport struct {
	OK         bool     `json:"ok"`
	Violations []string `json:"violations,omitempty"`
	// Pid is set when the process holding the store ran the check (live
	// view), and Pause is then how long it held operations off for it.
	Pid   int           `json:"pid,omitempty"`
	Pause time.Duration `json:"pause_ns,omitempty"`
}

func (c *cli) checkCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use: "check",
		Example: `  daxstore check --dir /mnt/pmem/store
  daxstore check --dir /mnt/pmem/store --json`,
		Short: "Verify the store's invariants",
		Long: `check verifies that every data block is free, in exactly one key, or busy;
that extents do not overlap and lie inside their files; that names and inodes
match; and that memory equals the journal. It prints "ok", or the violations
and exits 1.`,
		Args: argsBetween(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var violations []string
			var pid int
			var pause time.Duration
			err := c.withHolder(cmd.Context(), false, func(s *dax.Store) error {
				err := s.Check()
				if errors.Is(err, dax.ErrCorrupt) {
					violations = splitViolations(err)
					return nil
				}
				return err
			}, func(a *dax.AdminClient) error {
				res, err := a.Check(cmd.Context())
				violations, pid, pause = res.Violations, a.Pid(), res.Pause
				return err
			})
			if err != nil {
				return err
			}
			r := checkReport{OK: len(violations) == 0, Violations: violations, Pid: pid, Pause: pause}
			if asJSON {
				if err := writeJSON(c.out, r); err != nil {
					return err
				}
			} else if r.OK {
				fmt.Fprintln(c.out, "ok")
			} else {
				for _, v := range violations {
					fmt.Fprintln(c.out, v)
				}
			}
			if !asJSON && pid > 0 {
				fmt.Fprintf(c.out, "checked by the process holding the store (pid %d, live view); it paused the store for %s\n",
					pid, pause)
			}
			if !r.OK {
				// The violations are on stdout; stderr gets the one line.
				return fmt.Errorf("check: %d violations in %s", len(violations), c.dir)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// splitViolations recovers the list from Check's error, which puts one
// violation on each line after its summary line.
func splitViolations(err error) []string {
	lines := strings.Split(err.Error(), "\n")
	var out []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = []string{err.Error()}
	}
	return out
}
