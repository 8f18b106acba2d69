// Package dirsnap records a directory tree - names, modes, sizes,
// modification times and content hashes - so that tests can prove an
// operation changed nothing on disk.
package dirsnap

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is what Take records of one path.
type Entry struct {
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	Hash    string // SHA-256 of a regular file's bytes, the target of a symlink
}

// Tree maps each path under the root, relative to it, to its Entry. The root
// itself is recorded as ".".
type Tree map[string]Entry

// Take records the tree under root. A missing root gives an empty Tree, so
// "absent before and after" compares equal. Sockets are recorded without a
// hash.
func Take(root string) (Tree, error) {
	t := Tree{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && os.IsNotExist(err) {
				return fs.SkipAll
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		e := Entry{Mode: fi.Mode(), Size: fi.Size(), ModTime: fi.ModTime()}
		switch {
		case fi.Mode().IsRegular():
			if e.Hash, err = hashFile(path); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Hash, err = os.Readlink(path); err != nil {
				return err
			}
		}
		if fi.IsDir() {
			// A directory's size and mtime change with its entries, which
			// the entries themselves show; keep the mtime, it is the
			// evidence of a create-then-remove.
			e.Size = 0
		}
		t[rel] = e
		return nil
	})
	return t, err
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// Diff describes how b differs from a, one line per path, sorted; "" means
// they are equal.
func Diff(a, b Tree) string { return diff(a, b, false) }

// DiffContents is Diff without the modification times of directories: it
// shows whether what a directory holds changed, not whether entries came
// and went again (which only such a time records).
func DiffContents(a, b Tree) string { return diff(a, b, true) }

func diff(a, b Tree, ignoreDirTimes bool) string {
	var lines []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			lines = append(lines, "removed "+p)
		case ea.Mode != eb.Mode:
			lines = append(lines, fmt.Sprintf("%s: mode %v -> %v", p, ea.Mode, eb.Mode))
		case ea.Size != eb.Size:
			lines = append(lines, fmt.Sprintf("%s: size %d -> %d", p, ea.Size, eb.Size))
		case ignoreDirTimes && ea.Mode.IsDir():
		case !ea.ModTime.Equal(eb.ModTime):
			lines = append(lines, fmt.Sprintf("%s: mtime %s -> %s", p, ea.ModTime.Format(time.RFC3339Nano), eb.ModTime.Format(time.RFC3339Nano)))
		case ea.Hash != eb.Hash:
			lines = append(lines, fmt.Sprintf("%s: content changed", p))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			lines = append(lines, "created "+p)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
