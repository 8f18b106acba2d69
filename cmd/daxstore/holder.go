package main

// Commands through the holder: when another process holds the store, ls,
// stat, get and check ask it over its admin socket, and put, rm, truncate,
// punch and zero do too when it accepts writes (dax.Options.AdminWrites,
// `mount --admin-writes`, `stress --admin-writes`).

import (
	"context"
	"errors"
	"fmt"

	"github.com/daxstore/daxstore/dax"
)

// withHolder runs local on the store opened as withStore does, or, when
// another process holds it and serves its admin socket, remote on a client
// of that process. writes says the command changes the store: it then goes
// through the holder only if the holder accepts writes, and otherwise
// fails with one line that says who holds the store and how to allow it.
func (c *cli) withHolder(ctx context.Context, writes bool, local func(s *dax.Store) error, remote func(a *dax.AdminClient) error) error {
	err := c.withStore(local)
	if !errors.Is(err, dax.ErrLocked) {
		return err
	}
	a, derr := dax.Dial(ctx, c.dir)
	if derr != nil {
		return err // nobody answers: the lock error says who holds the store
	}
	defer a.Close()
	if writes && !a.Writes() {
		return c.writesRefused(a.Pid())
	}
	err = remote(a)
	if errors.Is(err, dax.ErrAdminWrites) {
		return c.writesRefused(a.Pid())
	}
	return err
}

func (c *cli) writesRefused(pid int) error {
	return fmt.Errorf("store %s is locked by pid %d, which does not accept writes through its admin socket "+
		"(start it with --admin-writes, or open it with dax.Options.AdminWrites)", c.dir, pid)
}

// liveNote tells stderr that the answer came from the holder, for get,
// whose stdout is the value.
func (c *cli) liveNote(a *dax.AdminClient) {
	fmt.Fprintf(c.errOut, "live view of the process holding the store (pid %d)\n", a.Pid())
}
