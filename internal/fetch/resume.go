package fetch

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The download is kept under fixed names across runs: when the kubelet restarts a failed init container
// in the same pod (restartPolicy OnFailure), the emptyDir is still there and the next run resumes where
// the last one stopped, if the object is still the same one. One fetch at a time per destination.
const (
	partialName = ".fetch-download.partial"
	stateName   = ".fetch-download.json"
)

// savedState identifies the object whose first bytes the partial file holds.
type savedState struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Total        int64  `json:"total"`
	Format       string `json:"format,omitempty"`
	Digest       digest `json:"digest,omitzero"`
}

// newTransfer takes over what a previous run downloaded into the partial file when it knows which
// object that was. Only packages that are not streamed (zip, plain files) have a partial file: a tar
// or tar.gz interrupted by the end of the process starts over.
func newTransfer(o Options) *transfer {
	t := &transfer{o: o, total: -1}
	var st savedState
	b, err := os.ReadFile(filepath.Join(o.Dest, stateName))
	info, serr := os.Stat(filepath.Join(o.Dest, partialName))
	if err != nil || serr != nil || json.Unmarshal(b, &st) != nil || info.Size() == 0 ||
		(st.Total >= 0 && info.Size() > st.Total) || (st.ETag == "" && st.LastModified == "") || streams(st.Format) {
		removeDownload(o)
		return t
	}
	f, err := os.OpenFile(filepath.Join(o.Dest, partialName), os.O_RDWR, 0o600)
	if err != nil {
		removeDownload(o)
		return t
	}
	if st.Format == "" { // saved by a version that decided the format only at the end
		head := make([]byte, detectLength)
		n, _ := f.ReadAt(head, 0)
		st.Format = detectFormat(o, head[:n])
	}
	t.file, t.format = f, st.Format
	t.have, t.total, t.etag, t.lastModified, t.want = info.Size(), st.Total, st.ETag, st.LastModified, st.Digest
	o.Log.Info("Resuming the download of a previous run", "downloaded", humanBytes(float64(t.have)))
	return t
}

// saveState records which object the partial file holds, once its first response arrived.
func (t *transfer) saveState() error {
	b, err := json.Marshal(savedState{
		ETag: t.etag, LastModified: t.lastModified, Total: t.total, Format: t.format, Digest: t.want,
	})
	if err != nil {
		return err
	}
	tmp := filepath.Join(t.o.Dest, stateName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(t.o.Dest, stateName))
}

// restart forgets what was received.
func (t *transfer) restart() error {
	t.have, t.total, t.etag, t.lastModified = 0, -1, "", ""
	t.want, t.sum, t.summed = digest{}, nil, 0
	if t.stream != nil {
		t.stream.abort()
		t.stream = nil
	}
	if t.file == nil {
		return nil
	}
	if err := os.Remove(filepath.Join(t.o.Dest, stateName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := t.file.Truncate(0); err != nil {
		return err
	}
	_, err := t.file.Seek(0, io.SeekStart)
	return err
}

// openFile makes the partial file, empty.
func (t *transfer) openFile() error {
	if t.file != nil {
		return nil // emptied by restart
	}
	f, err := os.OpenFile(filepath.Join(t.o.Dest, partialName), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	t.file = f
	return err
}

// closeFile closes the partial file, and removes it and its state when remove.
func (t *transfer) closeFile(remove bool) {
	if t.file != nil {
		_ = t.file.Close()
		t.file = nil
	}
	if remove {
		removeDownload(t.o)
	}
}

// removeDownload removes the partial file and its state.
func removeDownload(o Options) {
	_ = os.Remove(filepath.Join(o.Dest, partialName))
	_ = os.Remove(filepath.Join(o.Dest, stateName))
}
