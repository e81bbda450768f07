package signedurl

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://s.example/a/b.zip?X-Amz-Signature=abc#frag":   "https://s.example/a/b.zip",
		"https://user:secret@s.example/a.tar?sig=1":            "https://s.example/a.tar",
		"https://s.example/a.zip?":                             "https://s.example/a.zip",
		"https://s.example/a\x1b[31m.zip":                      "https://s.example/a[31m.zip",
		"://user:secret@bad url?sig=1":                         "://user:secret",
		"http://s.example/%zz?X-Amz-Signature=abc":             "http://s.example/%zz",
		"https://s.example/ok/path/with%20space.tar.gz?sig=zz": "https://s.example/ok/path/with%20space.tar.gz",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(Redact(in), "sig") || strings.Contains(Redact(in), "secret@") {
			t.Errorf("Redact(%q) kept a credential: %q", in, Redact(in))
		}
	}
}

func TestStripURLErrorKeepsCauseDropsSignature(t *testing.T) {
	cause := errors.New("connection reset")
	err := StripURLError(&url.Error{Op: "Get", URL: "https://u:p@s.example/x?X-Amz-Signature=abc", Err: cause})
	if strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "u:p") {
		t.Fatalf("signature or userinfo left in %q", err)
	}
	if !errors.Is(err, cause) {
		t.Fatalf("cause lost: %v", err)
	}
	if StripURLError(nil) != nil || StripURLError(cause) != cause {
		t.Fatal("errors without a URL must pass unchanged")
	}
}

func TestCleanText(t *testing.T) {
	if got := CleanText("a\x00b\nc\x1b[2Jd\u0085e\xff"); got != "abc[2Jde\uFFFD" {
		t.Fatalf("CleanText = %q", got)
	}
}

func TestRedactSecret(t *testing.T) {
	const key = "pk_live_0123456789abcdef"
	for _, tc := range []struct{ in, want string }{
		{"invalid key " + key, "invalid key [redacted]"},
		{`{"key":"` + key + `"}`, `{"key":"[redacted]"}`},
		{"Bearer " + key + key, "Bearer [redacted][redacted]"},
		{"key ending 456789abcdef is revoked", "key ending [redacted] is revoked"},
		{"key pk_live_01…cdef", "key [redacted]…cdef"},
		{"pk_live keys only", "pk_live keys only"}, // seven characters: too short to tell from chance
		{"nothing to hide", "nothing to hide"},
		{"", ""},
	} {
		if got := RedactSecret(tc.in, key); got != tc.want {
			t.Errorf("RedactSecret(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := RedactSecret("short abc key", "abc"); got != "short [redacted] key" {
		t.Errorf("short secret: %q", got)
	}
	if got := RedactSecret("text", ""); got != "text" {
		t.Errorf("empty secret: %q", got)
	}
}
