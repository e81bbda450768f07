// Package textutil holds small text helpers shared by packages that print what others wrote.
package textutil

import "unicode/utf8"

// Truncate cuts s to at most n bytes, ending with ellipsis, without splitting a UTF-8 sequence.
func Truncate(s string, n int, ellipsis string) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
