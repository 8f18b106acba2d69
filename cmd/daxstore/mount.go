package main

// mount: serve the store as a FUSE file system in the foreground, holding
// it (and its admin socket) until the file system is unmounted.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/daxstore/daxstore/dax"
	"github.com/daxstore/daxstore/fusefs"
)

// unmountPatience bounds how long mount waits, after a lazy unmount of a
// mount still in use, for the kernel to let the file system go before it
// closes the store regardless.
const unmountPatience = 10 * time.Second

func (c *cli) mountCommand() *cobra.Command {
	var (
		policy     string
		allowOther bool
		debug      bool
		writes     bool
	)
	cmd := &cobra.Command{
		Use: "mount MOUNTPOINT",
		Example: `  daxstore mount --dir /mnt/pmem/store /mnt/keys
  daxstore mount --dir /mnt/pmem/store --policy wait /mnt/keys`,
		Short: "Serve the store as a file system at MOUNTPOINT (FUSE), in the foreground",
		Long: `mount serves the store as a FUSE file system at MOUNTPOINT until it is
unmounted: keys holding '/' appear as directories, and ordinary tools (ls, cp,
cat, dd, truncate, fallocate, mv, rm) work on its files. It runs in the
foreground and prints "mounted DIR at MOUNTPOINT" once the file system
serves. SIGINT or SIGTERM unmounts it; so does fusermount -u or umount from
outside, after which mount exits 0. While mounted it holds the store: busy
and pins ask it over the admin socket.

Hard links are refused (EPERM), as are symbolic links, device nodes and
FIFOs (EOPNOTSUPP). Truncate, hole punch, zero-range, rm and rename over a
file break pinned blocks as --policy says. Mounting needs root (which
mounts directly) or fusermount3.`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := dax.ParseBreakPolicy(policy)
			if err != nil {
				return err
			}
			return c.runMount(cmd.Context(), args[0], &dax.Options{BreakPolicy: p, AdminWrites: writes},
				fusefs.Options{AllowOther: allowOther, Debug: debug})
		},
	}
	cmd.Flags().StringVar(&policy, "policy", "detach",
		"blocks still pinned when a file is truncated, punched, zeroed, removed or replaced: detach, wait or fail")
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let other users use the mount (FUSE allow_other)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log every FUSE request and reply to stderr")
	cmd.Flags().BoolVar(&writes, "admin-writes", false,
		"let put, rm, truncate, punch and zero of this user go through the admin socket while mounted")
	// The unmount after a signal is worth waiting for: it lets go of the
	// mount point and closes the store.
	cmd.Annotations = map[string]string{reportsInterrupt: "yes"}
	return cmd
}

func (c *cli) runMount(ctx context.Context, mountpoint string, do *dax.Options, o fusefs.Options) (err error) {
	if fi, err := os.Stat(mountpoint); err != nil {
		return fmt.Errorf("mount: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("mount: %s is not a directory", mountpoint)
	}
	if err := c.requireStore(); err != nil {
		return err
	}
	do.RegionPath, do.MustExist, do.LockTimeout = c.region, true, c.wait
	do.Logger = log.New(c.errOut, "daxstore mount: ", log.LstdFlags)
	st, err := dax.OpenContext(ctx, c.dir, do)
	if err != nil {
		return err
	}
	defer func() {
		// Whatever the kernel still holds is gone with the mount, and pins
		// do not outlive their process: close regardless of them.
		if cerr := st.CloseWith(context.Background(), dax.CloseOptions{Force: true}); err == nil {
			err = cerr
		}
	}()
	o.Log = log.New(c.errOut, "daxstore mount: ", log.LstdFlags)
	o.UID, o.GID = uint32(os.Getuid()), uint32(os.Getgid())
	srv, err := fusefs.Mount(st, mountpoint, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "mounted %s at %s\n", c.dir, mountpoint)
	select {
	case <-srv.Done():
		return nil // unmounted from outside
	case <-ctx.Done():
	}
	uerr := srv.Unmount()
	if uerr == nil {
		return nil
	}
	// Still in use: detach it, so the mount point is free at once, and
	// give the kernel a while to let go of the files.
	o.Log.Printf("%v; detaching the mount instead", uerr)
	if err := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("mount: unmount %s: %w", mountpoint, err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), unmountPatience)
	defer cancel()
	if err := srv.WaitContext(wctx); err != nil {
		return fmt.Errorf("mount: %s is detached but still in use; closing the store anyway", mountpoint)
	}
	return nil
}
