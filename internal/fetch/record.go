package fetch

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pixxel-space/taskdownload-operator/internal/version"
)

// recordName is the file, in Dest, that says what fetch placed there. A main container can check what
// it got; the next fetch into the same Dest asks the storage whether the object is still the same one
// (If-None-Match) and, if so, does nothing.
const recordName = ".taskdownload.json"

// recordTemp is the record while it is written.
const recordTemp = ".fetch-record.tmp"

// Record is the content of <dest>/.taskdownload.json.
type Record struct {
	// URL is the package's URL without its query (the signature) or userinfo.
	URL string `json:"url"`
	// Size is the package's size in bytes, as downloaded (the archive, not what it extracts to).
	Size int64 `json:"size"`
	// Digest is "algorithm:hex" of the package, as the storage sent it and fetch verified it; empty
	// when the storage sent none.
	Digest string `json:"digest,omitempty"`
	// Format is how the package was placed: zip, tar, tar.gz, or none (saved as File).
	Format string `json:"format"`
	File   string `json:"file,omitempty"`
	// ETag and LastModified identify the object to the storage.
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"lastModified,omitempty"`
	Time         time.Time `json:"time"`
	FetchVersion string    `json:"fetchVersion"`
}

// reservedName reports whether name, in Dest, is one of fetch's own files.
func reservedName(name string) bool {
	return name == recordName || strings.HasPrefix(name, ".fetch-")
}

// urlWithoutQuery is what the record keeps of a URL: no signature, no credentials.
func urlWithoutQuery(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// readRecord returns the record of the last successful run in Dest, nil when there is none.
func readRecord(o Options) *Record {
	b, err := os.ReadFile(filepath.Join(o.Dest, recordName))
	if err != nil {
		return nil
	}
	var r Record
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	return &r
}

// writeRecord replaces the record atomically.
func writeRecord(o Options, r Record) error {
	r.Time = time.Now().UTC().Truncate(time.Second)
	r.FetchVersion = version.String()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(o.Dest, recordTemp)
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, o.FileMode); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(o.Dest, recordName))
}
