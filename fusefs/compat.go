package fusefs

// Directory access with a fallback while the store's directory API is
// unavailable (errors.ErrUnsupported): implicit directories derived from
// the keys, read with Files. The fallback never makes anything up that the
// keys do not show.

import (
	"errors"
	"io/fs"
	"iter"
	"strings"
	"unicode/utf8"

	"github.com/daxstore/daxstore/dax"
)

// validPath is the namespace rule of dax.ValidPath (a key seen through
// '/'), checked here too so that a store without it still hides the keys
// a path cannot name.
func validPath(key string) bool {
	if dax.ValidPath(key) {
		return true
	}
	return fs.ValidPath(key) && key != "." && len(key) <= dax.MaxKeyLen && utf8.ValidString(key) &&
		!strings.ContainsRune(key, 0)
}

func (s *Server) statDir(path string) (dax.DirInfo, error) {
	di, err := s.st.StatDir(path)
	if !errors.Is(err, errors.ErrUnsupported) {
		return di, err
	}
	if path == "" {
		return dax.DirInfo{Path: "", Mode: 0o755}, nil
	}
	for fi, err := range s.st.Files(path + "/") {
		if err != nil {
			return dax.DirInfo{}, err
		}
		if validPath(fi.Key) {
			return dax.DirInfo{Path: path, Mode: 0o755, ModTime: fi.ModTime, ATime: fi.ModTime, CTime: fi.ModTime}, nil
		}
	}
	return dax.DirInfo{}, dax.ErrNotFound
}

func (s *Server) readDir(path string) iter.Seq2[dax.DirEntry, error] {
	return func(yield func(dax.DirEntry, error) bool) {
		unsupported := false
		for e, err := range s.st.ReadDir(path) {
			if errors.Is(err, errors.ErrUnsupported) {
				unsupported = true
				break
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
		if !unsupported {
			return
		}
		prefix := ""
		if path != "" {
			prefix = path + "/"
		}
		last := ""
		for fi, err := range s.st.Files(prefix) {
			if err != nil {
				yield(dax.DirEntry{}, err)
				return
			}
			if !validPath(fi.Key) {
				continue
			}
			rest := fi.Key[len(prefix):]
			name, _, isDir := strings.Cut(rest, "/")
			if name == last {
				continue
			}
			last = name
			e := dax.DirEntry{Name: name, IsDir: isDir}
			if !isDir {
				e.File = fi
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// fileStat describes the file f is open on.
func (s *Server) fileStat(f *dax.File) (dax.FileInfo, error) {
	fi, err := f.Stat()
	if errors.Is(err, errors.ErrUnsupported) {
		return s.st.Stat(f.Key())
	}
	return fi, err
}
