// Package apicheck holds the module's checks on its own public API: every
// exported identifier of every package has a doc comment, every package has
// a package comment, and dax's exported API names no internal package (test
// plumbing stays off it). It has no code of its own; see its tests.
package apicheck
