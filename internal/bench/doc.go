// Package bench holds pushauth's end-to-end performance benchmarks: complete
// login approvals through a real server over loopback gRPC, with pushes sent
// by the real FCM client to a local fake FCM, on SQLite and PostgreSQL; the
// floors they stand on (a bare gRPC round trip, a NATS hop); and the memory
// held by many concurrent WaitRequest streams. Everything lives in the test
// files; see docs/benchmarks.md for how to run them and the results.
package bench
