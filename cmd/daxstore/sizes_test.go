package main

// Unit tests of argument parsing and error rendering.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string // substring of the error; empty means success
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"64KiB", 64 << 10, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5MiB", 3 << 19, ""},
		{"1 MiB", 1 << 20, ""},
		{"2kB", 2000, ""},
		{"1,024", 1024, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"7EiB", 7 << 60, ""},
		{"", 0, "empty"},
		{"-1", 0, "negative"},
		{"-1KiB", 0, "negative"},
		{"12XB", 0, "unknown unit"},
		{"1.1KiB", 0, "whole number"},
		{"0.5", 0, "whole number"},
		{"9223372036854775808", 0, "larger than 8 EiB"},
		{"8EiB", 0, "larger than 8 EiB"},
		{"1e3", 0, "unknown unit"},
		{"KiB", 0, "not a number"},
		{"1.2.3", 0, "not a number"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%q parses to %d", tt.in, tt.want)
		if tt.err != "" {
			name = fmt.Sprintf("%q is rejected as %s", tt.in, tt.err)
		}
		t.Run(name, func(t *testing.T) {
			got, err := parseSize("size", tt.in)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Fatalf("parseSize(%q) = %d, %v; want an error quoting the input and saying %q", tt.in, got, err, tt.err)
			}
		})
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a plain error gets the prefix", errors.New("bad thing"), "daxstore: bad thing"},
		{"an error of package dax keeps its one prefix", errors.New("daxstore: put \"k\": invalid key"), "daxstore: put \"k\": invalid key"},
		{"lines are joined into one", errors.New("daxstore: check: 2 violations:\n  one\n  two"), "daxstore: check: 2 violations:; one; two"},
		{"a dax error the CLI wrapped keeps one prefix", fmt.Errorf("demo step 1: %w", errors.New("daxstore: open: mkdir x: denied")), "daxstore: demo step 1: open: mkdir x: denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorLine(tt.err); got != tt.want {
				t.Fatalf("errorLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitViolationsListsOneViolationPerLine(t *testing.T) {
	err := errors.New("daxstore: check: 2 violations: corrupt:\n  block 7 is free and in \"k\"\n  inode 3 has no name")
	got := splitViolations(err)
	if len(got) != 2 || got[0] != "block 7 is free and in \"k\"" || got[1] != "inode 3 has no name" {
		t.Fatalf("splitViolations = %q", got)
	}
	if got := splitViolations(errors.New("one line")); len(got) != 1 || got[0] != "one line" {
		t.Fatalf("a one-line error gives %q", got)
	}
}
