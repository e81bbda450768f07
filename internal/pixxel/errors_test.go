package pixxel

import "testing"

// Kind is the one reading of status codes that the controller and the key's budget share.
func TestErrorKind(t *testing.T) {
	for status, want := range map[int]Kind{
		302: KindOther, 400: KindBadRequest, 401: KindUnauthorized, 403: KindForbidden, 404: KindNotFound,
		409: KindOther, 418: KindOther, 429: KindRateLimited, 500: KindServerError, 502: KindServerError,
		503: KindServerError, 599: KindServerError,
	} {
		if got := (&Error{StatusCode: status}).Kind(); got != want {
			t.Errorf("status %d: kind %d, want %d", status, got, want)
		}
	}
}
