// Package signedurl reads when a signed URL stops working from the URL itself, for the common signing
// schemes: AWS SigV4 (X-Amz-Date + X-Amz-Expires), Google Cloud Storage V4 (X-Goog-Date +
// X-Goog-Expires), Expires=<unix seconds> (GCS V2, CloudFront, S3 SigV2) and Azure SAS (se=<ISO 8601>).
package signedurl

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxLifetime bounds what is believed: no scheme signs URLs for longer than a week (SigV4's limit),
// and a larger value is more likely garbage than intent. Azure SAS may be longer, so it is checked
// only for being a real date.
const maxLifetime = 7 * 24 * time.Hour

// Expiry is what a URL says about its own lifetime.
type Expiry struct {
	// ExpiresAt is when the URL stops working, in UTC, between 1970 and the end of year 9999.
	ExpiresAt time.Time
}

// latest is the last instant an RFC 3339 timestamp (and so a Kubernetes date-time field) can hold.
var latest = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Parse returns the URL's expiry, and false when no known scheme is present or its values are
// malformed, overflow, end before the URL was signed, or lie beyond year 9999: callers then treat the
// lifetime as unknown rather than trust an absurd date.
func Parse(raw string) (Expiry, bool) {
	e, ok := parse(raw)
	if !ok || !e.ExpiresAt.After(time.Unix(0, 0)) || e.ExpiresAt.After(latest) {
		return Expiry{}, false
	}
	return e, true
}

func parse(raw string) (Expiry, bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return Expiry{}, false
	}
	q := caseInsensitive(u.Query())
	if e, ok := v4(q, "x-amz-date", "x-amz-expires"); ok {
		return e, true
	}
	if e, ok := v4(q, "x-goog-date", "x-goog-expires"); ok {
		return e, true
	}
	if v, ok := q["expires"]; ok {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 || secs > latest.Unix() {
			return Expiry{}, false
		}
		return Expiry{ExpiresAt: time.Unix(secs, 0).UTC()}, true
	}
	if v, ok := q["se"]; ok {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02"} {
			if t, err := time.Parse(layout, v); err == nil {
				return Expiry{ExpiresAt: t.UTC()}, true
			}
		}
		return Expiry{}, false
	}
	return Expiry{}, false
}

// v4 reads the SigV4-style pair: a signing time in basic ISO 8601 and a lifetime in seconds.
func v4(q map[string]string, dateKey, expiresKey string) (Expiry, bool) {
	date, hasDate := q[dateKey]
	exp, hasExp := q[expiresKey]
	if !hasDate || !hasExp {
		return Expiry{}, false
	}
	issued, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return Expiry{}, false
	}
	// Compared in seconds: converting a huge value to a Duration first would overflow and wrap.
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs <= 0 || secs > int64(maxLifetime/time.Second) {
		return Expiry{}, false
	}
	return Expiry{ExpiresAt: issued.Add(time.Duration(secs) * time.Second)}, true
}

// caseInsensitive keys the query by lower-cased name, keeping the first value of each.
func caseInsensitive(v url.Values) map[string]string {
	out := make(map[string]string, len(v))
	for k, vals := range v {
		lk := strings.ToLower(k)
		if _, seen := out[lk]; !seen && len(vals) > 0 {
			out[lk] = vals[0]
		}
	}
	return out
}
