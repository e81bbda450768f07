package pixxel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// RequestDownload asks the platform to package the task's outputs and returns its answer. A 200 answer
// whose status is not ready is not an error: call again later. A non-200 answer is an *Error, a 200
// answer that does not make sense an *InvalidResponseError, an oversized one a *BodyTooLargeError and a
// connection failure or timeout a *TransportError. No error carries the API key or a signed URL's query.
// With a Budget, a call it holds back returns its error (a *Error) without reaching the platform.
func (c *Client) RequestDownload(ctx context.Context, apiKey string, task Task) (*Download, error) {
	if c.budget == nil {
		return c.requestDownload(ctx, apiKey, task)
	}
	done, err := c.budget.Admit(ctx, c.baseURL.String(), apiKey)
	if err != nil {
		return nil, err
	}
	d, err := c.requestDownload(ctx, apiKey, task)
	done(err)
	return d, err
}

// requestDownload makes the call, bounded by the client's timeout, and reads the answer.
func (c *Client) requestDownload(ctx context.Context, apiKey string, task Task) (*Download, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	resp, body, err := c.put(ctx, c.endpoint(task), apiKey)
	if err != nil {
		return nil, err
	}
	return c.answer(resp, body, apiKey, task)
}

// put sends the request and returns the answer with its body, read whole but capped; the errors
// say which request failed by its path alone.
func (c *Client) put(ctx context.Context, endpoint *url.URL, apiKey string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.httpClient.Do(req)
	if err != nil {
		if redirect, ok := errors.AsType[*RedirectError](err); ok {
			return nil, nil, redirect
		}
		return nil, nil, &TransportError{Op: "PUT " + endpoint.Path, Err: unwrapURLError(err)}
	}
	defer func() { _ = resp.Body.Close() }()

	body, err := readCapped(resp.Body)
	if err != nil {
		if _, ok := errors.AsType[*BodyTooLargeError](err); ok {
			return nil, nil, err
		}
		return nil, nil, &TransportError{Op: "reading answer to PUT " + endpoint.Path, Err: unwrapURLError(err)}
	}
	return resp, body, nil
}

// endpoint builds the request URL, escaping each ID as exactly one path segment.
func (c *Client) endpoint(task Task) *url.URL {
	u := *c.baseURL
	segments := []string{"v0", "workflows", task.WorkflowID, "jobs", task.JobID, "tasks", task.TaskID, "download"}
	raw := make([]string, len(segments))
	for i, s := range segments {
		raw[i] = url.PathEscape(s)
	}
	u.Path = c.baseURL.Path + "/" + strings.Join(segments, "/")
	u.RawPath = c.baseURL.EscapedPath() + "/" + strings.Join(raw, "/")
	return &u
}

// unwrapURLError drops *url.Error's wrapping, which repeats the request URL, keeping the cause.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
