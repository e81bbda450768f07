package signedurl

import (
	"errors"
	"maps"
	"net/url"
	"slices"
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
// shorter than that is replaced only where it appears whole. To redact several texts with one secret,
// compile it once with NewRedactor.
func RedactSecret(text, secret string) string { return NewRedactor(secret).Redact(text) }

// Redactor removes one secret, and any run of at least eight of its characters, from texts. It takes
// time linear in the text and in the secret, whatever both hold: a suffix automaton of the reversed
// secret finds, for every position of the text, the longest run of the secret starting there, in one
// pass (matching statistics). A Redactor is safe for concurrent use.
type Redactor struct {
	secret string
	// states is the suffix automaton of the reversed secret; nil for a secret shorter than minEchoLen.
	states []samState
}

// samState is a state of a suffix automaton: the length of the longest string it stands for, its
// suffix link and its transitions.
type samState struct {
	length int
	link   int
	next   map[byte]int32
}

// NewRedactor compiles secret for Redact, in time linear in its length.
func NewRedactor(secret string) *Redactor {
	r := &Redactor{secret: secret}
	if len(secret) < minEchoLen {
		return r
	}
	states := make([]samState, 1, 2*len(secret))
	states[0] = samState{link: -1, next: map[byte]int32{}}
	last := 0
	for i := len(secret) - 1; i >= 0; i-- {
		c := secret[i]
		cur := len(states)
		states = append(states, samState{length: states[last].length + 1, next: map[byte]int32{}})
		p := last
		for p != -1 {
			if _, ok := states[p].next[c]; ok {
				break
			}
			states[p].next[c] = int32(cur)
			p = states[p].link
		}
		switch {
		case p == -1:
			states[cur].link = 0
		case states[int(states[p].next[c])].length == states[p].length+1:
			states[cur].link = int(states[p].next[c])
		default:
			q := int(states[p].next[c])
			clone := len(states)
			states = append(states, samState{length: states[p].length + 1, link: states[q].link,
				next: maps.Clone(states[q].next)})
			for p != -1 && int(states[p].next[c]) == q {
				states[p].next[c] = int32(clone)
				p = states[p].link
			}
			states[q].link, states[cur].link = clone, clone
		}
		last = cur
	}
	r.states = states
	return r
}

// Redact returns text with the secret, and every run of at least eight of its characters, replaced by
// Redacted: from left to right, the longest run starting at each position.
func (r *Redactor) Redact(text string) string {
	if r.secret == "" || text == "" {
		return text
	}
	if r.states == nil {
		return strings.ReplaceAll(text, r.secret, Redacted)
	}
	runs := r.runs(text)
	var b strings.Builder
	for i := 0; i < len(text); {
		if n := runs[i]; n >= minEchoLen {
			b.WriteString(Redacted)
			i += n
			continue
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String()
}

// Contains tells whether text holds the secret or a run of at least eight of its characters, that is
// whether Redact would change it.
func (r *Redactor) Contains(text string) bool {
	if r.secret == "" || text == "" {
		return false
	}
	if r.states == nil {
		return strings.Contains(text, r.secret)
	}
	return slices.ContainsFunc(r.runs(text), func(n int) bool { return n >= minEchoLen })
}

// runs returns, for each position i of text, the length of the longest prefix of text[i:] that occurs
// in the secret. Read from the end, text[i:]'s prefixes are suffixes of the reversed text read so far,
// and the automaton of the reversed secret tracks the longest such suffix it holds.
func (r *Redactor) runs(text string) []int {
	runs := make([]int, len(text))
	state, n := 0, 0
	for i := len(text) - 1; i >= 0; i-- {
		c := text[i]
		for state != 0 {
			if _, ok := r.states[state].next[c]; ok {
				break
			}
			state = r.states[state].link
			n = r.states[state].length
		}
		if next, ok := r.states[state].next[c]; ok {
			state, n = int(next), n+1
		} else {
			state, n = 0, 0
		}
		runs[i] = n
	}
	return runs
}
