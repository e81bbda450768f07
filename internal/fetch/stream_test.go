package fetch_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // the digest storages send
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

// bigTarGz is a tar.gz of a few files of random bytes (incompressible: the compressed stream is as long
// as the files), named by contents' keys in order.
func bigTarGz(t *testing.T, names []string, contents map[string]string) []byte {
	hs := make([]tar.Header, 0, len(names))
	for _, n := range names {
		hs = append(hs, regular(n))
	}
	return tarGz(t, hs, contents)
}

// A tar.gz is extracted while it arrives: half way through the body its first entries are already
// on disk (in the staging directory), and no copy of the archive is kept, so that the volume needs
// the extracted size, not twice it.
func TestTarGzIsExtractedWhileItDownloads(t *testing.T) {
	g := NewWithT(t)
	first, second := string(randomBytes(2<<20)), string(randomBytes(2<<20))
	archive := bigTarGz(t, []string{"scene/first.tif", "scene/second.tif"},
		map[string]string{"scene/first.tif": first, "scene/second.tif": second})
	s := newStorage(t, archive)
	o, _ := serveURL(t, s.url("good"))
	var during []string
	s.pauseAt = 3 << 20 // the first file and part of the second
	s.onPause = func() {
		g.Eventually(func() []string {
			during = nil
			_ = filepath.WalkDir(o.Dest, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					info, _ := d.Info()
					rel, _ := filepath.Rel(o.Dest, p)
					during = append(during, rel)
					if strings.HasSuffix(p, "first.tif") && info.Size() != int64(len(first)) {
						during = during[:len(during)-1] // not complete yet
					}
				}
				return nil
			})
			return during
		}, 20*time.Second, 10*time.Millisecond).Should(ContainElement(MatchRegexp(`^\.fetch-extract-\d+/scene/first\.tif$`)),
			"the first entry is extracted before the body ends")
	}
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(during).NotTo(ContainElement(ContainSubstring(".fetch-download")), "no copy of the archive on disk")
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "first.tif"))).To(Equal([]byte(first)))
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "second.tif"))).To(Equal([]byte(second)))
	g.Expect(tree(t, o.Dest)).To(ConsistOf("scene/", "scene/first.tif", "scene/second.tif", ".taskdownload.json"))
}

// A connection broken in the middle of an entry resumes with Range + If-Range, and the decoder goes on
// where it stopped: one extracted tree, identical to the archive's.
func TestStreamResumesInTheMiddleOfAnEntry(t *testing.T) {
	for _, format := range []string{"tar", "tar.gz"} {
		t.Run(format, func(t *testing.T) {
			g := NewWithT(t)
			band := string(randomBytes(1 << 20))
			archive := bigTarGz(t, []string{"scene/meta.json", "scene/band.tif"},
				map[string]string{"scene/meta.json": "{}", "scene/band.tif": band})
			if format == "tar" {
				archive = gunzip(t, archive)
			}
			s := newStorage(t, archive)
			s.dropAfter = 300_000 // inside band.tif
			o, _ := serveURL(t, s.url("good"))
			g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
			g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "band.tif"))).To(Equal([]byte(band)))
			g.Expect(s.log()).To(Equal([]request{{"", "", "good"}, {"bytes=300000-", `"v1"`, "good"}}),
				"one resume, from where the first response stopped, only if the object is the same")
			g.Expect(tree(t, o.Dest)).To(ConsistOf("scene/", "scene/meta.json", "scene/band.tif", ".taskdownload.json"))
		})
	}
}

// The object changes while it streams (a repackaged task behind a refreshed URL): whatever was
// extracted of the old one is thrown away and the new one is extracted from its start.
func TestStreamRestartsWhenTheObjectChanges(t *testing.T) {
	for _, ignoreIfRange := range []bool{false, true} {
		t.Run(map[bool]string{false: "storage honours If-Range", true: "storage ignores If-Range"}[ignoreIfRange],
			func(t *testing.T) {
				g := NewWithT(t)
				old := bigTarGz(t, []string{"old/a.tif", "old/b.tif"},
					map[string]string{"old/a.tif": string(randomBytes(200_000)), "old/b.tif": string(randomBytes(800_000))})
				newBand := string(randomBytes(600_000))
				repackaged := bigTarGz(t, []string{"new/band.tif"}, map[string]string{"new/band.tif": newBand})
				s := newStorage(t, old)
				s.ignoreIfRange = ignoreIfRange
				s.dropAfter = 409_600 // old/a.tif is extracted, old/b.tif is not complete
				s.afterDrop = func() { s.replace(repackaged, `"v2"`) }
				o, logs := serveURL(t, s.url("good"))
				g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
				g.Expect(tree(t, o.Dest)).To(ConsistOf("new/", "new/band.tif", ".taskdownload.json"),
					"nothing of the old object")
				g.Expect(os.ReadFile(filepath.Join(o.Dest, "new", "band.tif"))).To(Equal([]byte(newBand)))
				g.Expect(logs.String()).To(ContainSubstring("starting over"))
			})
	}
}

// A break that the retries cannot mend leaves the destination as it was and nothing of the stream.
func TestExhaustedStreamLeavesTheDestinationAsItWas(t *testing.T) {
	g := NewWithT(t)
	archive := bigTarGz(t, []string{"scene/band.tif"}, map[string]string{"scene/band.tif": string(randomBytes(1 << 20))})
	s := newStorage(t, archive)
	s.stallAfter = 200_000
	o, _ := serveURL(t, s.url("good"))
	o.IdleTimeout, o.Retries = 300*time.Millisecond, 1
	g.Expect(os.MkdirAll(o.Dest, 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(o.Dest, "keep.txt"), []byte("mine"), 0o644)).To(Succeed())
	err := fetch.Run(context.Background(), o)
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
	g.Expect(tree(t, o.Dest)).To(ConsistOf("keep.txt"))
}

// Decompression bombs are refused while they stream, with nothing left on disk: entries that add up to
// more than --max-bytes, and zeros after the end of the tar stream (which a reader that stops at the
// tar's end would never see, nor the gzip checksum after them).
func TestGzipBombWhileStreaming(t *testing.T) {
	zeros := make([]byte, 8<<20)
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string
	}{
		{"entries beyond --max-bytes", func(t *testing.T) []byte {
			hs := make([]tar.Header, 16)
			contents := map[string]string{}
			for i := range hs {
				hs[i] = regular("zeros/" + string(rune('a'+i)))
				contents[hs[i].Name] = string(zeros)
			}
			return tarGz(t, hs, contents)
		}, "the extracted package is larger than --max-bytes"},
		{"zeros after the tar stream", func(t *testing.T) []byte {
			var buf bytes.Buffer
			gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = gz.Write(gunzip(t, tarGz(t, []tar.Header{regular("ok.txt")}, map[string]string{"ok.txt": "ok"})))
			for range 16 {
				_, _ = gz.Write(zeros)
			}
			NewWithT(t).Expect(gz.Close()).To(Succeed())
			return buf.Bytes()
		}, "decompression bomb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			archive := tc.archive(t)
			g.Expect(len(archive)).To(BeNumerically("<", 1<<20), "a bomb: small compressed")
			o, err := fetchArchive(t, archive, func(o *fetch.Options) { o.MaxBytes = 32 << 20 })
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
			g.Expect(tree(t, o.Dest)).To(BeEmpty())
		})
	}
}

// When the storage sends a digest, the download is verified against it while it streams; a mismatch
// exits 4 and leaves nothing behind. The record says which digest was verified.
// s3 are the headers by which fetch knows an S3-like storage, whose plain ETags are MD5s.
var s3 = http.Header{"X-Amz-Request-Id": {"4442587FB7D0A2F9"}}

func TestDigestIsVerified(t *testing.T) {
	archive := tarGz(t, []tar.Header{regular("scene/band.tif")}, map[string]string{"scene/band.tif": "B1"})
	md5Sum := md5.Sum(archive) //nolint:gosec // as storages do
	sha := sha256.Sum256(archive)
	crc := binary.BigEndian.AppendUint32(nil, crc32.Checksum(archive, crc32.MakeTable(crc32.Castagnoli)))
	b64 := base64.StdEncoding.EncodeToString
	wrong := b64(make([]byte, 16))
	for _, tc := range []struct {
		name    string
		headers http.Header
		etag    string
		want    string // the record's digest; "" for a mismatch
	}{
		{"GCS x-goog-hash: the CRC-32C of the two is checked", http.Header{"X-Goog-Hash": {
			"crc32c=" + b64(crc[:]) + ",md5=" + b64(md5Sum[:])}}, `"v1"`, "crc32c:" + hex.EncodeToString(crc[:])},
		{"GCS x-goog-hash md5 only", http.Header{"X-Goog-Hash": {"md5=" + b64(md5Sum[:])}}, `"v1"`,
			"md5:" + hex.EncodeToString(md5Sum[:])},
		{"wrong crc32c", http.Header{"X-Goog-Hash": {"crc32c=AAAAAA==,md5=" + b64(md5Sum[:])}}, `"v1"`, ""},
		{"S3 checksum", http.Header{"X-Amz-Checksum-Sha256": {b64(sha[:])}}, `"v1"`, "sha256:" + hex.EncodeToString(sha[:])},
		{"Content-MD5", http.Header{"Content-Md5": {b64(md5Sum[:])}}, `"v1"`, "md5:" + hex.EncodeToString(md5Sum[:])},
		{"S3 ETag that is a plain MD5", s3, `"` + hex.EncodeToString(md5Sum[:]) + `"`, "md5:" + hex.EncodeToString(md5Sum[:])},
		// Any server may use 32 hex digits of some other hash (the e2e suite's storage does): not an MD5.
		{"32-hex-digit ETag of another server", nil, `"0123456789abcdef0123456789abcdef"`, "none"},
		{"wrong x-goog-hash", http.Header{"X-Goog-Hash": {"md5=" + wrong}}, `"v1"`, ""},
		{"wrong Content-MD5", http.Header{"Content-Md5": {wrong}}, `"v1"`, ""},
		{"wrong S3 ETag MD5", s3, `"0123456789abcdef0123456789abcdef"`, ""},
		{"KMS-encrypted S3 object: its ETag is not an MD5", http.Header{"X-Amz-Request-Id": {"R1"},
			"X-Amz-Server-Side-Encryption": {"aws:kms"}},
			`"0123456789abcdef0123456789abcdef"`, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStorage(t, archive)
			s.headers, s.etag = tc.headers, tc.etag
			o, _ := serveURL(t, s.url("good"))
			err := fetch.Run(context.Background(), o)
			if tc.want == "" {
				g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
				g.Expect(err).To(MatchError(ContainSubstring("the download is corrupt")))
				g.Expect(tree(t, o.Dest)).To(BeEmpty(), "nothing of a corrupt download is kept")
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			rec := readRecord(t, o.Dest)
			if tc.want == "none" {
				g.Expect(rec.Digest).To(BeEmpty())
			} else {
				g.Expect(rec.Digest).To(Equal(tc.want))
			}
		})
	}
}

// A zip is downloaded, then extracted; its digest is verified before extraction, even when the
// download resumed after a break.
func TestZipDigestIsVerifiedAcrossAResume(t *testing.T) {
	g := NewWithT(t)
	archive := zipArchive(t, map[string]string{"band.tif": string(randomBytes(500_000))}, nil)
	sum := md5.Sum(archive) //nolint:gosec // as storages do
	s := newStorage(t, archive)
	s.etag, s.headers = `"`+hex.EncodeToString(sum[:])+`"`, s3
	s.dropAfter = 123_456
	o, _ := serveURL(t, s.url("good"))
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(readRecord(t, o.Dest).Digest).To(Equal("md5:" + hex.EncodeToString(sum[:])))
	g.Expect(s.log()).To(HaveLen(2))
}

// <dest>/.taskdownload.json says what was placed there, and a second run on the same object asks the
// storage whether it changed (If-None-Match), gets a 304, and leaves everything as it is.
func TestRecordMakesASecondRunANoOp(t *testing.T) {
	g := NewWithT(t)
	archive := tarGz(t, []tar.Header{regular("scene/band.tif")}, map[string]string{"scene/band.tif": "B1"})
	sum := md5.Sum(archive) //nolint:gosec // as storages do
	s := newStorage(t, archive)
	s.headers = http.Header{"Content-Md5": {base64.StdEncoding.EncodeToString(sum[:])}}
	o, logs := serveURL(t, s.url("good"))
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())

	rec := readRecord(t, o.Dest)
	g.Expect(rec.URL).To(Equal(s.URL+"/packages/task.bin"), "no query: no signature")
	g.Expect(rec.Size).To(BeEquivalentTo(len(archive)))
	g.Expect(rec.Digest).To(Equal("md5:" + hex.EncodeToString(sum[:])))
	g.Expect(rec.Format).To(Equal("tar.gz"))
	g.Expect(rec.FetchVersion).NotTo(BeEmpty())
	g.Expect(rec.Time).To(BeTemporally("~", time.Now(), time.Minute))
	info, err := os.Stat(filepath.Join(o.Dest, ".taskdownload.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o644)), "other containers can read it")

	before := inode(t, filepath.Join(o.Dest, "scene", "band.tif"))
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(s.log()).To(HaveLen(2))
	g.Expect(logs.String()).To(ContainSubstring("nothing to do"))
	g.Expect(inode(t, filepath.Join(o.Dest, "scene", "band.tif"))).To(Equal(before), "the file was not replaced")

	// The object changes: the next run fetches it.
	s.mu.Lock()
	s.replace(tarGz(t, []tar.Header{regular("scene/band.tif")}, map[string]string{"scene/band.tif": "B2"}), `"v3"`)
	s.headers = nil
	s.mu.Unlock()
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "band.tif"))).To(Equal([]byte("B2")))
	g.Expect(readRecord(t, o.Dest).ETag).To(Equal(`"v3"`))
}

func TestProgressIsLoggedWhileStreaming(t *testing.T) {
	g := NewWithT(t)
	archive := bigTarGz(t, []string{"band.tif"}, map[string]string{"band.tif": string(randomBytes(256 << 10))})
	s := newStorage(t, archive)
	s.pauseAt = len(archive) / 2
	s.onPause = func() { time.Sleep(100 * time.Millisecond) }
	o, logs := serveURL(t, s.url("good"))
	g.Expect(fetch.Run(context.Background(), o)).To(Succeed())
	g.Expect(logs.String()).To(MatchRegexp(
		`msg=Downloading downloaded="[\d.]+ KiB" total="[\d.]+ KiB" percent=\d+\.\d% rate="[\d.]+ (B|KiB|MiB)/s" eta=\d`))
}

func readRecord(t *testing.T, dest string) fetch.Record {
	b, err := os.ReadFile(filepath.Join(dest, ".taskdownload.json"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var r fetch.Record
	NewWithT(t).Expect(json.Unmarshal(b, &r)).To(Succeed())
	return r
}

func inode(t *testing.T, p string) uint64 {
	info, err := os.Stat(p)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return info.Sys().(*syscall.Stat_t).Ino
}

func gunzip(t *testing.T, b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var out bytes.Buffer
	_, err = out.ReadFrom(zr)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return out.Bytes()
}

// An MD5 (hashed on a goroutine of its own while the stream is extracted) covers the bytes of both
// responses when the stream resumes in the middle, and a wrong one is caught the same way.
func TestStreamedMD5IsVerifiedAcrossAResume(t *testing.T) {
	archive := bigTarGz(t, []string{"band.tif"}, map[string]string{"band.tif": string(randomBytes(1 << 20))})
	sum := md5.Sum(archive) //nolint:gosec // as storages do
	for _, tc := range []struct {
		name, etag string
		ok         bool
	}{
		{"right", hex.EncodeToString(sum[:]), true},
		{"wrong", "0123456789abcdef0123456789abcdef", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStorage(t, archive)
			s.etag, s.headers = `"`+tc.etag+`"`, s3
			s.dropAfter = 300_000
			o, _ := serveURL(t, s.url("good"))
			err := fetch.Run(context.Background(), o)
			g.Expect(s.log()).To(HaveLen(2), "resumed once")
			if !tc.ok {
				g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitDownloadFailed), "%v", err)
				g.Expect(tree(t, o.Dest)).To(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(readRecord(t, o.Dest).Digest).To(Equal("md5:" + tc.etag))
		})
	}
}
