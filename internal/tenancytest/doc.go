// Package tenancytest runs the operator on a real API server (envtest) as a hostile namespace user
// would meet it, and checks that no tenant can degrade the service for another: a revoked key shared
// by namespaces is stopped once, not once per Secret; the objects the operator publishes cannot be
// tampered with; and the operator's own ServiceAccount can do no more than its job (the
// ValidatingAdmissionPolicy in config/components/least-privilege and the chart).
package tenancytest
