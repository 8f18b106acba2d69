package dax

// The admin socket's operations: what another process (the daxstore CLI)
// may ask of the process that holds the store. Reads (list, stat, get,
// check) are always served; writes (put, remove, truncate, punch, zero)
// only when the holder opened the store with Options.AdminWrites.
//
// Who may connect: the socket is mode 0600, and every accepted connection
// is checked once more by its peer's credentials (SO_PEERCRED): its uid
// must be this process's effective uid, or 0. Root is accepted because it
// can read and write the store's files, region and journal directly
// anyway; refusing it would protect nothing and would only break an
// operator's `sudo daxstore ls`. Any other peer's connection is closed at
// once, unanswered, and logged to Options.Logger.
//
// Bounds: headers must arrive within adminReadTimeout and fit in
// adminMaxHeader; every request but put has a body of at most
// adminMaxBody; a response (a get streams its value) must be taken at
// least adminChunk bytes per adminWriteTimeout, and a put's body must
// arrive at least adminChunk bytes per adminReadTimeout, so a client that
// never reads or trickles bytes is cut off. A put's body is limited to
// the region's data bytes. Every operation runs under a context that ends
// with the connection, after adminOpTimeout, or when Close begins, so
// Close never waits on a client.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrAdminWrites is returned by the admin client's writing methods when
// the store's holder did not open it with Options.AdminWrites.
var ErrAdminWrites = errors.New("the holder does not accept writes over its admin socket")

const (
	adminMaxBody   = 64 << 10         // body of any request but put
	adminChunk     = 1 << 20          // bytes a client must move per timeout while streaming
	adminOpTimeout = 10 * time.Minute // an operation's own limit (a Wait break, a large check)
	adminShutdown  = time.Second      // how long Close lets requests in flight finish
)

// peerListener accepts only connections whose peer runs as this process's
// effective uid, or as root.
type peerListener struct {
	*net.UnixListener
	euid   int
	logger func(format string, args ...any)
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == l.euid || uid == 0) {
			return c, nil
		}
		_ = c.Close()
		if err != nil {
			l.logger("daxstore: admin socket: refused a connection: peer credentials: %v", err)
		} else {
			l.logger("daxstore: admin socket: refused a connection from uid %d (only uid %d and root may connect)", uid, l.euid)
		}
	}
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// adminOps holds what the operation handlers share: the store and the
// context that Close cancels to cut every operation in flight.
type adminOps struct {
	s      *Store
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func newAdminOps(s *Store) *adminOps {
	o := &adminOps{s: s}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return o
}

// abort ends every operation in flight (Close is about to wait for them)
// and gives later requests a fresh context, since a Close that fails
// (pins outstanding) leaves the store serving.
func (o *adminOps) abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cancel()
	o.ctx, o.cancel = context.WithCancel(context.Background())
}

// abortOps ends the admin operations in flight, if a server runs.
func (a *adminServer) abortOps() {
	if a != nil {
		a.ops.abort()
	}
}

// logf writes to Options.Logger, if any.
func (s *Store) logf(format string, args ...any) {
	if s.opts.Logger != nil {
		s.opts.Logger.Printf(format, args...)
	}
}

// opContext is the context of one request: it ends with the request's
// connection, after adminOpTimeout, or at abort.
func (o *adminOps) opContext(r *http.Request) (context.Context, context.CancelFunc) {
	o.mu.Lock()
	base := o.ctx
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), adminOpTimeout)
	stop := context.AfterFunc(base, cancel)
	return ctx, func() { stop(); cancel() }
}

// adminHolder is GET /holder's answer.
type adminHolder struct {
	Pid         int   `json:"pid"`
	AdminWrites bool  `json:"admin_writes"`
	BlockSize   int64 `json:"block_size"`
}

// CheckResult is what the holder's Check found.
type CheckResult struct {
	// Violations lists what Check found wrong; empty means the store is
	// consistent.
	Violations []string `json:"violations,omitempty"`
	// Pause is how long the check held new operations off.
	Pause time.Duration `json:"pause_ns"`
}

// register adds the operation routes to mux.
func (o *adminOps) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /holder", o.wrap(false, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		return writeAdminJSON(w, adminHolder{Pid: os.Getpid(), AdminWrites: o.s.opts.AdminWrites, BlockSize: o.s.bs})
	}))
	mux.HandleFunc("GET /files", o.wrap(false, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		files, err := o.s.List(r.URL.Query().Get("prefix"))
		if err != nil {
			return err
		}
		if files == nil {
			files = []FileInfo{}
		}
		return writeAdminJSON(w, files)
	}))
	mux.HandleFunc("GET /stat", o.wrap(false, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		fi, err := o.s.Stat(r.URL.Query().Get("key"))
		if err != nil {
			return err
		}
		return writeAdminJSON(w, fi)
	}))
	mux.HandleFunc("GET /get", o.wrap(false, o.get))
	mux.HandleFunc("POST /check", o.wrap(false, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		var res CheckResult
		err := o.s.Check()
		res.Pause = time.Duration(o.s.stats.checkPause.Load())
		if errors.Is(err, ErrCorrupt) {
			res.Violations = splitCheck(err)
		} else if err != nil {
			return err
		}
		return writeAdminJSON(w, res)
	}))
	mux.HandleFunc("PUT /put", o.wrap(true, o.put))
	mux.HandleFunc("POST /rm", o.wrap(true, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
		bo, err := adminPolicy(r.URL.Query())
		if err != nil {
			return err
		}
		return o.s.RemoveWith(ctx, r.URL.Query().Get("key"), bo)
	}))
	for _, op := range []string{"truncate", "punch", "zero"} {
		mux.HandleFunc("POST /"+op, o.wrap(true, func(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			bo, err := adminPolicy(q)
			if err != nil {
				return err
			}
			off, err1 := strconv.ParseInt(q.Get("off"), 10, 64)
			n, err2 := strconv.ParseInt(q.Get("n"), 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("daxstore: admin %s: %v: %w", op, err, ErrInvalidRange)
			}
			f, err := o.s.Open(q.Get("key"))
			if err != nil {
				return err
			}
			switch op {
			case "truncate":
				err = f.TruncateWith(ctx, off, bo)
			case "punch":
				err = f.PunchHoleWith(ctx, off, n, bo)
			default:
				err = f.ZeroRangeWith(ctx, off, n, bo)
			}
			return errors.Join(err, f.Close())
		}))
	}
}

// wrap bounds a handler's request and turns its error into a response
// that names the error's sentinel, so the client can wrap it again.
func (o *adminOps) wrap(writes bool, h func(context.Context, http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if writes && !o.s.opts.AdminWrites {
			writeAdminError(w, fmt.Errorf("daxstore: %s: %w (pid %d; it must open the store with Options.AdminWrites)",
				o.s.dir, ErrAdminWrites, os.Getpid()))
			return
		}
		if r.Method != http.MethodPut {
			// No other request has a body worth reading: take what there
			// is now, up to the limit, so that an oversized one is refused
			// before it changes anything.
			if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, adminMaxBody)); err != nil {
				writeAdminError(w, fmt.Errorf("daxstore: admin %s: request body: %v: %w", r.URL.Path, err, ErrTooLarge))
				return
			}
		}
		ctx, cancel := o.opContext(r)
		defer cancel()
		if err := h(ctx, w, r); err != nil {
			writeAdminError(w, err)
		}
	}
}

// get streams a value: its bytes, holes as zeros, Content-Length its size.
// The file is read between writes to the connection, not during them, so
// a client that reads slowly holds no operation in flight.
func (o *adminOps) get(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	f, err := o.s.Open(r.URL.Query().Get("key"))
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	rc := http.NewResponseController(w)
	buf := make([]byte, min(adminChunk, size))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil // headers are out: cutting the stream short is the error
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			off += int64(n)
		}
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			return nil // the value shrank or failed: the client sees a short body
		}
	}
	return nil
}

// put streams the request body into the store with PutReader.
func (o *adminOps) put(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	bo, err := adminPolicy(q)
	if err != nil {
		return err
	}
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil {
		return fmt.Errorf("daxstore: admin put: size %q: %w", q.Get("size"), ErrInvalidRange)
	}
	limit := int64(o.s.region.BlockCount()-1) * o.s.bs
	rc := http.NewResponseController(w)
	body := &deadlineReader{r: http.MaxBytesReader(w, r.Body, limit+1), rc: rc}
	// Close cuts a put waiting for its client: the read returns at once.
	stop := context.AfterFunc(ctx, func() { _ = rc.SetReadDeadline(time.Now()) })
	defer stop()
	err = o.s.PutReader(ctx, q.Get("key"), body, size, bo)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("daxstore: admin put: the value exceeds the region's %d bytes: %w", limit, ErrTooLarge)
	}
	return err
}

// deadlineReader extends the connection's read deadline by
// adminReadTimeout for each adminChunk bytes read: a client must keep
// sending at that rate or be cut off.
type deadlineReader struct {
	r    io.Reader
	rc   *http.ResponseController
	left int64 // bytes until the next extension
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.left <= 0 {
		_ = d.rc.SetReadDeadline(time.Now().Add(adminReadTimeout))
		d.left = adminChunk
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	return n, err
}

func adminPolicy(q url.Values) (BreakOptions, error) {
	p := q.Get("policy")
	if p == "" {
		return BreakOptions{}, nil
	}
	pol, err := ParseBreakPolicy(p)
	return BreakOptions{Policy: pol}, err
}

// splitCheck recovers the violations from Check's error, one per line
// after its summary line.
func splitCheck(err error) []string {
	var out []string
	for i, l := range splitLines(err.Error()) {
		if i > 0 && l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = []string{err.Error()}
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		line := s[:i]
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			line = line[1:]
		}
		out = append(out, line)
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// adminSentinels are the errors that cross the socket by name.
var adminSentinels = map[string]error{
	"not_found": ErrNotFound, "exist": ErrExist, "invalid_key": ErrInvalidKey,
	"invalid_range": ErrInvalidRange, "too_large": ErrTooLarge, "no_space": ErrNoSpace,
	"pinned": ErrPinned, "closed": ErrClosed, "corrupt": ErrCorrupt, "failed": ErrFailed,
	"read_only": ErrReadOnly, "not_dir": ErrNotDir, "is_dir": ErrIsDir, "not_empty": ErrNotEmpty,
	"admin_writes": ErrAdminWrites, "locked": ErrLocked,
}

type adminErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

func writeAdminError(w http.ResponseWriter, err error) {
	body := adminErrorBody{Error: err.Error()}
	for k, s := range adminSentinels {
		if errors.Is(err, s) {
			body.Kind = k
			break
		}
	}
	status := http.StatusInternalServerError
	switch {
	case body.Kind == "admin_writes":
		status = http.StatusForbidden
	case body.Kind == "not_found":
		status = http.StatusNotFound
	case body.Kind == "too_large":
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	case body.Kind != "":
		status = http.StatusConflict
	}
	extendWrite(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	extendWrite(w)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// extendWrite gives the response adminWriteTimeout from now: the server's
// own write deadline runs from the end of the request's headers, and an
// operation (a long put, a check, a Wait break) may have used it up.
func extendWrite(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(adminWriteTimeout))
}

// remoteError is an error the holder returned: its message as the holder
// wrote it, wrapping the sentinel it named.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// AdminClient talks to the process that holds a store over its admin
// socket. Its methods mirror the Store's and return the holder's errors,
// wrapping the same sentinels (ErrNotFound, ErrNoSpace, ...). The writing
// methods fail with ErrAdminWrites unless the holder opened the store with
// Options.AdminWrites. An AdminClient is safe for concurrent use; Close it
// when done.
type AdminClient struct {
	dir    string
	http   *http.Client
	holder adminHolder
}

// Dial connects to the admin socket of the process holding the store in
// dir. It fails, wrapping ErrNoStore, when no process serves one (nobody
// holds the store, or the holder disabled it with Options.NoAdminSocket).
func Dial(ctx context.Context, dir string) (*AdminClient, error) {
	path := filepath.Join(dir, AdminSocketName)
	c := &AdminClient{dir: dir, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     adminIdleTimeout / 2, // the server drops idle connections first
	}}}
	resp, err := c.do(ctx, http.MethodGet, "/holder", nil, nil)
	if err != nil {
		c.Close()
		if errors.Is(err, errNoSocket) {
			return nil, fmt.Errorf("daxstore: %s: %w: nobody serves its admin socket (%v)", dir, ErrNoStore, err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&c.holder); err != nil {
		c.Close()
		return nil, fmt.Errorf("daxstore: admin socket: %w", err)
	}
	return c, nil
}

// Close releases the client's idle connections.
func (c *AdminClient) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Pid is the holder's process id.
func (c *AdminClient) Pid() int { return c.holder.Pid }

// Writes reports whether the holder accepts writes (Options.AdminWrites).
func (c *AdminClient) Writes() bool { return c.holder.AdminWrites }

// BlockSize is the store's block size.
func (c *AdminClient) BlockSize() int64 { return c.holder.BlockSize }

// do sends one request and returns a response with status 200, or the
// holder's error.
func (c *AdminClient) do(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Response, error) {
	u := "http://daxstore" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", errNoSocket, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb adminErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, adminMaxBody)).Decode(&eb); err != nil || eb.Error == "" {
		return nil, fmt.Errorf("daxstore: admin socket: %s", resp.Status)
	}
	return nil, &remoteError{msg: eb.Error, sentinel: adminSentinels[eb.Kind]}
}

func (c *AdminClient) getJSON(ctx context.Context, method, path string, q url.Values, v any, body ...io.Reader) error {
	var b io.Reader
	if len(body) > 0 {
		b = body[0]
	}
	resp, err := c.do(ctx, method, path, q, b)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("daxstore: admin socket: %w", err)
	}
	return nil
}

// Snapshot returns the holder's busy extents, pins and statistics.
func (c *AdminClient) Snapshot(ctx context.Context) (*Snapshot, error) {
	var snap Snapshot
	return &snap, c.getJSON(ctx, http.MethodGet, "/snapshot", nil, &snap)
}

// List is Store.List in the holder.
func (c *AdminClient) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	var files []FileInfo
	return files, c.getJSON(ctx, http.MethodGet, "/files", url.Values{"prefix": {prefix}}, &files)
}

// Stat is Store.Stat in the holder.
func (c *AdminClient) Stat(ctx context.Context, key string) (FileInfo, error) {
	var fi FileInfo
	return fi, c.getJSON(ctx, http.MethodGet, "/stat", url.Values{"key": {key}}, &fi)
}

// Get streams key's value from the holder: its size and a reader of its
// bytes (holes read as zeros), which the caller must close. A reader that
// ends before size bytes returns io.ErrUnexpectedEOF: the value shrank or
// the holder went away meanwhile.
func (c *AdminClient) Get(ctx context.Context, key string) (int64, io.ReadCloser, error) {
	resp, err := c.do(ctx, http.MethodGet, "/get", url.Values{"key": {key}}, nil)
	if err != nil {
		return 0, nil, err
	}
	return resp.ContentLength, resp.Body, nil
}

// Check runs Store.Check in the holder and reports what it found and how
// long it paused the store. A store that is not consistent is a result,
// not an error.
func (c *AdminClient) Check(ctx context.Context) (CheckResult, error) {
	var res CheckResult
	return res, c.getJSON(ctx, http.MethodPost, "/check", nil, &res)
}

// PutReader is Store.PutReader in the holder: r streams to it. size is
// the value's exact size, or -1 when unknown.
func (c *AdminClient) PutReader(ctx context.Context, key string, r io.Reader, size int64, bo BreakOptions) error {
	q := breakQuery(key, bo)
	q.Set("size", strconv.FormatInt(size, 10))
	return c.getJSON(ctx, http.MethodPut, "/put", q, nil, r)
}

// Remove is Store.RemoveWith in the holder.
func (c *AdminClient) Remove(ctx context.Context, key string, bo BreakOptions) error {
	return c.getJSON(ctx, http.MethodPost, "/rm", breakQuery(key, bo), nil)
}

// Truncate is File.TruncateWith in the holder.
func (c *AdminClient) Truncate(ctx context.Context, key string, size int64, bo BreakOptions) error {
	return c.rangeOp(ctx, "/truncate", key, size, 0, bo)
}

// PunchHole is File.PunchHoleWith in the holder.
func (c *AdminClient) PunchHole(ctx context.Context, key string, off, n int64, bo BreakOptions) error {
	return c.rangeOp(ctx, "/punch", key, off, n, bo)
}

// ZeroRange is File.ZeroRangeWith in the holder.
func (c *AdminClient) ZeroRange(ctx context.Context, key string, off, n int64, bo BreakOptions) error {
	return c.rangeOp(ctx, "/zero", key, off, n, bo)
}

func (c *AdminClient) rangeOp(ctx context.Context, path, key string, off, n int64, bo BreakOptions) error {
	q := breakQuery(key, bo)
	q.Set("off", strconv.FormatInt(off, 10))
	q.Set("n", strconv.FormatInt(n, 10))
	return c.getJSON(ctx, http.MethodPost, path, q, nil)
}

func breakQuery(key string, bo BreakOptions) url.Values {
	q := url.Values{"key": {key}}
	if bo.Policy != PolicyDefault {
		q.Set("policy", bo.Policy.String())
	}
	return q
}
