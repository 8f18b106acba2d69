package main

// --watch redraws until interrupted, and an interrupt is a normal end.

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestWatchRedrawsUntilInterrupted(t *testing.T) {
	t.Parallel()
	dir := newStore(t)
	for _, name := range []string{"busy", "pins"} {
		t.Run(name+" --watch exits 0 on SIGINT", func(t *testing.T) {
			cmd := exec.Command(daxstoreBin, name, "--watch", "50ms", "--dir", dir)
			cmd.Env = cliEnv()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			frames := make(chan int, 1)
			go func() {
				n := 0
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					if strings.Contains(sc.Text(), "Ctrl-C to stop") {
						if n++; n == 3 {
							frames <- n
						}
					}
				}
			}()
			select {
			case <-frames:
			case <-time.After(patience):
				cmd.Process.Kill()
				t.Fatalf("no third frame after %v; stderr %q", patience, stderr.String())
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil || stderr.String() != "" {
				t.Fatalf("after SIGINT: %v, stderr %q; want exit 0 and no error", err, stderr.String())
			}
		})
	}
}
