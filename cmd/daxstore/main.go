// Command daxstore creates, fills and inspects daxstore stores: key-file
// stores whose data lives in a memory-mapped persistent-memory region.
//
// It sees stores only through package dax's exported API. While another
// process holds a store, `daxstore busy` and `daxstore pins` ask that
// process over the store's admin socket; every other command needs the
// store to itself and says who holds it when it cannot have it.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
