package server

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

func TestToStatusKinds(t *testing.T) {
	want := map[fault.Kind]codes.Code{
		fault.Internal:           codes.Internal,
		fault.InvalidArgument:    codes.InvalidArgument,
		fault.NotFound:           codes.NotFound,
		fault.AlreadyExists:      codes.AlreadyExists,
		fault.PermissionDenied:   codes.PermissionDenied,
		fault.Unauthenticated:    codes.Unauthenticated,
		fault.FailedPrecondition: codes.FailedPrecondition,
		fault.ResourceExhausted:  codes.ResourceExhausted,
		fault.Unavailable:        codes.Unavailable,
		fault.Aborted:            codes.Aborted,
	}
	// Every kind fault declares is mapped: a new kind without a code would
	// silently become OK (the zero code) with an error message.
	for k := fault.Internal; k.String() != fmt.Sprintf("kind(%d)", int(k)); k++ {
		if _, ok := want[k]; !ok {
			t.Errorf("kind %v has no expected code in this test", k)
		}
		if _, ok := kindCodes[k]; !ok {
			t.Errorf("kind %v has no gRPC code", k)
		}
	}
	for kind, code := range want {
		t.Run(kind.String(), func(t *testing.T) {
			err := toStatus(context.Background(), discard(), "/m", fault.New(kind, "the message"))
			st, _ := status.FromError(err)
			if st.Code() != code || st.Message() != "the message" {
				t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), code, "the message")
			}
			if len(st.Details()) != 0 {
				t.Errorf("details %v, want none", st.Details())
			}
		})
	}
}

func TestToStatus(t *testing.T) {
	existing := status.Error(codes.FailedPrecondition, "already a status")
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		msg     string   // exact message
		hidden  []string // must not appear in the message
		logged  []string // must appear in the log
		field   string   // BadRequest field, if any
		retry   time.Duration
		noLogOK bool // nothing is logged
	}{
		{name: "fault with field", err: fault.Invalid("policy.approval_ttl", "must be between 10s and 10m0s"),
			code: codes.InvalidArgument, msg: "policy.approval_ttl: must be between 10s and 10m0s", field: "policy.approval_ttl", noLogOK: true},
		{name: "wrapped fault", err: fmt.Errorf("update policy: %w", fault.Invalid("update_mask", "unknown")),
			code: codes.InvalidArgument, msg: "update_mask: unknown", field: "update_mask", hidden: []string{"update policy"}},
		{name: "retry after", err: fault.Exhausted("too many SMS", 90*time.Second),
			code: codes.ResourceExhausted, msg: "too many SMS", retry: 90 * time.Second, noLogOK: true},
		{name: "fault with cause", err: fault.Wrap(fault.Unavailable, errors.New("dial tcp 10.0.0.7:5432: refused"), "database unavailable"),
			code: codes.Unavailable, msg: "database unavailable", hidden: []string{"10.0.0.7"}, logged: []string{"10.0.0.7"}},
		{name: "internal fault", err: fault.New(fault.Internal, "internal error"),
			code: codes.Internal, msg: "internal error", logged: []string{"rpc failed"}},
		{name: "fault wrapping a status", err: fault.Wrap(fault.Unavailable, status.Error(codes.Unavailable, "upstream said secret-token-123"), "push provider unavailable"),
			code: codes.Unavailable, msg: "push provider unavailable", hidden: []string{"secret-token-123"}, logged: []string{"secret-token-123"}},
		{name: "existing status", err: existing, code: codes.FailedPrecondition, msg: "already a status", noLogOK: true},
		{name: "wrapped status", err: fmt.Errorf("call sms gateway key=sk_live_1: %w", status.Error(codes.Unavailable, "gateway down")),
			code: codes.Unavailable, msg: "gateway down", hidden: []string{"sk_live_1"}},
		{name: "not found", err: fmt.Errorf("get relying party %q: %w", "rp_1", store.ErrNotFound),
			code: codes.NotFound, msg: "not found", hidden: []string{"rp_1"}},
		{name: "conflict", err: fmt.Errorf("revoke key_1: %w", store.ErrConflict), code: codes.Aborted, msg: "changed concurrently; try again",
			hidden: []string{"key_1"}, logged: []string{"rpc failed", "revoke key_1", "level=WARN"}},
		{name: "canceled", err: fmt.Errorf("query: %w", context.Canceled), code: codes.Canceled, msg: "request cancelled"},
		{name: "deadline", err: fmt.Errorf("query: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded, msg: "deadline exceeded"},
		{name: "terminated backend", err: fmt.Errorf("get request r_1: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}),
			code: codes.Unavailable, msg: "the database is unavailable; try again", hidden: []string{"r_1", "administrator"}, logged: []string{"57P01"}},
		{name: "bad conn", err: fmt.Errorf("list: %w", driver.ErrBadConn), code: codes.Unavailable, msg: "the database is unavailable; try again"},
		{name: "eof", err: fmt.Errorf("scan: %w", io.ErrUnexpectedEOF), code: codes.Unavailable, msg: "the database is unavailable; try again"},
		{name: "unknown error", err: errors.New(`pq: relation "users" does not exist; password=hunter2`),
			code: codes.Internal, hidden: []string{"hunter2", "users", "pq"}, logged: []string{"hunter2", "/pushauth.v1.AdminService/Test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			err := toStatus(context.Background(), slog.New(slog.NewTextHandler(&log, nil)), "/pushauth.v1.AdminService/Test", tt.err)
			st, ok := status.FromError(err)
			if !ok {
				t.Fatalf("toStatus returned %v, not a status", err)
			}
			if st.Code() != tt.code {
				t.Errorf("code %s, want %s", st.Code(), tt.code)
			}
			if tt.msg != "" && st.Message() != tt.msg {
				t.Errorf("message %q, want %q", st.Message(), tt.msg)
			}
			if st.Message() == "" {
				t.Errorf("empty message")
			}
			for _, h := range tt.hidden {
				if strings.Contains(st.Message(), h) {
					t.Errorf("message %q leaks %q", st.Message(), h)
				}
			}
			for _, l := range tt.logged {
				if !strings.Contains(log.String(), l) {
					t.Errorf("log lacks %q:\n%s", l, log.String())
				}
			}
			if tt.noLogOK && log.Len() > 0 {
				t.Errorf("logged a client error:\n%s", log.String())
			}
			var fields []string
			var retry time.Duration
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.BadRequest:
					for _, v := range d.GetFieldViolations() {
						fields = append(fields, v.GetField())
						if v.GetDescription() == "" {
							t.Errorf("field violation of %s has no description", v.GetField())
						}
					}
				case *errdetails.RetryInfo:
					retry = d.GetRetryDelay().AsDuration()
				default:
					t.Errorf("unexpected detail %T", d)
				}
			}
			if tt.field == "" && len(fields) > 0 || tt.field != "" && (len(fields) != 1 || fields[0] != tt.field) {
				t.Errorf("BadRequest fields %v, want %q", fields, tt.field)
			}
			if retry != tt.retry {
				t.Errorf("RetryInfo delay %v, want %v", retry, tt.retry)
			}
		})
	}
	if err := toStatus(context.Background(), discard(), "/m", nil); err != nil {
		t.Errorf("toStatus(nil) = %v", err)
	}
	unknown := toStatus(context.Background(), discard(), "/m", errors.New("x"))
	if msg := status.Convert(unknown).Message(); !strings.Contains(msg, "request id") {
		t.Errorf("internal message %q does not point at the request id", msg)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
