package pixxel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
)

// This file turns the platform's answers into a Download or an error: bodies read capped, decoded
// without quoting them in errors, and the API key redacted from every text taken from them.

// MaxBodyBytes caps how much of an answer is read; larger answers are an error.
const MaxBodyBytes = 1 << 20

// answer turns the platform's answer into a Download or an error, with the API key taken out of
// every text of it.
func (c *Client) answer(resp *http.Response, body []byte, apiKey string, task Task) (*Download, error) {
	// The one place the API key is taken out of what the platform answered: every text of the answer
	// that reaches an error, a log or status is redacted here, once, with the key compiled once.
	key := signedurl.NewRedactor(apiKey)
	if resp.StatusCode != http.StatusOK {
		apiErr := c.decodeError(resp, body)
		apiErr.Code, apiErr.Message, apiErr.Details = key.Redact(apiErr.Code), key.Redact(apiErr.Message), key.Redact(apiErr.Details)
		return nil, apiErr
	}
	d, err := DecodeDownload(body)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(task); err != nil {
		return nil, err
	}
	if key.Contains(d.SignedURL) {
		// Published, the URL would hand the key to everyone who may read the target or status.
		return nil, &InvalidResponseError{Reason: "signed_url contains the API key; not published"}
	}
	d.Status = key.Redact(signedurl.CleanText(d.Status))
	return d, nil
}

// decodeError decodes a non-200 answer, with the delay its Retry-After header asks for.
func (c *Client) decodeError(resp *http.Response, body []byte) *Error {
	apiErr := DecodeError(resp.StatusCode, body)
	apiErr.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return apiErr
}

// DecodeDownload decodes a 200 answer.
func DecodeDownload(body []byte) (*Download, error) {
	var d Download
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, &InvalidResponseError{Reason: "the answer is not the documented JSON object: " + jsonErrorSummary(err)}
	}
	return &d, nil
}

// readCapped reads a whole answer body, or fails with a *BodyTooLargeError beyond MaxBodyBytes.
func readCapped(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxBodyBytes {
		return nil, &BodyTooLargeError{Limit: MaxBodyBytes}
	}
	return body, nil
}

// jsonErrorSummary describes a JSON decoding failure without quoting the input, which could hold a
// signed URL.
func jsonErrorSummary(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("field %q has JSON type %s", typeErr.Field, typeErr.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		return "invalid JSON"
	}
}
