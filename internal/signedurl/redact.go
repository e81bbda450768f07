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
