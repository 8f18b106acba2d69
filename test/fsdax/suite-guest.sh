# The guest's half of test/fsdax/suite, run by the guest in /mnt (the
# filesystem on /dev/pmem0) with TMPDIR=/mnt/tmp:
#   sh run.sh dax|msync|xfs           (binaries in /opt/suite)
#   sh run.sh powercut I ROUNDS SEED  (guesttool in /opt, logs in /opt/logs)
. /lib/fsdax.sh
part=$1

# gotest REL BINARY ARGS... runs a package's test binary in a copy of its
# directory (for testdata) and ends with a line counting what passed and
# what was skipped, and why the skips were.
gotest() {
	_rel=$1 _bin=$2
	shift 2
	cd "/opt/suite/pkg/$_rel" || return 1
	"$_bin" -test.v -test.timeout "$FSDAX_TEST_TIMEOUT" -test.short="$FSDAX_SHORT" ${FSDAX_RUN:+-test.run "$FSDAX_RUN"} ${FSDAX_SKIP:+-test.skip "$FSDAX_SKIP"} "$@" > /run/gotest.out 2>&1
	_rc=$?
	cd /mnt
	cat /run/gotest.out
	if [ "$_rc" != 0 ]; then
		# What each failed test said: with -v, a test's lines follow its
		# "=== RUN", "=== CONT" or "=== NAME" line up to the next one.
		echo "failures:"
		awk '
			FNR == NR { if ($1 == "---" && $2 == "FAIL:") failed[$3] = 1; next }
			/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; sub(/\/.*/, "", cur); next }
			/^--- FAIL:/ || /^panic:/ || /^FAIL/ { print; next }
			failed[cur] && !/^ *--- (PASS|SKIP)/ { print "  " cur ": " $0 }
		' /run/gotest.out /run/gotest.out | tail -n 120
	fi
	_skips=$(grep -a -- '^--- SKIP' /run/gotest.out | awk '{print $3}' | tr '\n' ' ')
	echo "summary: $(grep -ac -- '^--- PASS' /run/gotest.out) passed, $(grep -ac -- '^--- FAIL' /run/gotest.out) failed, $(grep -ac -- '^--- SKIP' /run/gotest.out) skipped${_skips:+ ($_skips)}"
	return $_rc
}

# The store tests of the shorter runs (msync, xfs): those that reopen a
# store, recover it, or say how it flushes.
subset='Smoke|FlushMethod|Fsdax|Survive|Reopen|Recover|PowerCut|TestOpen'

case $part in
dax | msync | xfs)
	export PATH=/opt/suite/bin:$PATH
	if [ "$part" = msync ]; then
		want=msync dfwant='flush: msync \(not DAX'
	else
		want=cpu dfwant='flush: (clwb|clflushopt|clflush) and sfence \(DAX'
	fi
	# The store's own word on how it persists: Stats, and daxstore df.
	step flush --summary '^region' guesttool flush /mnt/flush-check "$want"
	step df --summary '^flush:' sh -c "daxstore init --dir /mnt/df-check > /dev/null && daxstore df --dir /mnt/df-check > /run/df.out; cat /run/df.out; grep -qE '$dfwant' /run/df.out"
	mkdir -p /mnt/fsdax-dir
	for rel in $FSDAX_PKGS; do
		bin=/opt/suite/bin/$(echo "$rel" | tr / _).test
		case $rel in
		pmem | dax)
			run=""
			[ "$part" != dax ] && [ "$rel" = dax ] && [ -z "$FSDAX_RUN" ] && run=$subset
			if [ "$part" = msync ]; then
				step "test $rel" --summary '^summary:' gotest "$rel" "$bin" ${run:+-test.run "$run"}
			else
				step "test $rel" --summary '^summary:' gotest "$rel" "$bin" -fsdax-dir=/mnt/fsdax-dir ${run:+-test.run "$run"}
			fi
			;;
		cmd/daxstore)
			# The CLI tests run the binary built outside: no go command
			# here. It goes on the writable mount, where the permission
			# tests may chmod its directory.
			mkdir -p /mnt/cli && cp /opt/suite/bin/daxstore /mnt/cli/daxstore
			export DAXSTORE_TEST_BIN=/mnt/cli/daxstore
			step "test $rel" --summary '^summary:' gotest "$rel" "$bin"
			;;
		*)
			step "test $rel" --summary '^summary:' gotest "$rel" "$bin"
			;;
		esac
	done
	if [ "$part" = dax ]; then
		step stress --summary '^(seed|violations)' daxstore stress --duration "$FSDAX_STRESS"
		step crash --summary '^total' daxstore stress --crash "$FSDAX_CRASH"
	else
		step crash --summary '^total' daxstore stress --crash 3
	fi
	[ "$FSDAX_FAILED" = 0 ]
	exit $?
	;;
powercut)
	i=$2 rounds=$3 seed=$4
	store=/mnt/powercut
	if [ "$i" = 1 ]; then
		step "powercut prepare" --summary . /opt/guesttool crash-prepare --dir "$store" --seed "$seed"
	else
		step "powercut verify round $((i - 1))" --summary '^round' /opt/guesttool crash-verify --dir "$store" --seed "$seed" --logs /opt/logs --rounds $((i - 1))
	fi
	[ "$FSDAX_FAILED" = 0 ] || exit 1
	[ "$i" -le "$rounds" ] || exit 0
	# The writer runs until the host kills the whole guest.
	echo "FSDAX-STEP powercut round $i: writer starting on $store, lines to /dev/ttyS1"
	/opt/guesttool crash-child --dir "$store" --seed "$seed" --logs /opt/logs --round "$i" --out /dev/ttyS1
	echo "FSDAX-STEP powercut round $i FAIL: the writer ended (exit $?) before the power cut"
	exit 1
	;;
esac
echo "run.sh: unknown part $part"
exit 2
