package main

// The --policy and --timeout flags of the layout-breaking commands (rm,
// truncate, punch, zero, put over a key): what to do with blocks that pins
// still reference.

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
)

// breakFlags are a layout-breaking command's policy flags.
type breakFlags struct {
	policy  string
	timeout time.Duration
}

func (b *breakFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&b.policy, "policy", "detach",
		"blocks still pinned: detach (move to the busy list), wait (until released) or fail")
	cmd.Flags().DurationVar(&b.timeout, "timeout", 0, "with --policy wait: give up after this long (default: wait until interrupted)")
}

// parse checks the flags and returns the operation's context (bounded by
// --timeout), its cancel function and the break options.
func (b *breakFlags) parse(ctx context.Context) (context.Context, context.CancelFunc, dax.BreakOptions, error) {
	p, err := dax.ParseBreakPolicy(b.policy)
	if err != nil {
		return nil, nil, dax.BreakOptions{}, err
	}
	if b.timeout < 0 {
		return nil, nil, dax.BreakOptions{}, errors.New("invalid --timeout: must not be negative")
	}
	if b.timeout > 0 && p != dax.PolicyWait {
		return nil, nil, dax.BreakOptions{}, errors.New("--timeout applies only to --policy wait")
	}
	cancel := context.CancelFunc(func() {})
	if b.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
	}
	return ctx, cancel, dax.BreakOptions{Policy: p}, nil
}
