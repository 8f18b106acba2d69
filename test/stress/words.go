package stress

// Self-describing bytes: every byte the run writes for a key belongs to an
// 8-byte word [key id][generation], and every offset and length it uses is a
// multiple of 8, so a read can tell word by word whether it sees the key's
// data, zeros, another key's bytes, or bytes older than a Put or Remove that
// finished before the read began.

import (
	"encoding/binary"
	"fmt"
)

// wordSize is the size of one self-describing word.
const wordSize = 8

// word is the decoded form of one 8-byte word.
type word struct{ id, gen uint32 }

func (w word) zero() bool { return w == word{} }

func (w word) String() string {
	if w.zero() {
		return "zeros"
	}
	return fmt.Sprintf("[key %d gen %d]", w.id, w.gen)
}

func readWord(b []byte) word {
	return word{id: binary.LittleEndian.Uint32(b), gen: binary.LittleEndian.Uint32(b[4:])}
}

func putWord(b []byte, w word) {
	binary.LittleEndian.PutUint32(b, w.id)
	binary.LittleEndian.PutUint32(b[4:], w.gen)
}

// fillWords fills b, whose length is a multiple of 8, with w.
func fillWords(b []byte, w word) {
	if len(b) < wordSize {
		return
	}
	putWord(b, w)
	for n := wordSize; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// wordRule says which words a read of one key may return: zeros, or the
// key's own words of a generation in [floor, next). floor is the key's
// floor when the read began; next its next generation when it ended.
type wordRule struct {
	id          uint32
	floor, next uint32
}

// Reasons a word breaks its rule.
const (
	badForeign = "foreign-bytes" // another key's word, or garbage
	badStale   = "stale-bytes"   // the key's word from before a Put or Remove that finished first
)

// explains returns "" when the rule admits w, else why not.
func (r wordRule) explains(w word) string {
	switch {
	case w.zero():
		return ""
	case w.id != r.id:
		return badForeign
	case w.gen >= r.next || w.gen == 0:
		return badForeign // a generation never written for this key
	case w.gen < r.floor:
		return badStale
	}
	return ""
}

// badWord is the first word of a buffer that its rule does not explain.
type badWord struct {
	at     int64 // file offset
	got    word
	reason string
}

// firstBad checks b, the bytes of a file at off (both multiples of 8), and
// returns the first word r does not explain.
func (r wordRule) firstBad(b []byte, off int64) (badWord, bool) {
	for i := 0; i+wordSize <= len(b); i += wordSize {
		w := readWord(b[i:])
		if why := r.explains(w); why != "" {
			return badWord{at: off + int64(i), got: w, reason: why}, true
		}
	}
	return badWord{}, false
}
