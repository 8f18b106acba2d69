package main

// put: store a value, read from a file or stdin, under a key in one atomic
// replace, streaming it into the store in bounded memory.

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
	var sizeFlag string
	cmd := &cobra.Command{
		Use: "put KEY [FILE|-]",
		Example: `  daxstore put --dir /mnt/pmem/store logs/today /var/log/app.log
  echo hello | daxstore put --dir /mnt/pmem/store greeting
  daxstore put --dir /mnt/pmem/store --wait 30s big.bin big.bin`,
		Short: "Store the contents of FILE (default stdin) under KEY",
		Long: `put stores the contents of FILE, or of stdin when FILE is "-" or absent,
under KEY, replacing any earlier value atomically: after a crash KEY holds the
old or the new value, never a mix. Old blocks that pins still reference are
handled by --policy.

The value streams into the store in chunks of 1 MiB. When its size is known
(FILE or stdin is a regular file, or --size says it) put checks for space
before reading any of it; otherwise a value too large for the region fails
once the region is full. Either way a failed put leaves the old value.`,
		Args: argsBetween(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel, bo, err := bf.parse(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			size := int64(-1)
			if sizeFlag != "" {
				if size, err = parseSize("--size", sizeFlag); err != nil {
					return usageErrorf("%v", err)
				}
			}
			src := "-"
			if len(args) == 2 {
				src = args[1]
			}
			r, closeSrc, err := c.openValue(src)
			if err != nil {
				return err
			}
			defer closeSrc()
			if known := regularSize(r); known >= 0 {
				if size >= 0 && size != known {
					return usageErrorf("--size %d, but the input holds %d bytes", size, known)
				}
				size = known
			}
			if size >= 0 {
				r = &exactReader{r: r, left: size}
			}
			return c.withHolder(ctx, true, func(s *dax.Store) error {
				return s.PutReader(ctx, args[0], r, size, bo)
			}, func(a *dax.AdminClient) error {
				return a.PutReader(ctx, args[0], r, size, bo)
			})
		},
	}
	bf.register(cmd)
	cmd.Flags().StringVar(&sizeFlag, "size", "",
		"the exact size of the value (e.g. 200MiB), so put checks for space before reading a pipe")
	return cmd
}

// openValue opens the file src, or returns stdin for "-". It refuses to
// wait for a value typed at a terminal.
func (c *cli) openValue(src string) (io.Reader, func(), error) {
	if src != "-" {
		f, err := os.Open(src)
		if err != nil {
			return nil, nil, fmt.Errorf("read value: %w", err)
		}
		return f, func() { _ = f.Close() }, nil
	}
	if isTerminal(c.in) {
		return nil, nil, errors.New("put: stdin is a terminal; pass FILE or pipe the value in")
	}
	return c.in, func() {}, nil
}

// regularSize returns how many bytes r has left to read when it is a
// regular file, or -1.
func regularSize(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return -1
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil || pos > fi.Size() {
		return -1
	}
	return fi.Size() - pos
}

// exactReader reads exactly left bytes from r. Along with the last of them
// it makes sure r has nothing more: input longer than its declared size
// (or a file that grew) fails the put before it commits, instead of being
// cut short silently.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // the error to return from now on
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.left)]
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if e.left > 0 || n == 0 {
		return n, err
	}
	var one [1]byte
	if m, _ := io.ReadFull(e.r, one[:]); m > 0 {
		// Hold the last byte back, so the reader asks again and gets the
		// error: a reader that has all it asked for ignores an error.
		e.err = errors.New("the input holds more bytes than its declared size")
		return n - 1, nil
	}
	return n, nil
}
