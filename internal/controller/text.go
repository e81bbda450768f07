package controller

import (
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/textutil"
)

// Bounds on text that came from the platform, before it reaches status, conditions, events or logs:
// the API server rejects a condition message over 32 KiB (and the whole status write with it), and
// kubectl's Status column is no place for a page of text.
const (
	maxTaskStatusRunes = 64
	maxMessageBytes    = 1024
)

// taskStatusText bounds the platform's status (cleaned, and the API key redacted, by the client) to
// what status.taskStatus and the STATUS key hold.
func taskStatusText(status string) string {
	s := []rune(signedurl.CleanText(status))
	if len(s) <= maxTaskStatusRunes {
		return string(s)
	}
	return string(s[:maxTaskStatusRunes-1]) + "…"
}

// conditionMessage bounds a condition or event message.
func conditionMessage(msg string) string {
	return textutil.Truncate(signedurl.CleanText(msg), maxMessageBytes, "…")
}
