package main

// The pins table: pins and both kinds of window, each with its mode and,
// for a window, the mappings it takes.

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daxstore/daxstore/dax"
)

func TestPinsTableShowsEachModeAndTheMappingsOfWindows(t *testing.T) {
	t.Parallel()
	now := time.Now()
	snap := &dax.Snapshot{Stats: dax.Stats{BlockSize: 4096}, Pins: []dax.PinInfo{
		{ID: 1, Key: "k", Offset: 0, Length: 8192, Label: "dma", Writable: true, Created: now, Blocks: 2, Detached: 2, Mode: "pin", Pieces: 2},
		{ID: 0, Key: "k", Offset: 0, Length: 1 << 20, Label: "reader", Created: now, Mode: "follow window", Pieces: 3},
		{ID: 3, Key: "k", Offset: 4096, Length: 4096, Label: "frame", Created: now, Blocks: 1, Mode: "pinned window", Pieces: 1},
		// A holder that predates windows sends no mode: a pin.
		{ID: 4, Key: "old", Offset: 0, Length: 4096, Created: now, Blocks: 1},
	}}
	var buf bytes.Buffer
	if err := printPins(&buf, snap, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, row := range []string{
		`ID\s+KEY\s+MODE\s+OFFSET\s+LENGTH\s+LABEL\s+WRITABLE\s+AGE\s+BLOCKS\s+DETACHED\s+PIECES\n`,
		`1\s+k\s+pin\s+0\s+8192\s+dma\s+yes\s+0s\s+2\s+2\s+2\n`,
		`-\s+k\s+follow window\s+0\s+1048576\s+reader\s+no\s+0s\s+0\s+0\s+3\n`,
		`3\s+k\s+pinned window\s+4096\s+4096\s+frame\s+no\s+0s\s+1\s+0\s+1\n`,
		`4\s+old\s+pin\s+0\s+4096\s+-\s+no\s+0s\s+1\s+0\s+-\n`,
		`total: 2 pins and 2 windows \(4 mappings\) holding 4 blocks \(16 KiB\), 2 of them detached\n$`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("pins table has no line matching %s:\n%s", row, out)
		}
	}
	t.Run("without windows the total names pins only", func(t *testing.T) {
		buf.Reset()
		snap.Pins = snap.Pins[:1]
		if err := printPins(&buf, snap, now); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(buf.String(), "total: 1 pin holding 2 blocks (8.0 KiB), 2 of them detached\n") {
			t.Errorf("pins table:\n%s", buf.String())
		}
	})
}
