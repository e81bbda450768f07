package fetch

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Signatures and sizes of the zip records checkZipEntries reads (APPNOTE.TXT 4.3.12 to 4.3.16).
const (
	zipDirHeaderSig   = 0x02014b50
	zipDirEndSig      = 0x06054b50
	zip64DirEndSig    = 0x06064b50
	zip64LocatorSig   = 0x07064b50
	zipDirHeaderLen   = 46
	zipDirEndLen      = 22
	zip64LocatorLen   = 20
	zip64DirEndLen    = 56
	zipMaxCommentLen  = 0xffff
	zipDirEndSearched = zipDirEndLen + zipMaxCommentLen
)

// checkZipEntries counts the records of a zip's central directory, reading them one at a time, and
// refuses the archive as soon as there are more than limit: archive/zip reads the whole directory and
// allocates for every entry before anyone can count them, and the count the archive declares may lie.
func checkZipEntries(r io.ReaderAt, size int64, limit int) error {
	start, dirSize, err := zipDirectory(r, size)
	if err != nil {
		return nil //nolint:nilerr // not a zip we can read: archive/zip says why
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, dirSize), 64<<10)
	var h [zipDirHeaderLen]byte
	for n := 0; ; n++ {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil //nolint:nilerr // the directory ends (or is cut short: archive/zip says so)
		}
		if binary.LittleEndian.Uint32(h[:]) != zipDirHeaderSig {
			return nil
		}
		if n >= limit {
			return refused("the archive has more than --max-entries (%d) entries", limit)
		}
		skip := int(binary.LittleEndian.Uint16(h[28:])) + int(binary.LittleEndian.Uint16(h[30:])) +
			int(binary.LittleEndian.Uint16(h[32:]))
		if _, err := br.Discard(skip); err != nil {
			return nil //nolint:nilerr // cut short: archive/zip says so
		}
	}
}

// zipDirectory finds the central directory from the end record (and its zip64 form). The directory is
// taken to end where the end record begins, as archive/zip does for archives with data prepended.
func zipDirectory(r io.ReaderAt, size int64) (start, dirSize int64, err error) {
	tail := min(size, zipDirEndSearched)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	end := -1
	for i := len(buf) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) == zipDirEndSig {
			end = i
			break
		}
	}
	if end < 0 {
		return 0, 0, errors.New("no end of central directory")
	}
	endAt := size - tail + int64(end)
	dirSize = int64(binary.LittleEndian.Uint32(buf[end+12:]))
	if dirSize == 0xffffffff && end >= zip64LocatorLen &&
		binary.LittleEndian.Uint32(buf[end-zip64LocatorLen:]) == zip64LocatorSig {
		at := int64(binary.LittleEndian.Uint64(buf[end-zip64LocatorLen+8:]))
		var rec [zip64DirEndLen]byte
		if at < 0 || at > size-zip64DirEndLen {
			return 0, 0, errors.New("bad zip64 locator")
		}
		if _, err := r.ReadAt(rec[:], at); err != nil {
			return 0, 0, err
		}
		if binary.LittleEndian.Uint32(rec[:]) != zip64DirEndSig {
			return 0, 0, errors.New("bad zip64 end of central directory")
		}
		dirSize, endAt = int64(binary.LittleEndian.Uint64(rec[40:])), at
	}
	if dirSize < 0 || dirSize > endAt {
		return 0, 0, fmt.Errorf("central directory of %d bytes before offset %d", dirSize, endAt)
	}
	return endAt - dirSize, dirSize, nil
}
