package stress

// The self-describing words and the parsing of policy mixes.

import (
	"testing"
)

func TestWordRule(t *testing.T) {
	r := wordRule{id: 3, floor: 10, next: 20}
	for _, tc := range []struct {
		name string
		w    word
		want string
	}{
		{"zeros are always explained", word{}, ""},
		{"the key's word of a live generation is explained", word{3, 15}, ""},
		{"the floor generation itself is explained", word{3, 10}, ""},
		{"another key's word is foreign", word{4, 15}, badForeign},
		{"a generation never handed out is foreign", word{3, 20}, badForeign},
		{"generation zero is foreign", word{3, 0}, badForeign},
		{"a word with a zero id but a generation is foreign", word{0, 15}, badForeign},
		{"a generation below the floor is stale", word{3, 9}, badStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.explains(tc.w); got != tc.want {
				t.Errorf("explains(%v) = %q, want %q", tc.w, got, tc.want)
			}
		})
	}
}

func TestFirstBadFindsTheWordAndItsOffset(t *testing.T) {
	b := make([]byte, 64)
	fillWords(b, word{3, 12})
	r := wordRule{id: 3, floor: 10, next: 20}
	if bad, ok := r.firstBad(b, 4096); ok {
		t.Fatalf("a clean buffer has a bad word: %+v", bad)
	}
	putWord(b[40:], word{7, 1})
	bad, ok := r.firstBad(b, 4096)
	if !ok || bad.at != 4096+40 || bad.got != (word{7, 1}) || bad.reason != badForeign {
		t.Fatalf("firstBad = %+v, %v; want the foreign word at 4136", bad, ok)
	}
}

func TestKeyFloorKeepsWordsOfOperationsInFlight(t *testing.T) {
	k := newKeyState(1, "k", 1)
	wGen, wLow := k.begin() // a write starts
	pGen, pLow := k.begin() // a Put starts while it runs
	k.end(pGen, pLow, true) // the Put finishes first
	if r := k.readRule(); r.floor != wGen {
		t.Fatalf("floor %d after a Put that overlapped write %d, want %d: the write may land after the swap", r.floor, wGen, wGen)
	}
	k.end(wGen, wLow, false)
	p2, low2 := k.begin()
	k.end(p2, low2, true)
	if r := k.readRule(); r.floor != p2 || r.next != p2+1 {
		t.Fatalf("rule %+v after a Put alone, want floor %d next %d", r, p2, p2+1)
	}
}

func TestCanaryFreeSplitsAroundCanaries(t *testing.T) {
	k := newKeyState(1, "k", 1)
	for _, s := range []span{{100, 200}, {300, 400}} {
		if !k.addCanary(s) {
			t.Fatalf("canary %v refused", s)
		}
	}
	if k.addCanary(span{150, 160}) {
		t.Fatal("an overlapping canary was accepted")
	}
	got := k.canaryFree(span{0, 500})
	want := []span{{0, 100}, {200, 300}, {400, 500}}
	if len(got) != len(want) {
		t.Fatalf("canaryFree = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("canaryFree = %v, want %v", got, want)
		}
	}
	k.dropCanary(span{100, 200})
	if got := k.canaryFree(span{100, 200}); len(got) != 1 || got[0] != (span{100, 200}) {
		t.Fatalf("after dropping the canary canaryFree = %v, want the whole span", got)
	}
}

func TestParsePolicyMix(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want PolicyMix
		ok   bool
	}{
		{"all three weights parse", "detach=6,wait=2,fail=2", PolicyMix{6, 2, 2}, true},
		{"left-out policies weigh zero", "wait=1", PolicyMix{Wait: 1}, true},
		{"spaces and case are forgiven", " Detach = 1 , FAIL=3", PolicyMix{Detach: 1, Fail: 3}, true},
		{"an empty mix is refused", "", PolicyMix{}, false},
		{"all-zero weights are refused", "detach=0,wait=0", PolicyMix{}, false},
		{"an unknown policy is refused", "detach=1,retry=2", PolicyMix{}, false},
		{"a negative weight is refused", "detach=-1", PolicyMix{}, false},
		{"a policy given twice is refused", "wait=1,wait=2", PolicyMix{}, false},
		{"a part without a weight is refused", "detach", PolicyMix{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicyMix(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParsePolicyMix(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
			if tc.ok {
				if again, err := ParsePolicyMix(got.String()); err != nil || again != got {
					t.Fatalf("String %q does not parse back: %v, %v", got.String(), again, err)
				}
			}
		})
	}
}
