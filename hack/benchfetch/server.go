package main

import (
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// serveForever serves the packages until the process is killed; it returns only an error.
func serveForever(cache string) error {
	sums, err := generate(cache)
	if err != nil {
		return err
	}
	_, base, err := serve(cache, sums)
	if err != nil {
		return err
	}
	for _, p := range packages {
		fmt.Println(base + "/" + p.file)
	}
	select {}
}

// serve serves the cache's packages as GCS does: Content-Length, Range, If-Range, an ETag that is the
// object's MD5, and x-goog-hash with its CRC-32C and MD5. fetch verifies one of them while it streams.
func serve(cache string, sums map[string]sum) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			name := filepath.Base(r.URL.Path)
			f, err := os.Open(filepath.Join(cache, name))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer func() { _ = f.Close() }()
			info, err := f.Stat()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s := sums[name]
			w.Header().Set("ETag", `"`+hex.EncodeToString(s.MD5)+`"`)
			if !*md5Only {
				w.Header().Set("X-Goog-Hash", "crc32c="+base64.StdEncoding.EncodeToString(s.CRC32C)+
					",md5="+base64.StdEncoding.EncodeToString(s.MD5))
			}
			http.ServeContent(w, r, name, info.ModTime(), f)
		})}
	go func() { _ = srv.Serve(l) }()
	return srv, "http://" + l.Addr().String(), nil
}

// md5Only makes the server send only an MD5 ETag, as S3 does for a single-part upload.
var md5Only = flag.Bool("md5-only", false, "send only an MD5 ETag (S3), not GCS's x-goog-hash with a CRC-32C")
