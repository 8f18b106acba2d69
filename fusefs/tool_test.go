package fusefs_test

// The tools test runs the programs users point at a file system (coreutils'
// cp, cmp, cat, dd, truncate, stat, ls, mv, rm, du, touch and util-linux's
// fallocate) against a mount, and checks what each leaves behind: bytes
// with cmp against a reference file, sizes, modes, times, holes.

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sh runs a program and fails the test, with its output, when it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = cLocale()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cLocale is the environment with messages and formats in the C locale,
// which the tests parse.
func cLocale() []string { return append(os.Environ(), "LC_ALL=C") }

// needTools skips when a program the test runs is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed", n)
		}
	}
}

// sameBytes checks path against want with cmp (through a reference file)
// and by reading it.
func sameBytes(t *testing.T, path string, want []byte) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref")
	if err := os.WriteFile(ref, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cmp", ref, path).CombinedOutput(); err != nil {
		t.Fatalf("cmp %s with the expected bytes: %v\n%s", path, err, out)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: read %d bytes, want %d (first difference at %d)", path, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// statFields runs stat -c FORMAT and splits its output.
func statFields(t *testing.T, format, path string) []string {
	t.Helper()
	return strings.Fields(sh(t, "stat", "-c", format, path))
}

func TestTools(t *testing.T) {
	needFUSE(t)
	needTools(t, "cp", "cmp", "cat", "dd", "truncate", "fallocate", "stat", "ls", "mv", "rm", "du", "touch")
	m := startMount(t, mountConfig{})
	rng := rand.New(rand.NewSource(1))
	src := filepath.Join(t.TempDir(), "src")
	content := randBytes(rng, 300_000) // not a multiple of the block size
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	at := func(name string) string { return filepath.Join(m.Mnt, name) }

	t.Run("cp then cmp and cat give the bytes back", func(t *testing.T) {
		sh(t, "cp", src, at("a"))
		sameBytes(t, at("a"), content)
		out, err := exec.Command("cat", at("a")).Output()
		if err != nil || !bytes.Equal(out, content) {
			t.Fatalf("cat: %d bytes, %v", len(out), err)
		}
		if f := statFields(t, "%s %F", at("a")); f[0] != strconv.Itoa(len(content)) || f[1] != "regular" {
			t.Fatalf("stat: %v", f)
		}
	})

	t.Run("dd conv=notrunc overwrites in the middle and keeps the rest", func(t *testing.T) {
		patch := randBytes(rng, 10_000)
		pf := filepath.Join(t.TempDir(), "patch")
		os.WriteFile(pf, patch, 0o644)
		sh(t, "dd", "if="+pf, "of="+at("a"), "bs=1000", "seek=5", "conv=notrunc", "status=none")
		copy(content[5000:], patch)
		sameBytes(t, at("a"), content)
		// And past the end: the file grows, the gap reads zeros.
		sh(t, "dd", "if="+pf, "of="+at("a"), "bs=1000", "seek=310", "conv=notrunc", "status=none")
		content = append(content, make([]byte, 310_000-len(content))...)
		content = append(content, patch...)
		sameBytes(t, at("a"), content)
	})

	t.Run("truncate shrinks and grows with zeros", func(t *testing.T) {
		sh(t, "truncate", "-s", "123457", at("a"))
		content = content[:123457]
		sameBytes(t, at("a"), content)
		sh(t, "truncate", "-s", "200000", at("a"))
		content = append(content, make([]byte, 200000-123457)...)
		sameBytes(t, at("a"), content)
	})

	t.Run("fallocate -p punches zeros and keeps the size", func(t *testing.T) {
		sh(t, "fallocate", "-p", "-o", "5000", "-l", "20000", at("a"))
		clear(content[5000:25000])
		sameBytes(t, at("a"), content)
	})

	t.Run("fallocate -z zeroes and keeps the size", func(t *testing.T) {
		sh(t, "fallocate", "-z", "-o", "40000", "-l", "9000", at("a"))
		clear(content[40000:49000])
		sameBytes(t, at("a"), content)
	})

	t.Run("fallocate -z past the end grows the file", func(t *testing.T) {
		sh(t, "fallocate", "-z", "-o", "199000", "-l", "11000", at("a"))
		clear(content[199000:])
		content = append(content, make([]byte, 210000-len(content))...)
		sameBytes(t, at("a"), content)
	})

	t.Run("ls -l and stat show mode, size, owner and type", func(t *testing.T) {
		if err := os.Mkdir(at("d"), 0o750); err != nil {
			t.Fatal(err)
		}
		sh(t, "cp", src, at("d/f"))
		if err := os.Chmod(at("d/f"), 0o600); err != nil {
			t.Fatal(err)
		}
		if f := statFields(t, "%a %s %u %g %F", at("d/f")); strings.Join(f, " ") != "600 300000 0 0 regular file" {
			t.Fatalf("stat d/f: %v", f)
		}
		if f := statFields(t, "%a %F", at("d")); strings.Join(f, " ") != "750 directory" {
			t.Fatalf("stat d: %v", f)
		}
		lines := strings.Split(strings.TrimSpace(sh(t, "ls", "-l", m.Mnt)), "\n")
		var sawA, sawD bool
		for _, l := range lines[1:] { // after "total N"
			f := strings.Fields(l)
			switch f[len(f)-1] {
			case "a":
				sawA = strings.HasPrefix(f[0], "-rw-r--r--") && f[4] == strconv.Itoa(len(content))
			case "d":
				sawD = strings.HasPrefix(f[0], "drwxr-x---")
			}
		}
		if !sawA || !sawD {
			t.Fatalf("ls -l shows a as a 0644 file of %d bytes: %v, d as a 0750 dir: %v:\n%s", len(content), sawA, sawD, strings.Join(lines, "\n"))
		}
	})

	t.Run("mv renames across directories and keeps the bytes", func(t *testing.T) {
		sh(t, "mv", at("a"), at("d/b"))
		if _, err := os.Stat(at("a")); !os.IsNotExist(err) {
			t.Fatalf("a after mv: %v", err)
		}
		sameBytes(t, at("d/b"), content)
		// Over an existing file: rename(2) replaces it.
		sh(t, "mv", at("d/f"), at("d/b"))
		orig, _ := os.ReadFile(src)
		sameBytes(t, at("d/b"), orig)
	})

	t.Run("rm -r removes a tree, also one made through the key API", func(t *testing.T) {
		os.MkdirAll(at("d/e/f"), 0o755)
		sh(t, "cp", src, at("d/e/f/x"))
		sh(t, "rm", "-r", at("d"))
		if _, err := os.Stat(at("d")); !os.IsNotExist(err) {
			t.Fatalf("d after rm -r: %v", err)
		}
		// Directories that exist only because keys lie under them.
		m.In(t).Must("put k/l/m %x", []byte("hello"))
		m.In(t).Must("put k/n %x", []byte("world"))
		sameBytes(t, at("k/l/m"), []byte("hello"))
		sh(t, "rm", "-r", at("k"))
		if _, err := os.Stat(at("k")); !os.IsNotExist(err) {
			t.Fatalf("k after rm -r: %v", err)
		}
		if _, err := m.In(t).Do("size k/l/m"); err == nil {
			t.Fatal("k/l/m still in the store after rm -r")
		}
		if out := strings.TrimSpace(sh(t, "ls", "-A", m.Mnt)); out != "" {
			t.Fatalf("mount not empty after rm -r: %q", out)
		}
	})

	t.Run("cp --sparse=always keeps holes, seen by du, st_blocks and SEEK_HOLE", func(t *testing.T) {
		const size = 32 << 20
		sh(t, "truncate", "-s", strconv.Itoa(size), at("sparse"))
		data := randBytes(rng, 8192)
		pf := filepath.Join(t.TempDir(), "data")
		os.WriteFile(pf, data, 0o644)
		sh(t, "dd", "if="+pf, "of="+at("sparse"), "conv=notrunc", "status=none")
		sh(t, "dd", "if="+pf, "of="+at("sparse"), "bs=1M", "seek=16", "conv=notrunc", "status=none")
		want := make([]byte, size)
		copy(want, data)
		copy(want[16<<20:], data)
		for _, dst := range []string{at("sparse2"), filepath.Join(t.TempDir(), "sparse3")} {
			sh(t, "cp", "--sparse=always", at("sparse"), dst)
			sameBytes(t, dst, want)
			var st unix.Stat_t
			if err := unix.Stat(dst, &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != size || st.Blocks*512 > 1<<20 {
				t.Fatalf("%s: size %d, %d bytes of blocks: the holes were filled", dst, st.Size, st.Blocks*512)
			}
			if kb, _ := strconv.Atoi(strings.Fields(sh(t, "du", "-k", dst))[0]); kb > 1024 {
				t.Fatalf("du %s: %d KiB for 16 KiB of data", dst, kb)
			}
		}
		f, err := os.Open(at("sparse2"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		hole, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
		if err != nil || hole < 8192 || hole >= 1<<20 {
			t.Fatalf("SEEK_HOLE from 0: %d, %v (want the end of the first data run)", hole, err)
		}
		data2, err := unix.Seek(int(f.Fd()), hole, unix.SEEK_DATA)
		if err != nil || data2 > 16<<20 || data2 < hole {
			t.Fatalf("SEEK_DATA from %d: %d, %v (want the run at 16 MiB)", hole, data2, err)
		}
		if _, err := unix.Seek(int(f.Fd()), size, unix.SEEK_DATA); err != unix.ENXIO {
			t.Fatalf("SEEK_DATA at the end: %v, want ENXIO", err)
		}
	})

	t.Run("setxattr is refused with ENOTSUP, so cp -p and rsync fall back to chmod", func(t *testing.T) {
		sh(t, "cp", src, at("x"))
		if err := unix.Setxattr(at("x"), "user.k", []byte("v"), 0); err != nil && err != unix.ENOTSUP {
			t.Errorf("setxattr user.k: %v, want success or ENOTSUP (tools fall back only on ENOTSUP)", err)
		}
		if _, err := unix.Getxattr(at("x"), "user.k", make([]byte, 16)); err != nil && err != unix.ENODATA && err != unix.ENOTSUP {
			t.Errorf("getxattr of a missing attribute: %v, want ENODATA or ENOTSUP", err)
		}
	})

	t.Run("touch and cp -p keep mtime and mode", func(t *testing.T) {
		sh(t, "cp", src, at("t"))
		sh(t, "touch", "-m", "-d", "2020-01-02 03:04:05.5 UTC", at("t"))
		if err := os.Chmod(at("t"), 0o640); err != nil {
			t.Fatal(err)
		}
		want := time.Date(2020, 1, 2, 3, 4, 5, 5e8, time.UTC)
		for _, dst := range []string{at("t2"), filepath.Join(t.TempDir(), "t3")} {
			sh(t, "cp", "-p", at("t"), dst)
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(want) || fi.Mode().Perm() != 0o640 {
				t.Fatalf("%s after cp -p: mtime %v mode %v, want %v and 0640", dst, fi.ModTime().UTC(), fi.Mode().Perm(), want)
			}
		}
		// Into the mount from elsewhere too.
		local := filepath.Join(t.TempDir(), "l")
		os.WriteFile(local, []byte("x"), 0o604)
		os.Chtimes(local, want, want)
		sh(t, "cp", "-p", local, at("t4"))
		fi, err := os.Stat(at("t4"))
		if err != nil || !fi.ModTime().Equal(want) || fi.Mode().Perm() != 0o604 {
			t.Fatalf("t4 after cp -p: %v %v %v", fi.ModTime(), fi.Mode(), err)
		}
	})

	t.Run("the store checks clean after all of it", func(t *testing.T) {
		m.In(t).Must("check")
	})
	m.Quit()
}
