package dax

import (
	"bytes"
	"testing"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("abcdefgh"), 3000)
	if err := s.Put("k", val); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("k")
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get: %v %d", err, len(got))
	}
	f, _ := s.Open("k")
	p, err := f.Pin(100, 9000, PinOptions{Label: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.PunchHole(0, 24000); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("busy %+v", s.Busy())
	got, _ = s.Get("k")
	t.Logf("pinned bytes %d runs, first %q", len(p.Bytes()), p.Bytes()[0][:8])
	for _, b := range got {
		if b != 0 {
			t.Fatal("not zero")
		}
	}
	if err := s.Close(); err == nil {
		t.Fatal("close with pin succeeded")
	}
	if err := p.Unpin(); err != nil {
		t.Fatal(err)
	}
	if err := p.Unpin(); err == nil {
		t.Fatal("double unpin")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	t.Logf("%+v", st)
	s.Close()
}
