package signedurl

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
)

// Redact returns the URL without its userinfo, query string and fragment, where credentials and
// signatures live, for logs, events, conditions and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: keep what precedes anything that may be a credential.
		if i := strings.IndexAny(raw, "?#@"); i >= 0 {
			raw = raw[:i]
		}
		return CleanText(raw)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return CleanText(u.String())
}

// StripURLError replaces the URL inside a *url.Error (which repeats the whole signed URL) by its
// redacted form and keeps the cause, so errors can be printed and still be unwrapped.
func StripURLError(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	return &url.Error{Op: ue.Op, URL: Redact(ue.URL), Err: ue.Err}
}

// CleanText removes control characters (terminal escapes, newlines that forge log lines) and invalid
// UTF-8 from text that came from outside: the platform's answers, storage errors, archive names.
func CleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// Redacted replaces a secret in printable text.
const Redacted = "[redacted]"

// minEchoLen is the shortest run of a secret's characters treated as an echo of it: shorter runs (a
// key's public prefix such as "pk_", a common word) reveal nothing and are too likely by chance.
const minEchoLen = 8

// RedactSecret replaces in text the secret and any run of at least eight of its characters (a
// server that echoes part of an API key, or the key inside a longer token) by Redacted. A secret
// shorter than that is replaced only where it appears whole.
func RedactSecret(text, secret string) string {
	if secret == "" || text == "" {
		return text
	}
	if len(secret) < minEchoLen {
		return strings.ReplaceAll(text, secret, Redacted)
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if n := longestRunOf(text[i:], secret); n >= minEchoLen {
			b.WriteString(Redacted)
			i += n
			continue
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String()
}

// longestRunOf returns the length of the longest prefix of s that occurs somewhere in secret.
func longestRunOf(s, secret string) int {
	best := 0
	for j := range len(secret) {
		n := 0
		for n < len(s) && j+n < len(secret) && s[n] == secret[j+n] {
			n++
		}
		best = max(best, n)
	}
	return best
}
