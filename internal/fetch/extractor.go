package fetch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

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
