package signedurl

import (
	"errors"
	"math/rand/v2"
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

// naiveRedact is the quadratic definition Redactor must agree with: from left to right, the longest
// prefix of the rest of the text that occurs in the secret, when at least eight bytes long.
func naiveRedact(text, secret string) string {
	if len(secret) < minEchoLen {
		return strings.ReplaceAll(text, secret, Redacted)
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		best := 0
		for n := len(text) - i; n >= minEchoLen; n-- {
			if strings.Contains(secret, text[i:i+n]) {
				best = n
				break
			}
		}
		if best > 0 {
			b.WriteString(Redacted)
			i += best
			continue
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String()
}

func TestRedactorAgreesWithDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab01"
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 2000 {
		secret, text := random(rng.IntN(40)+1), random(rng.IntN(80))
		if rng.IntN(2) == 0 && len(secret) > 3 {
			// Splice parts of the secret in, so that long runs occur.
			i := rng.IntN(len(secret) - 2)
			text += secret[i:] + random(3) + secret[:i+2]
		}
		r := NewRedactor(secret)
		want := naiveRedact(text, secret)
		if got := r.Redact(text); got != want {
			t.Fatalf("Redact(%q) with secret %q = %q, want %q", text, secret, got, want)
		}
		if got := r.Contains(text); got != (want != text) {
			t.Fatalf("Contains(%q) with secret %q = %v, want %v", text, secret, got, want != text)
		}
	}
}

// BenchmarkRedactHugeSecret redacts an error text of 3 KiB with a 900 KiB secret, the case that took
// 13.5 s per reconcile when each position of the text was compared with each position of the secret.
func BenchmarkRedactHugeSecret(b *testing.B) {
	secret := strings.Repeat("k3y-", 900<<10/4)
	text := strings.Repeat("task 404: workflow wf-0123 job jb-4567 not found; ", 3<<10/50)
	for b.Loop() {
		RedactSecret(text, secret)
	}
}
