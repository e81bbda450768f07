package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"unicode"
)

// maxLinkHops is how many links a path may pass through, as Linux's MAXSYMLINKS.
const maxLinkHops = 40

// extractor writes archive entries through an os.Root, so that no operation can leave the staging
// directory whatever the archive holds, and refuses entries that would be unsafe for whoever later
// reads the tree without such protection: names outside it, writes through links, and links that
// resolve outside it.
type extractor struct {
	o       Options
	root    *os.Root
	entries int
	written int64
	// dirs holds the directories created so far; fetch never removes one, so a hit needs no Lstat.
	dirs map[string]bool
	// links maps every symbolic link created to its target, and linkOrder lists them as extracted,
	// for the final check.
	links     map[string]string
	linkOrder []string
	// linkSteps is how many path elements the last checkLinks walked.
	linkSteps int
	// dirRoot is the last directory a file was written in, opened as a Root: archives list a
	// directory's files together, and every operation through x.root walks each element of the path.
	dirRoot     *os.Root
	dirRootPath string
	buf         []byte
}

// copyBuffer is the size of the writes of extracted files: few system calls, little memory.
const copyBuffer = 1 << 20

func newExtractor(o Options, root *os.Root) *extractor {
	return &extractor{o: o, root: root, dirs: map[string]bool{}, links: map[string]string{}}
}

func (x *extractor) count() error {
	x.entries++
	if x.entries > x.o.MaxEntries {
		return x.tooManyEntries()
	}
	return nil
}

func (x *extractor) tooManyEntries() error {
	return refused("the archive has more than --max-entries (%d) entries", x.o.MaxEntries)
}

// entryPath checks an entry's name and returns it as a clean relative path and its elements.
func (x *extractor) entryPath(name string) (string, []string, error) {
	if len(name) > MaxPathLength {
		return "", nil, refused("archive entry %q has a name longer than %d bytes", cleanName(name), MaxPathLength)
	}
	if hasControl(name) {
		return "", nil, refused("archive entry %q has control characters in its name", cleanName(name))
	}
	if strings.HasPrefix(name, "/") {
		return "", nil, refused("archive entry %q points outside the destination (absolute path)", cleanName(name))
	}
	var elems []string
	for e := range strings.SplitSeq(name, "/") {
		switch e {
		case "", ".":
			continue
		case "..":
			return "", nil, refused("archive entry %q points outside the destination (\"..\")", cleanName(name))
		}
		if len(e) > MaxNameLength {
			return "", nil, refused("archive entry %q has an element longer than %d bytes", cleanName(name), MaxNameLength)
		}
		elems = append(elems, e)
	}
	if len(elems) > 0 && reservedName(elems[0]) {
		return "", nil, refused("archive entry %q uses a name fetch keeps for its own files (%s, .fetch-*)",
			cleanName(name), recordName)
	}
	if len(elems) > MaxPathDepth {
		return "", nil, refused("archive entry %q is more than %d levels deep", cleanName(name), MaxPathDepth)
	}
	return strings.Join(elems, "/"), elems, nil
}

// mkdirs creates the directories elems names, each with DirMode, refusing to pass through a link or
// a file: writing through a link would put the entry wherever the archive chose. It walks down one
// directory at a time, each opened as a Root, so that a deep new chain costs a few calls per level
// rather than a walk from the top per level.
func (x *extractor) mkdirs(name string, elems []string) error {
	if len(elems) == 0 || x.dirs[strings.Join(elems, "/")] {
		return nil // the usual case: a directory whose files came before
	}
	cur := x.root
	defer func() {
		if cur != x.root {
			_ = cur.Close()
		}
	}()
	dir := ""
	for i, e := range elems {
		if dir != "" {
			dir += "/"
		}
		dir += e
		if !x.dirs[dir] {
			if err := x.mkdir(cur, name, dir, e); err != nil {
				return err
			}
			x.dirs[dir] = true
		}
		if i == len(elems)-1 {
			return nil
		}
		next, err := cur.OpenRoot(e)
		if err != nil {
			return fmt.Errorf("extracting %q: %w", cleanName(name), err)
		}
		if cur != x.root {
			_ = cur.Close()
		}
		cur = next
	}
	return nil
}

// mkdir makes sure that e, in parent, is a directory and not a link; dir is its path from the top.
func (x *extractor) mkdir(parent *os.Root, name, dir, e string) error {
	info, err := parent.Lstat(e)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := parent.Mkdir(e, x.o.DirMode); err != nil {
			return fmt.Errorf("extracting %q: %w", cleanName(name), err)
		}
		// Mkdir's mode is reduced by the umask; the pod's other users need exactly DirMode.
		return parent.Chmod(e, x.o.DirMode)
	case err != nil:
		return fmt.Errorf("extracting %q: %w", cleanName(name), err)
	case info.Mode()&fs.ModeSymlink != 0:
		return refused("archive entry %q passes through a symbolic link", cleanName(name))
	case !info.IsDir():
		return refused("archive entry %q passes through %q, which is not a directory", cleanName(name), dir)
	}
	return nil
}

func (x *extractor) dir(name string) error {
	_, elems, err := x.entryPath(name)
	if err != nil {
		return err
	}
	return x.mkdirs(name, elems)
}

func (x *extractor) file(name string, size int64, r io.Reader) error {
	_, elems, err := x.entryPath(name)
	if err != nil {
		return err
	}
	if len(elems) == 0 {
		return refused("archive entry %q is a file without a name", cleanName(name))
	}
	if size > x.o.MaxBytes-x.written {
		return x.tooBig()
	}
	if err := x.mkdirs(name, elems[:len(elems)-1]); err != nil {
		return err
	}
	dir, err := x.openDir(strings.Join(elems[:len(elems)-1], "/"))
	if err != nil {
		return fmt.Errorf("extracting %q: %w", cleanName(name), err)
	}
	out, err := dir.OpenFile(elems[len(elems)-1], os.O_WRONLY|os.O_CREATE|os.O_EXCL, x.o.FileMode)
	if errors.Is(err, fs.ErrExist) {
		return refused("archive entry %q appears twice", cleanName(name))
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", cleanName(name), err)
	}
	if x.buf == nil {
		x.buf = make([]byte, copyBuffer)
	}
	// Through a plain Writer: *os.File's ReadFrom would copy 32 KiB at a time.
	n, err := io.CopyBuffer(struct{ io.Writer }{out}, io.LimitReader(r, x.o.MaxBytes-x.written+1), x.buf)
	x.written += n
	if err == nil {
		err = out.Chmod(x.o.FileMode) // the mode of OpenFile is reduced by the umask
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", cleanName(name), err)
	}
	if x.written > x.o.MaxBytes {
		return x.tooBig()
	}
	return nil
}

// openDir returns dir (a directory mkdirs created, so no link) as a Root, reusing the last one.
func (x *extractor) openDir(dir string) (*os.Root, error) {
	if dir == "" {
		return x.root, nil
	}
	if x.dirRoot != nil && x.dirRootPath == dir {
		return x.dirRoot, nil
	}
	x.close()
	r, err := x.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	x.dirRoot, x.dirRootPath = r, dir
	return r, nil
}

func (x *extractor) close() {
	if x.dirRoot != nil {
		_ = x.dirRoot.Close()
		x.dirRoot, x.dirRootPath = nil, ""
	}
}

func (x *extractor) tooBig() error {
	return refused("the extracted package is larger than --max-bytes (%s)", humanBytes(float64(x.o.MaxBytes)))
}

func (x *extractor) symlink(name, target string) error {
	p, elems, err := x.entryPath(name)
	if err != nil {
		return err
	}
	if len(elems) == 0 {
		return refused("archive entry %q is a link without a name", cleanName(name))
	}
	if target == "" || len(target) > MaxPathLength || hasControl(target) {
		return refused("archive entry %q is a symbolic link with an invalid target", cleanName(name))
	}
	if err := x.mkdirs(name, elems[:len(elems)-1]); err != nil {
		return err
	}
	// The cheap checks refuse most hostile links at once; what other links make of this one is known
	// only when the tree is complete (checkLinks).
	if path.IsAbs(target) {
		return refused("archive entry %q is a symbolic link to an absolute path", cleanName(p))
	}
	if j := path.Join(path.Dir(p), target); j == ".." || strings.HasPrefix(j, "../") {
		return refused("archive entry %q is a symbolic link that resolves outside the destination", cleanName(p))
	}
	if err := x.root.Symlink(target, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return refused("archive entry %q appears twice", cleanName(name))
		}
		return fmt.Errorf("extracting %q: %w", cleanName(name), err)
	}
	x.links[p] = target
	x.linkOrder = append(x.linkOrder, p)
	return nil
}

// checkLinks refuses the finished tree if any of its links resolves outside it. A link extracted
// later can change where an earlier one leads, so this runs once all entries are in place.
//
// The extractor made every entry of the staging directory itself, so the links it recorded are all
// the links there are: resolution needs no system call, and each link is resolved once (memoised),
// which keeps the check linear in the archive's size however deep and numerous the links are.
func (x *extractor) checkLinks() error {
	r := linkResolver{links: x.links, memo: map[string]resolvedLink{}, active: map[string]bool{}}
	defer func() { x.linkSteps = r.steps }()
	for _, p := range x.linkOrder {
		inside, err := r.resolveLink(p, 0)
		if err != nil {
			return err
		}
		if !inside {
			return refused("archive entry %q is a symbolic link that resolves outside the destination", cleanName(p))
		}
	}
	return nil
}

// linkResolver walks paths through the links of the tree as the kernel would. It must not clean a path
// first: "y/.." is the root's parent when y is a link to ".", which is why each link is resolved
// through the tree and not checked on its own text. An element that is not a link (or does not exist)
// is taken literally.
type linkResolver struct {
	links map[string]string
	// memo holds each link's resolution: the canonical path it leads to, or that it leaves the root.
	memo map[string]resolvedLink
	// active holds the links being resolved, to refuse cycles.
	active map[string]bool
	// steps counts the path elements walked.
	steps int
}

type resolvedLink struct {
	path   string
	inside bool
}

// resolveLink resolves the link at p (a canonical path: its directories are real ones, never links).
func (r *linkResolver) resolveLink(p string, depth int) (bool, error) {
	_, inside, err := r.follow(p, depth)
	return inside, err
}

// follow returns where the link at p leads.
func (r *linkResolver) follow(p string, depth int) (string, bool, error) {
	if m, ok := r.memo[p]; ok {
		return m.path, m.inside, nil
	}
	if r.active[p] || depth >= maxLinkHops {
		return "", false, refused("archive entry %q: too many levels of symbolic links", cleanName(p))
	}
	r.active[p] = true
	target := r.links[p]
	res := resolvedLink{}
	var err error
	if !path.IsAbs(target) {
		res.path, res.inside, err = r.walk(parentDir(p), target, depth+1)
	}
	delete(r.active, p)
	if err != nil {
		return "", false, err
	}
	r.memo[p] = res
	return res.path, res.inside, nil
}

// walk resolves rel from the canonical directory cur ("" is the root). The path is built in one
// buffer: a map lookup of string(buf) allocates nothing, and only links cost a string.
func (r *linkResolver) walk(cur, rel string, depth int) (string, bool, error) {
	buf := append(make([]byte, 0, len(cur)+len(rel)+1), cur...)
	for e := range strings.SplitSeq(rel, "/") {
		r.steps++
		switch e {
		case "", ".":
			continue
		case "..":
			if len(buf) == 0 {
				return "", false, nil
			}
			buf = buf[:max(bytes.LastIndexByte(buf, '/'), 0)]
			continue
		}
		if len(buf) > 0 {
			buf = append(buf, '/')
		}
		buf = append(buf, e...)
		if _, isLink := r.links[string(buf)]; !isLink {
			continue
		}
		to, inside, err := r.follow(string(buf), depth)
		if err != nil || !inside {
			return "", false, err
		}
		buf = append(buf[:0], to...)
	}
	return string(buf), true, nil
}

// parentDir is p's directory, "" for the root.
func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }
