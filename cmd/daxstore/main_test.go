package main

// The CLI is tested as users run it: TestMain builds the binary once, and
// every test runs it as a separate process. The same test binary doubles as
// the "holder" process of the live-inspection test (see runHolder).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daxstoreBin is the binary under test, built by TestMain.
var daxstoreBin string

func TestMain(m *testing.M) {
	if dir := os.Getenv(holderEnv); dir != "" {
		os.Exit(runHolder(dir))
	}
	os.Exit(buildAndRun(m))
}

// testBinEnv names a daxstore binary to test instead of building one: the
// QEMU guest of test/fsdax, which has no go command, passes the binary
// built outside.
const testBinEnv = "DAXSTORE_TEST_BIN"

func buildAndRun(m *testing.M) int {
	if bin := os.Getenv(testBinEnv); bin != "" {
		daxstoreBin = bin
		return m.Run()
	}
	tmp, err := os.MkdirTemp("", "daxstore-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	daxstoreBin = filepath.Join(tmp, "daxstore")
	args := []string{"build", "-o", daxstoreBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goTool(), append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building daxstore: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// goTool finds the go command that runs these tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// result is how one run of the binary ended.
type result struct {
	code           int
	stdout, stderr string
}

// patience bounds every wait of these tests for a child process or one of
// its lines. It only turns a hang into a failure, so it allows for a
// heavily loaded machine, where starting a race-enabled binary and opening
// a store can take many seconds.
const patience = 5 * time.Minute

// runCLI runs daxstore with args and stdin, with $DAXSTORE_DIR unset so only
// --dir names a store.
func runCLI(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	return runCLIAs(t, nil, stdin, args...)
}

// runCLIAs is runCLI as the user cred names; nil means this process's user.
func runCLIAs(t *testing.T, cred *syscall.Credential, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, daxstoreBin, args...)
	cmd.Env = cliEnv()
	cmd.Stdin = bytes.NewReader(stdin)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("daxstore %s (as %v): %v", strings.Join(args, " "), cred, err)
	}
	return r
}

// cliEnv is the environment of the processes under test: without
// $DAXSTORE_DIR, and without the race detector's default one-second sleep
// at exit, which would cost a second per command.
func cliEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "DAXSTORE_") {
			env = append(env, e)
		}
	}
	if os.Getenv("GORACE") == "" {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// mustRun runs daxstore and fails the test unless it exits 0 with nothing
// on stderr.
func mustRun(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("daxstore %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// mustJSON runs daxstore and decodes its stdout into v.
func mustJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := mustRun(t, nil, args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("daxstore %s: stdout is not the JSON expected: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// shortDir returns a fresh directory with a short path: the admin socket's
// path must fit in 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dxs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// newStore creates an 8 MiB store with 4 KiB blocks and returns its
// directory.
func newStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(shortDir(t), "s")
	mustRun(t, nil, "init", "--dir", dir, "--size", "8MiB")
	return dir
}

// wantOneErrorLine fails unless r ended with status code and exactly one
// "daxstore: " line on stderr that contains every one of subs.
func wantOneErrorLine(t *testing.T, r result, code int, subs ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "daxstore: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one \"daxstore: \" line: %q", r.stderr)
	}
	// A path such as /x/daxstore: is not a prefix; a prefix starts the
	// line or follows a space.
	if n := strings.Count(" "+r.stderr, " daxstore: "); n != 1 {
		t.Errorf("stderr %q names daxstore: %d times, want once", r.stderr, n)
	}
	for _, s := range subs {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q does not mention %q", r.stderr, s)
		}
	}
}
