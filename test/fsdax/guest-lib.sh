# /lib/fsdax.sh in the fsdax guest: helpers for the guest's command.
# Console lines starting with FSDAX are the host's report; FSDAX-LOG lines
# are the output of a failed step, which the host shows indented.

# now prints the seconds since boot, to the hundredth.
now() { cut -d' ' -f1 /proc/uptime; }

# since T0 prints the seconds since T0 (a value of now).
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# say MESSAGE... prints one line of the report.
say() { echo "FSDAX $*"; }

# step NAME [--summary REGEX] CMD... runs CMD with its output kept in
# /run/log/NAME.log and prints one line: "FSDAX-STEP NAME ok SECONDS" (with
# the last output line matching REGEX), or on failure "FSDAX-STEP NAME FAIL"
# followed by the failures it names and the last lines of its output. It
# returns CMD's status; FSDAX_FAILED counts the failed steps.
FSDAX_FAILED=0
step() {
	_name=$1; shift
	_summary=""
	if [ "$1" = --summary ]; then _summary=$2; shift 2; fi
	mkdir -p /run/log
	_log=/run/log/$(echo "$_name" | tr -c 'A-Za-z0-9._-\n' _).log
	_t0=$(now)
	"$@" > "$_log" 2>&1
	_rc=$?
	_t=$(since "$_t0")
	if [ "$_rc" = 0 ]; then
		_s=""
		[ -n "$_summary" ] && _s=$(grep -aE "$_summary" "$_log" | tail -n 1)
		echo "FSDAX-STEP $_name ok ${_t}s${_s:+: $_s}"
		return 0
	fi
	FSDAX_FAILED=$((FSDAX_FAILED + 1))
	echo "FSDAX-STEP $_name FAIL (exit $_rc) ${_t}s; its failures, then the last lines of its output:"
	grep -aE -- '^(--- FAIL|FAIL|panic:)|violation' "$_log" | head -n 20 | sed 's/^/FSDAX-LOG /'
	echo "FSDAX-LOG ..."
	tail -n 150 "$_log" | sed 's/^/FSDAX-LOG /'
	return "$_rc"
}
