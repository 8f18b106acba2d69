package stress

// Crash rounds whose child runs where this process can neither start nor
// kill it: in a virtual machine that is killed outright (a power cut), the
// store on the machine's persistent memory, the child's lines captured by
// whoever killed it. Each boot of the machine runs one step: PrepareCrash
// creates the store, CrashChildEnv orders round i's child, and VerifyCrash
// learns what every round before was promised and checks the store after
// the last. The checks are Crash's own.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/daxstore/daxstore/dax"
)

// externalRun checks cfg as Crash does and returns the run's state after
// learning from the lines of the rounds given, in order.
func externalRun(cfg Config, earlier [][]string) (*crashRun, error) {
	c := cfg.EnsureDefaults()
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = childMaxRun
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.NoSync {
		return nil, errors.New("stress: crash: NoSync may lose acknowledged operations in a crash; crash torture needs synced commits")
	}
	if c.Dir == "" {
		return nil, errors.New("stress: crash: an external crash run needs a store directory")
	}
	cr := &crashRun{c: c, known: map[string]expectedValue{}, firstGen: 1}
	for _, lines := range earlier {
		var ignored violations // reported when that round was verified
		cr.learnRound(parseChildLines(lines, &ignored))
	}
	return cr, nil
}

// learnRound takes in one round's operations: their generations and what
// they tell of each key.
func (cr *crashRun) learnRound(ops []*loggedOp) {
	for _, op := range ops {
		if op.gen >= cr.firstGen {
			cr.firstGen = op.gen + 1
		}
	}
	cr.learn(ops)
}

// PrepareCrash creates the store of an external crash run in cfg.Dir,
// which must not hold a store yet.
func PrepareCrash(cfg Config) error {
	cr, err := externalRun(cfg, nil)
	if err != nil {
		return err
	}
	if err := requireFresh(cr.c.Dir); err != nil {
		return err
	}
	s, err := dax.Open(cr.c.Dir, crashOptions(cr.c))
	if err != nil {
		return fmt.Errorf("stress: crash: create store: %w", err)
	}
	return s.Close()
}

// CrashChildEnv returns the value of ChildEnv that orders round (counted
// from 1) of an external crash run, whose earlier rounds' children wrote
// earlier[0], earlier[1], ... RunChild with that environment is the child.
func CrashChildEnv(cfg Config, round int, earlier [][]string) (string, error) {
	if round < 1 || round != len(earlier)+1 {
		return "", fmt.Errorf("stress: crash: round %d needs the lines of the %d rounds before it, not %d", round, round-1, len(earlier))
	}
	cr, err := externalRun(cfg, earlier)
	if err != nil {
		return "", err
	}
	orders, err := json.Marshal(childOrders{Config: cr.c, Round: round, FirstGen: cr.firstGen})
	if err != nil {
		return "", fmt.Errorf("stress: crash: encode child orders: %w", err)
	}
	return string(orders), nil
}

// VerifyCrash checks the store of an external crash run after the child of
// its last round was killed: rounds holds every round's lines, in order.
// It learns from the earlier rounds as Crash would have, then reopens the
// store and demands what the last round's child was promised. The report
// holds that last round; it passed when its Violations is 0. VerifyCrash
// returns an error only when it could not run.
func VerifyCrash(cfg Config, rounds [][]string) (*CrashReport, error) {
	if len(rounds) == 0 {
		return nil, errors.New("stress: crash: no round to verify")
	}
	cr, err := externalRun(cfg, rounds[:len(rounds)-1])
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r := &runner{c: cr.c, start: start}
	r.viol.start = start
	rd := Round{Round: len(rounds), ArmedAt: "external"}
	cr.afterKill(r, &rd, rounds[len(rounds)-1])
	rd.Violations = r.viol.count()
	r.viol.mu.Lock()
	if len(r.viol.first) > 0 {
		rd.FirstProblem = r.viol.first[0]
	}
	r.viol.mu.Unlock()
	rep := &CrashReport{Seed: cr.c.Seed, Dir: cr.c.Dir}
	rep.add(rd, &r.viol)
	rep.Elapsed = time.Since(start)
	return rep, nil
}
