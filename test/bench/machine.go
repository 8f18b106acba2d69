package bench

// The machine a report was measured on, so that figures are never quoted
// without it.

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes the machine and medium of a run.
type Machine struct {
	CPUs        int    `json:"cpus"` // online CPUs (nproc)
	GOMAXPROCS  int    `json:"gomaxprocs"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes int64  `json:"memory_bytes"`
	OS          string `json:"os"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	GOGC        string `json:"gogc"`       // $GOGC, "100" (the default) when unset: Go's GC weighs on every allocating path
	Path        string `json:"path"`       // where the run's files lived
	Filesystem  string `json:"filesystem"` // tmpfs, ext4, xfs, ... of Path
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute load when the
	// run began and ended: other work on the machine skews every figure.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
}

// loadAverage returns the 1-minute load average, or "" where unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return ""
}

func describeMachine(path string) Machine {
	m := Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS,
		GoVersion: runtime.Version(), Path: path, CPUModel: "unknown", Filesystem: "unknown",
		GOGC: os.Getenv("GOGC"), LoadBefore: loadAverage(),
	}
	if m.GOGC == "" {
		m.GOGC = "100"
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		m.OS = unix.ByteSliceToString(uts.Sysname[:])
		m.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemoryBytes = int64(si.Totalram) * int64(si.Unit)
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var st unix.Statfs_t
	if unix.Statfs(path, &st) == nil {
		m.Filesystem = fsName(int64(st.Type))
	}
	return m
}

// fsName names the filesystems a run is likely to use.
func fsName(magic int64) string {
	switch magic {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	}
	return "unknown"
}
