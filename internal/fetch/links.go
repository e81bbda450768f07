package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxLinkHops is how many links a path may pass through, as Linux's MAXSYMLINKS.
const maxLinkHops = 40

// symlink creates the symbolic link name to target, and records it for checkLinks.
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
