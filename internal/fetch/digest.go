package fetch

import (
	"crypto/md5"  //nolint:gosec // MD5 is what storages send (Content-MD5, ETags); it checks integrity, not trust
	"crypto/sha1" //nolint:gosec // S3's x-amz-checksum-sha1, for the same reason
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"net/http"
	"regexp"
	"strings"
)

// digest is what the storage says the object's bytes hash to.
type digest struct {
	Algorithm string `json:"algorithm"`
	// Hex is the value in lower-case hexadecimal, whatever encoding the header used.
	Hex string `json:"hex"`
}

func (d digest) String() string { return d.Algorithm + ":" + d.Hex }

// digestAlgorithms lists what fetch verifies, cheapest first: when the storage sends several (GCS
// sends crc32c and md5), the first one found is checked. The check guards against bytes damaged on the
// way or at rest, which a CRC catches as well as a cryptographic hash; whoever could forge the body
// could forge the header too. CRC-32C and CRC-32 run in hardware at several GiB/s; MD5 costs about a
// CPU-second and a half per GiB, which on a small node is the difference between keeping up with the
// network and not.
var digestAlgorithms = []struct {
	name string
	new  func() hash.Hash
	// costly hashes are slow enough to deserve a goroutine of their own (see hashingSender).
	costly bool
}{
	{"crc32c", func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }, false},
	{"crc32", func() hash.Hash { return crc32.NewIEEE() }, false},
	{"sha256", sha256.New, true},
	{"sha1", sha1.New, true},
	{"md5", md5.New, true},
}

var plainMD5ETag = regexp.MustCompile(`^"?([0-9a-fA-F]{32})"?$`)

// digestOf reads the digest of the whole object from a response's headers; none when none can
// be trusted to cover the bytes sent (an empty Algorithm):
//   - x-goog-hash (GCS: "crc32c=...,md5=..."), unless GCS decompressed a gzip-stored object on the way;
//   - x-amz-checksum-* (S3, when the object was uploaded with one), unless it is a multipart
//     upload's composite checksum (which ends in "-N");
//   - Content-MD5, on a 200 only (on a 206 it covers the part);
//   - an ETag that is a plain MD5, from S3 or a storage that answers like it (x-amz-request-id): its
//     single-part uploads' ETags are the MD5 of the data, unless S3 says the object is encrypted with
//     KMS or a customer key. Other servers' 32-hex-digit ETags can be any hash of anything.
func digestOf(h http.Header, whole bool) digest {
	found := map[string]string{}
	if enc := h.Get("X-Goog-Stored-Content-Encoding"); enc == "" || enc == "identity" {
		for _, v := range h.Values("X-Goog-Hash") {
			for part := range strings.SplitSeq(v, ",") {
				if algo, val, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
					found[strings.ToLower(algo)] = fromBase64(val)
				}
			}
		}
	}
	if h.Get("X-Amz-Checksum-Type") != "COMPOSITE" {
		for _, algo := range []string{"sha256", "sha1", "crc32c", "crc32"} {
			if v := h.Get("X-Amz-Checksum-" + algo); v != "" && !strings.Contains(v, "-") {
				found[algo] = fromBase64(v)
			}
		}
	}
	if v := h.Get("Content-MD5"); v != "" && whole {
		found["md5"] = fromBase64(v)
	}
	sse := h.Get("X-Amz-Server-Side-Encryption")
	s3 := h.Get("X-Amz-Request-Id") != ""
	if m := plainMD5ETag.FindStringSubmatch(h.Get("ETag")); m != nil && s3 && found["md5"] == "" &&
		!strings.HasPrefix(sse, "aws:kms") && h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") == "" {
		found["md5"] = strings.ToLower(m[1])
	}
	for _, a := range digestAlgorithms {
		if v := found[a.name]; v != "" {
			return digest{a.name, v}
		}
	}
	return digest{}
}

// fromBase64 turns a header's base64 value into hex; "" when it is not base64.
func fromBase64(v string) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil || len(b) == 0 {
		return ""
	}
	return hex.EncodeToString(b)
}

// newHash returns the hash for an algorithm of digestAlgorithms.
func newHash(algo string) hash.Hash {
	for _, a := range digestAlgorithms {
		if a.name == algo {
			return a.new()
		}
	}
	return nil
}

// digestMismatchError is a download whose bytes do not hash to what the storage said: corrupted on
// the way. What was downloaded is not kept.
type digestMismatchError struct {
	want digest
	got  string
}

func (e *digestMismatchError) Error() string {
	return fmt.Sprintf("the package's %s is %s, but the storage sent %s: the download is corrupt",
		e.want.Algorithm, e.got, e.want.Hex)
}

// costlyDigest reports whether hashing with algo is slow enough to deserve a goroutine of its own.
func costlyDigest(algo string) bool {
	for _, a := range digestAlgorithms {
		if a.name == algo {
			return a.costly
		}
	}
	return false
}
