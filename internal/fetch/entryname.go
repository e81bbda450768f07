package fetch

import (
	"strings"
	"unicode"
)

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

// hasControl reports whether s holds a control character.
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }
