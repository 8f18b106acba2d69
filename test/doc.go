// Package test holds daxstore's cross-package tests: the model (fsx-style)
// test, the stale-data test, the crash test with real processes and
// SIGKILL, and the concurrency test. They use only the exported API of
// package dax, as an application would.
package test
