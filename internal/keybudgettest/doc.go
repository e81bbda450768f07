// Package keybudgettest runs the manager (internal/manager.New) on a real API server against a fake
// platform that limits each API key's calls per second, and checks the per-key budget
// (internal/budget) as users meet it: many objects on one key converge without a storm of 429s,
// another key is not slowed, and a revoked key is not retried by every object using it.
package keybudgettest
