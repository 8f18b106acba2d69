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

// run executes one command line and returns its exit status. SIGINT and
// SIGTERM cancel the command's context; a second signal kills the process
// the default way.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	c := &cli{args: args, in: stdin, out: stdout, errOut: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
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
