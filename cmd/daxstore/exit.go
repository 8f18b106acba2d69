package main

// Exit statuses and the one-line error report: every failure ends in exactly
// one "daxstore: ..." line on stderr and a non-zero status.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed, or an argument was invalid
	exitUsage   = 2 // the command line itself was malformed
)

// exitError is an error with its own exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a malformed command line (wrong number of arguments,
// unknown flag or command): exit status 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// interruptGrace is how long a command that does not watch its context may
// go on after SIGINT or SIGTERM before run gives up on it.
const interruptGrace = 3 * time.Second

// run executes one command line and returns its exit status. SIGINT and
// SIGTERM cancel the command's context, and a second signal kills the
// process the default way. Commands that loop, wait or stream watch the
// context and stop at their next check; a command caught in a call that
// takes no context (opening a store, a journal sync) gets interruptGrace,
// then run returns without it and main exits: the store is crash-safe, so
// that is no worse than a kill, and the user gets their shell back with one
// line saying why (TestInterruptStopsACommandStuckInACall). Commands that
// finish a report after an interrupt (stress, bench, demo) are waited for.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{args: args, in: stdin, out: stdout, errOut: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		stop() // a second signal kills
		var grace <-chan time.Time
		if !c.reportsInterrupt.Load() {
			grace = time.After(interruptGrace)
		}
		select {
		case err = <-done:
		case <-grace:
			err = fmt.Errorf("%w: the command did not stop within %s", context.Canceled, interruptGrace)
		}
	}
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintln(stderr, errorLine(err))
	return code
}

// errorLine renders err as one line that starts with "daxstore: " and names
// daxstore only there. Errors of package dax already carry that prefix, and
// a command that wraps one in its own context ("demo step 1: daxstore:
// open: ...") would repeat it: the inner prefix is dropped. Multi-line
// messages are joined.
func errorLine(err error) string {
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg += " (interrupted)"
	}
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	msg = strings.Join(parts, "; ")
	msg = strings.ReplaceAll(msg, ": daxstore: ", ": ")
	if !strings.HasPrefix(msg, "daxstore: ") {
		msg = "daxstore: " + msg
	}
	return msg
}
