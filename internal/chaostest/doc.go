// Package chaostest runs the manager binary as separate processes against a real API server and the
// fake platform endpoint, and kills, restarts and fails them over while TaskDownloads are in flight.
// `make test` runs it with CHAOS_N=200 objects; `make test-chaos` with 1000.
package chaostest
