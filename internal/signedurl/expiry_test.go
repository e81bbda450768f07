package signedurl_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

func TestParse(t *testing.T) {
	issued := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		url     string
		ok      bool
		expires time.Time
	}{
		{"AWS SigV4", "https://b.s3.amazonaws.com/k.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261128T100000Z&X-Amz-Expires=3600&X-Amz-Signature=abc",
			true, issued.Add(time.Hour)},
		{"AWS SigV4 lower-case names", "https://b/k?x-amz-date=20261128T100000Z&x-amz-expires=60", true, issued.Add(time.Minute)},
		{"GCS V4", "https://storage.googleapis.com/b/k?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Date=20261128T100000Z&X-Goog-Expires=900&X-Goog-Signature=abc",
			true, issued.Add(15 * time.Minute)},
		{"GCS V2 / CloudFront Expires", "https://d.cloudfront.net/k?Expires=1795860000&Signature=abc&Key-Pair-Id=K",
			true, time.Unix(1795860000, 0).UTC()},
		{"Azure SAS", "https://a.blob.core.windows.net/c/k?sv=2022-11-02&se=2026-11-28T11%3A30%3A00Z&sr=b&sp=r&sig=abc",
			true, issued.Add(90 * time.Minute)},
		{"Azure SAS minutes only", "https://a.blob.core.windows.net/c/k?se=2026-11-28T11:30Z&sig=abc", true, issued.Add(90 * time.Minute)},
		{"Azure SAS date only", "https://a.blob.core.windows.net/c/k?se=2026-11-29&sig=abc", true, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)},
		{"unknown scheme", "https://s.example/k.zip?token=abc", false, time.Time{}},
		{"no query", "https://s.example/k.zip", false, time.Time{}},
		{"SigV4 date without expires", "https://b/k?X-Amz-Date=20261128T100000Z", false, time.Time{}},
		{"SigV4 bad date", "https://b/k?X-Amz-Date=2026-11-28&X-Amz-Expires=60", false, time.Time{}},
		{"SigV4 negative expires", "https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=-5", false, time.Time{}},
		{"SigV4 over a week", "https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=604801", false, time.Time{}},
		{"SigV4 huge expires", "https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=99999999999999999999", false, time.Time{}},
		{"Expires not a number", "https://b/k?Expires=tomorrow", false, time.Time{}},
		{"Expires zero", "https://b/k?Expires=0", false, time.Time{}},
		{"se garbage", "https://b/k?se=soon", false, time.Time{}},
		{"not a URL", "://", false, time.Time{}},
		// X-Amz-Expires=9223372037 s overflows a Duration and used to wrap to an expiry in 1734.
		{"SigV4 expires overflowing a Duration", "https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=9223372037", false, time.Time{}},
		{"SigV4 signed at the end of year 9999", "https://b/k?X-Amz-Date=99991231T235959Z&X-Amz-Expires=60", false, time.Time{}},
		// Expires=1099511627776 is year 36812, which a Kubernetes date-time field rejects.
		{"Expires beyond year 9999", "https://b/k?Expires=1099511627776", false, time.Time{}},
		{"Expires at the end of year 9999", "https://b/k?Expires=253402300799", true, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"Expires overflowing int64", "https://b/k?Expires=9223372036854775808", false, time.Time{}},
		{"se before 1970", "https://b/k?se=1969-12-31", false, time.Time{}},
		{"se at the epoch", "https://b/k?se=1970-01-01T00:00:00Z", false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e, ok := signedurl.Parse(tc.url)
			g.Expect(ok).To(Equal(tc.ok))
			g.Expect(e.ExpiresAt.Equal(tc.expires)).To(BeTrue(), "expires %v, want %v", e.ExpiresAt, tc.expires)
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=3600",
		"https://b/k?X-Goog-Date=20261128T100000Z&X-Goog-Expires=900",
		"https://b/k?Expires=1795860000",
		"https://b/k?se=2026-11-28T11:30:00Z",
		"https://b/k?se=2026-11-29",
		"%zz",
		"https://b/k?X-Amz-Date=20261128T100000Z&X-Amz-Expires=9223372037",
		"https://b/k?Expires=1099511627776",
		"https://b/k?se=0001-01-01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e, ok := signedurl.Parse(raw)
		if !ok {
			if !e.ExpiresAt.IsZero() {
				t.Fatalf("no expiry reported but ExpiresAt=%v", e.ExpiresAt)
			}
			return
		}
		// A known expiry is a real date a Kubernetes date-time field accepts: after 1970, within year
		// 9999, and the same after an RFC 3339 round trip.
		if !e.ExpiresAt.After(time.Unix(0, 0)) || e.ExpiresAt.Year() > 9999 {
			t.Fatalf("expiry %v outside 1970..9999", e.ExpiresAt)
		}
		back, err := time.Parse(time.RFC3339, e.ExpiresAt.Format(time.RFC3339))
		if err != nil || !back.Equal(e.ExpiresAt.Truncate(time.Second)) {
			t.Fatalf("expiry %v does not survive RFC 3339: %v", e.ExpiresAt, err)
		}
	})
}
