package test

// TestMain exists so the crash test can re-execute this test binary as the
// child process it kills: with the child's environment variable set, the
// binary runs the child's workload instead of the tests.

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}
