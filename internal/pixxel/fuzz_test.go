package pixxel_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pixxel-space/taskdownload-operator/internal/pixxel"
)

// FuzzDecodeDownload feeds arbitrary 200 bodies through decoding and validation: never a panic, and
// an error never quotes the body (which may hold a signed URL).
func FuzzDecodeDownload(f *testing.F) {
	f.Add([]byte(`{"id":"t","job_id":"j","workflow_id":"w","status":"ready","signed_url":"https://s.example/x?sig=SECRET"}`))
	f.Add([]byte(`{"status":"pending"}`))
	f.Add([]byte(`{"status":"ready","signed_url":"ftp://SECRET"}`))
	f.Add([]byte(`{"status":`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"status":42}`))
	f.Add([]byte("\xff\xfe"))
	task := pixxel.Task{WorkflowID: "w", JobID: "j", TaskID: "t"}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := pixxel.DecodeDownload(body)
		if err != nil {
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("decoding error quotes the body: %v", err)
			}
			return
		}
		if err := d.Validate(task); err != nil {
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("validation error quotes the URL: %v", err)
			}
			return
		}
		if d.State() == pixxel.StateReady && d.SignedURL == "" {
			t.Fatalf("a ready answer without a URL passed validation")
		}
	})
}

// FuzzDecodeError feeds arbitrary error bodies: never a panic, texts bounded and valid UTF-8 so they fit
// in a Kubernetes condition message.
func FuzzDecodeError(f *testing.F) {
	f.Add(400, []byte(`{"error":{"code":"bad","message":"task not finished","details":{"a":[1,2]}}}`))
	f.Add(403, []byte(`{"error":{"code":"forbidden","message":"no","details":"x"}}`))
	f.Add(502, []byte(`<html>bad gateway</html>`))
	f.Add(429, []byte(`{"error":null}`))
	f.Add(500, []byte(`{"error":{"message":"`+strings.Repeat("é", 2000)+`"}}`))
	f.Add(400, []byte("{\"error\":{\"message\":\"\xff\xfe\"}}"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := pixxel.DecodeError(status, body)
		for _, s := range []string{e.Code, e.Message, e.Details} {
			if len(s) > 1024 {
				t.Fatalf("text of %d bytes exceeds the 1 KiB bound", len(s))
			}
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in %q", s)
			}
		}
		_ = e.Error()
	})
}

// FuzzParseRetryAfter: any header value gives a delay between zero and a day.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "30", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999", "soon"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d := pixxel.ParseRetryAfter(v, now)
		if d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v, outside [0, 24h]", v, d)
		}
	})
}
