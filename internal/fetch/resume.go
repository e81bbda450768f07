package fetch

import (
	"encoding/json"
	"errors"
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
}

// newTransfer opens the partial file, taking over what a previous run downloaded when it knows which
// object that was.
func newTransfer(o Options) (*transfer, error) {
	f, err := os.OpenFile(filepath.Join(o.Dest, partialName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	t := &transfer{o: o, f: f, total: -1}
	var st savedState
	b, err := os.ReadFile(filepath.Join(o.Dest, stateName))
	info, serr := f.Stat()
	if err != nil || serr != nil || json.Unmarshal(b, &st) != nil || info.Size() == 0 ||
		(st.Total >= 0 && info.Size() > st.Total) || (st.ETag == "" && st.LastModified == "") {
		if err := t.restart(); err != nil {
			_ = f.Close()
			return nil, err
		}
		return t, nil
	}
	t.have, t.total, t.etag, t.lastModified = info.Size(), st.Total, st.ETag, st.LastModified
	o.Log.Info("Resuming the download of a previous run", "downloaded", humanBytes(float64(t.have)))
	return t, nil
}

// saveState records which object the partial file holds, once its first response arrived.
func (t *transfer) saveState() error {
	b, err := json.Marshal(savedState{ETag: t.etag, LastModified: t.lastModified, Total: t.total})
	if err != nil {
		return err
	}
	tmp := filepath.Join(t.o.Dest, stateName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(t.o.Dest, stateName))
}

// restart forgets what was downloaded.
func (t *transfer) restart() error {
	t.have, t.total, t.etag, t.lastModified = 0, -1, "", ""
	if err := os.Remove(filepath.Join(t.o.Dest, stateName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return t.f.Truncate(0)
}

// removeDownload removes the partial file and its state.
func removeDownload(o Options) {
	_ = os.Remove(filepath.Join(o.Dest, partialName))
	_ = os.Remove(filepath.Join(o.Dest, stateName))
}
