package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command a user can see explains itself in --help: a one-line
// description, a longer one, and examples that run that very command.
func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	c := &cli{}
	var walk func(cmd *cobra.Command)
	seen := 0
	walk = func(cmd *cobra.Command) {
		if cmd.Hidden {
			return
		}
		seen++
		name := cmd.CommandPath()
		if strings.TrimSpace(cmd.Short) == "" {
			t.Errorf("%s: no Short description", name)
		}
		if strings.TrimSpace(cmd.Long) == "" {
			t.Errorf("%s: no Long description", name)
		}
		if strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%s: no Example", name)
		}
		for _, line := range strings.Split(cmd.Example, "\n") {
			if !strings.HasPrefix(line, "  ") || !strings.Contains(line, name) {
				t.Errorf("%s: example line %q is not an indented run of %q", name, line, name)
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(c.rootCommand())
	if seen < 17 {
		t.Errorf("walked %d commands, want the root and at least 16 subcommands", seen)
	}
}
