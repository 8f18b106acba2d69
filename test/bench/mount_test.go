package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// A mount command that fails skips the part with its reason: no figures,
// no error, nothing left mounted.
func TestMountPartSkipsWhenTheMountCommandFails(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(context.Background(), Config{Only: []string{"mount"}, Exe: "/bin/false", Path: dir, DiskPath: dir,
		Quick: true, Duration: 5 * time.Millisecond, PunchBytes: 4 << 20}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Skipped) != 1 || !strings.HasPrefix(rep.Skipped[0], "mount: ") || len(rep.Figures) != 0 {
		t.Fatalf("skipped %q with %d figures; want one mount reason and none", rep.Skipped, len(rep.Figures))
	}
	if _, err := os.Stat("/dev/fuse"); os.Geteuid() == 0 && err == nil && !strings.Contains(rep.Skipped[0], "daxstore mount failed") {
		t.Fatalf("skipped for %q, want the mount command's failure", rep.Skipped[0])
	}
	var out strings.Builder
	if err := rep.Format(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipped: mount: ") {
		t.Fatalf("the table does not say the part was skipped:\n%s", out.String())
	}
}
