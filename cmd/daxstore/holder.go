package main

// Commands through the holder: when another process holds the store, ls,
// stat, get and check ask it over its admin socket, and put, rm, truncate,
// punch and zero do too when it accepts writes (dax.Options.AdminWrites,
// `mount --admin-writes`, `stress --admin-writes`).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// withHolder runs local on the store opened as withStore does, or, when
// another process holds it and serves its admin socket, remote on a client
// of that process. writes says the command changes the store: it then goes
// through the holder only if the holder accepts writes.
//
// The order matters. A holder that answers (an application, a mount) is
// used at once rather than after --wait, since it may hold the store for
// months. A holder that does not answer, or refuses writes, may be another
// short-lived command: then the lock is waited for, --wait at most, and
// only if it is still held does a refused write fail, with one line that
// says who holds the store and how to allow it.
func (c *cli) withHolder(ctx context.Context, writes bool, local func(s *dax.Store) error, remote func(a *dax.AdminClient) error) error {
	err := c.withStoreWaiting(0, local)
	if !errors.Is(err, dax.ErrLocked) {
		return err
	}
	refusedBy := 0
	if a, derr := dax.Dial(ctx, c.dir); derr == nil {
		if !writes || a.Writes() {
			err = remote(a)
			a.Close()
			if !errors.Is(err, dax.ErrAdminWrites) {
				return err
			}
		} else {
			a.Close()
		}
		refusedBy = a.Pid()
	}
	if c.wait > 0 {
		err = c.withStore(local)
	}
	if errors.Is(err, dax.ErrLocked) && refusedBy != 0 {
		return c.writesRefused(refusedBy, c.wait)
	}
	return err
}

// writesRefused is the one line for a write the holder will not take;
// waited, when positive, is how long the lock was waited for first.
func (c *cli) writesRefused(pid int, waited time.Duration) error {
	held := fmt.Sprintf("store %s is locked by pid %d", c.dir, pid)
	if waited > 0 {
		held += fmt.Sprintf(" (waited %v)", waited)
	}
	return fmt.Errorf("%s, which does not accept writes through its admin socket "+
		"(start it with --admin-writes, or open it with dax.Options.AdminWrites)", held)
}

// liveNote tells stderr that the answer came from the holder, for get,
// whose stdout is the value.
func (c *cli) liveNote(a *dax.AdminClient) {
	fmt.Fprintf(c.errOut, "live view of the process holding the store (pid %d)\n", a.Pid())
}
