package test

// The sparse test exists because the model test keeps whole files in
// memory and so cannot reach offsets near MaxFileSize: here huge, sparse
// files prove that block arithmetic at the edge of the address space
// neither overflows nor allocates the holes, and that the edge itself is
// enforced.

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/daxstore/daxstore/dax"
)

func TestSparseFarOffsets(t *testing.T) {
	for _, bs := range []uint32{512, 4096} {
		s, err := dax.Open(t.TempDir(), &dax.Options{Size: 256 * int64(bs), BlockSize: bs, NoAdminSocket: true})
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Create("far")
		if err != nil {
			t.Fatal(err)
		}
		const top = dax.MaxFileSize
		blocks := func(want uint64) {
			t.Helper()
			fi, err := s.Stat("far")
			if err != nil {
				t.Fatal(err)
			}
			if fi.Blocks != want {
				t.Fatalf("block size %d: the file owns %d blocks, want %d", bs, fi.Blocks, want)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
		}
		steps := []struct {
			name string
			run  func() error
		}{
			{"a write that ends at the largest size succeeds", func() error {
				if _, err := f.WriteAt([]byte("edge"), top-4); err != nil {
					return err
				}
				blocks(1)
				p := make([]byte, 8)
				n, err := f.ReadAt(p, top-8)
				if n != 8 || err != nil || !bytes.Equal(p, []byte("\x00\x00\x00\x00edge")) {
					t.Fatalf("read at the edge: %d %v %q", n, err, p)
				}
				return nil
			}},
			{"a write past the largest size fails and changes nothing", func() error {
				if _, err := f.WriteAt([]byte("xy"), top-1); !errors.Is(err, dax.ErrInvalidRange) {
					t.Fatalf("write past the edge: %v, want ErrInvalidRange", err)
				}
				if sz, _ := f.Size(); sz != top {
					t.Fatalf("size %d after a refused write, want %d", sz, int64(top))
				}
				blocks(1)
				return nil
			}},
			{"reads at and across the end return the bytes there and io.EOF", func() error {
				if n, err := f.ReadAt(make([]byte, 1), top); n != 0 || err != io.EOF {
					t.Fatalf("read at the end: %d %v", n, err)
				}
				p := make([]byte, 16)
				if n, err := f.ReadAt(p, top-4); n != 4 || err != io.EOF || string(p[:4]) != "edge" {
					t.Fatalf("read across the end: %d %v %q", n, err, p[:n])
				}
				return nil
			}},
			{"a read in the middle of the hole reads zeros", func() error {
				p := bytes.Repeat([]byte{0xff}, 3*int(bs))
				if _, err := f.ReadAt(p, top/2+7); err != nil {
					return err
				}
				if bytes.Count(p, []byte{0}) != len(p) {
					t.Fatalf("hole reads non-zero bytes")
				}
				return nil
			}},
			{"a pin at the edge holds the written bytes", func() error {
				p, err := f.Pin(top-4, 4, dax.PinOptions{Label: "edge"})
				if err != nil {
					return err
				}
				if got := bytes.Join(p.Bytes(), nil); string(got) != "edge" {
					t.Fatalf("pin at the edge: %q", got)
				}
				if err := f.PunchHole(0, top); err != nil {
					return err
				}
				blocks(0)
				if got := bytes.Join(p.Bytes(), nil); string(got) != "edge" {
					t.Fatalf("pin lost its bytes to a punch: %q", got)
				}
				return p.Unpin()
			}},
			{"allocating the last blocks and zeroing them keeps them", func() error {
				if err := f.Allocate(top-2*int64(bs), 2*int64(bs)); err != nil {
					return err
				}
				blocks(2)
				if err := f.ZeroRange(0, top); err != nil {
					return err
				}
				blocks(2)
				return nil
			}},
			{"truncating to zero and back leaves a hole", func() error {
				if err := f.Truncate(0); err != nil {
					return err
				}
				blocks(0)
				if err := f.Truncate(top); err != nil {
					return err
				}
				blocks(0)
				if err := f.Truncate(top + 1); !errors.Is(err, dax.ErrInvalidRange) {
					t.Fatalf("truncate past the edge: %v", err)
				}
				return nil
			}},
		}
		for _, st := range steps {
			if err := st.run(); err != nil {
				t.Fatalf("block size %d: %s: %v", bs, st.name, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
