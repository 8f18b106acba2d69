# daxstore: build, test, demo. `make test` is what CI runs.

GO       ?= go
# Go's default install location, for fresh machines whose PATH lacks it.
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

PKGS     := ./...
BIN      := bin/daxstore

.PHONY: all build test vet demo stress bench fuzz dax-test clean fuse-deps

all: build

build:
	$(GO) build -o $(BIN) ./cmd/daxstore

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags lockcheck ./dax

# go vet, then every test with the race detector and the lock-order checker
# (build tag lockcheck: taking the store's locks out of their documented
# order panics, naming both locks). About ten minutes at most on 2 cores.
# Test stores go to /dev/shm when it exists: a synced journal commit costs
# microseconds on tmpfs and hundreds of microseconds on a disk.
TEST_TMPDIR := $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})
test: vet fuse-deps
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -tags lockcheck -count=1 -timeout 20m $(PKGS)

# fusermount3 (Debian's fuse3), which the mount tests use to unmount from
# outside as a user would; root mounts and unmounts without it, so a
# machine where it cannot be installed still runs every test.
fuse-deps:
	@command -v fusermount3 >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null 2>&1; } || \
		echo "fuse3 not installed: the mount tests unmount with umount(2) instead"

# The main job: the pin / punch / busy-extent story on a store in a
# temporary directory.
demo: build
	./$(BIN) demo

# A few minutes of the pin/punch stress tool on a store in $(TEST_TMPDIR):
# a two-minute run, twenty rounds of crash torture (kill -9, reopen,
# verify), then the stress and cross-package tests with three times their
# usual rounds (five times for the journal fault suite; four times the
# window model's operations, and three minutes of the window stress).
# Each step prints its seed; replay a failure with --seed or -stress.seed.
stress: build
	TMPDIR=$(TEST_TMPDIR) ./$(BIN) stress --duration 2m
	TMPDIR=$(TEST_TMPDIR) ./$(BIN) stress --crash 20
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -count=1 -timeout 20m ./test/stress \
		-stress.duration=30s -stress.rounds=10
	TMPDIR=$(TEST_TMPDIR) $(GO) test -race -count=1 -timeout 30m ./test \
		-model.ops=4500 -crash.rounds=60 -powercut.rounds=750 -faults.rounds=1000 \
		-wmodel.ops=4000 -wstress.duration=3m

# Hot-path benchmarks of every package (compare runs with benchstat), then
# daxstore against bbolt, Pebble, plain files and the hardware limit, on
# tmpfs when there is one. `daxstore bench` without --quick is the full run.
bench:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/daxstore bench --quick

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeSuperblock -fuzztime $(FUZZTIME) ./pmem
	TMPDIR=$(TEST_TMPDIR) $(GO) test -run '^$$' -fuzz '^FuzzFsx$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./test
	for f in $$($(GO) test -list 'Fuzz.*' ./journal | grep ^Fuzz); do \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./journal || exit 1; \
	done

# The fsdax suite in QEMU guests (test/fsdax/suite): every package's tests,
# stress and crash torture with the store on ext4 -o dax over emulated
# pmem, the msync fallback on the same device without dax, and power cuts
# (SIGKILL of QEMU) of a guest whose NVDIMM is a host file. Installs QEMU,
# a kernel and busybox from Debian's packages on first use. Under TCG
# emulation on 2 cores it takes 9 to 14 minutes; see test/fsdax/suite for
# its knobs (FSDAX_TESTS, FSDAX_POWERCUT, ...).
dax-test:
	test/fsdax/suite

clean:
	rm -rf bin
