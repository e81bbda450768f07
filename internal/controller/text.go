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

// printable makes platform text safe to show: control characters and invalid UTF-8 removed, the API
// key (and any run of it the platform echoed) replaced by [redacted].
func printable(text, apiKey string) string {
	return signedurl.RedactSecret(signedurl.CleanText(text), apiKey)
}

// taskStatusText bounds the platform's raw status to what status.taskStatus and the STATUS key hold.
func taskStatusText(status, apiKey string) string {
	s := []rune(printable(status, apiKey))
	if len(s) <= maxTaskStatusRunes {
		return string(s)
	}
	return string(s[:maxTaskStatusRunes-1]) + "…"
}

// conditionMessage bounds a condition or event message.
func conditionMessage(msg string) string {
	return textutil.Truncate(signedurl.CleanText(msg), maxMessageBytes, "…")
}
