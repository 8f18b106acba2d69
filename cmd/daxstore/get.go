package main

// get: write a key's value to stdout, byte for byte, in bounded memory.

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/daxstore/daxstore/dax"
)

// getChunk is how many bytes get copies at a time, and the length of the
// run of zeros it writes for holes: the memory get needs, whatever the
// size of the value.
const getChunk = 1 << 20

func (c *cli) getCommand() *cobra.Command {
	return &cobra.Command{
		Use: "get KEY",
		Example: `  daxstore get --dir /mnt/pmem/store logs/today > today.log
  daxstore get --dir /mnt/pmem/store config.json | jq .`,
		Short: "Write the value of KEY to stdout",
		Long: `get writes the value of KEY to stdout. It copies the data in chunks of 1 MiB
and skips holes: when stdout is a regular file they stay holes there,
otherwise they are written as zeros. A sparse key of any size takes little
memory. While another process holds the store, that process streams the
value over its admin socket (holes arrive as zeros).`,
		Args: argsBetween(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withHolder(cmd.Context(), false, func(s *dax.Store) error {
				return withStoreKey(s, args[0], func(f *dax.File) error { return copySparse(c.out, f) })
			}, func(a *dax.AdminClient) error {
				size, r, err := a.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				c.liveNote(a)
				defer r.Close()
				n, err := io.CopyBuffer(c.out, r, make([]byte, getChunk))
				if err == nil && n != size {
					err = fmt.Errorf("get %q: the value ended at %d bytes, %d expected", args[0], n, size)
				}
				return err
			})
		},
	}
}

// copySparse writes the whole of f to w, reading only its data runs.
func copySparse(w io.Writer, f *dax.File) error {
	size, err := f.Size()
	if err != nil {
		return err
	}
	out := newSparseWriter(w)
	buf := make([]byte, min(getChunk, size))
	for off := int64(0); off < size; {
		data, err := f.SeekData(off)
		if err == io.EOF {
			data = size
		} else if err != nil {
			return err
		}
		if err := out.skip(data - off); err != nil {
			return err
		}
		off = data
		if off == size {
			break
		}
		hole, err := f.SeekHole(off)
		if err != nil {
			return err
		}
		for off < hole {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-off)], off)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return werr
				}
				off += int64(n)
			}
			if err == io.EOF {
				return fmt.Errorf("get %q: the value ended at %d bytes, %d expected", f.Key(), off, size)
			}
			if err != nil {
				return err
			}
		}
	}
	return out.finish()
}

// zeros is what holes are written as when stdout cannot hold a hole.
var zeros = make([]byte, getChunk)

// sparseWriter writes data, and holes either as zeros or, on a regular file
// it may seek in, as holes: it seeks past them and sets the file's size at
// the end.
type sparseWriter struct {
	w       io.Writer
	file    *os.File // set when holes can be left as holes in it
	pending int64    // bytes of hole skipped in file but not yet written past
}

func newSparseWriter(w io.Writer) *sparseWriter {
	sw := &sparseWriter{w: w}
	if f, ok := w.(*os.File); ok && canSeekHoles(f) {
		sw.file = f
	}
	return sw
}

// canSeekHoles reports whether seeking past a hole in f leaves zeros: f is
// a regular file, not in append mode (where writes ignore the offset), and
// its offset is at or past its end, so nothing old lies where get skips.
func canSeekHoles(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || flags&unix.O_APPEND != 0 {
		return false
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	return err == nil && pos >= fi.Size()
}

func (sw *sparseWriter) Write(p []byte) (int, error) {
	if sw.pending > 0 {
		if _, err := sw.file.Seek(sw.pending, io.SeekCurrent); err != nil {
			return 0, err
		}
		sw.pending = 0
	}
	return sw.w.Write(p)
}

// skip outputs n zero bytes.
func (sw *sparseWriter) skip(n int64) error {
	if sw.file != nil {
		sw.pending += n
		return nil
	}
	for n > 0 {
		k, err := sw.w.Write(zeros[:min(n, int64(len(zeros)))])
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

// finish extends a regular file over a hole at the end of the value.
func (sw *sparseWriter) finish() error {
	if sw.pending == 0 {
		return nil
	}
	pos, err := sw.file.Seek(sw.pending, io.SeekCurrent)
	if err != nil {
		return err
	}
	sw.pending = 0
	if err := sw.file.Truncate(pos); err != nil {
		return fmt.Errorf("get: extend stdout over the final hole: %w", err)
	}
	return nil
}
