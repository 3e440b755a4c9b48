package server_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// wantStatus fails the test unless err is a status with code whose message
// contains every one of substrings. It returns the status.
func wantStatus(t *testing.T, err error, code codes.Code, substrings ...string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("got error %v, want status %s", err, code)
	}
	if st.Code() != code {
		t.Fatalf("got %s (%q), want %s", st.Code(), st.Message(), code)
	}
	for _, s := range substrings {
		if !strings.Contains(st.Message(), s) {
			t.Errorf("message %q does not contain %q", st.Message(), s)
		}
	}
	return st
}

// wantInvalidField fails the test unless err is InvalidArgument whose message
// names field and whose BadRequest detail has a violation of field.
func wantInvalidField(t *testing.T, err error, field string) {
	t.Helper()
	st := wantStatus(t, err, codes.InvalidArgument, field)
	if fields := badRequestFields(st); !slices.Contains(fields, field) {
		t.Errorf("BadRequest fields %v do not include %q (message %q)", fields, field, st.Message())
	}
}

// codeOf is the status code of err (OK for nil).
func codeOf(err error) codes.Code { return status.Code(err) }

// badRequestFields lists the fields of the BadRequest details of st.
func badRequestFields(st *status.Status) []string {
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// requestIDOf returns the x-request-id a response carried, in its header or,
// for trailers-only error responses, in its trailer.
func requestIDOf(header, trailer metadata.MD) string {
	if v := header.Get("x-request-id"); len(v) > 0 {
		return v[0]
	}
	if v := trailer.Get("x-request-id"); len(v) > 0 {
		return v[0]
	}
	return ""
}

// isGeneratedRequestID reports whether id looks like one requestid.New made.
func isGeneratedRequestID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
