package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// kindCodes maps domain fault kinds to gRPC codes. This is the one place the
// two vocabularies meet.
var kindCodes = map[fault.Kind]codes.Code{
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

// toStatus turns a handler's error into what the client sees. Client-facing
// messages come only from fault.Error or existing statuses; any other error's
// text stays in the log, and the client gets a generic Internal.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	// A fault comes first: its message is the one meant for the client,
	// whatever its cause (even a status from a downstream call).
	if fe, ok := fault.As(err); ok {
		code := kindCodes[fe.Kind]
		if fe.Cause != nil || code == codes.Internal {
			log.ErrorContext(ctx, "rpc failed", "method", method, "code", code.String(), "err", err)
		}
		msg := fe.Message
		if fe.Field != "" {
			msg = fe.Field + ": " + msg
		}
		st := status.New(code, msg)
		var detail []protoadapt.MessageV1
		if fe.Field != "" {
			detail = append(detail, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Message}}})
		}
		if fe.RetryAfter > 0 {
			detail = append(detail, &errdetails.RetryInfo{RetryDelay: durationpb.New(fe.RetryAfter)})
		}
		if len(detail) > 0 {
			if withD, derr := st.WithDetails(detail...); derr == nil {
				st = withD
			}
		}
		return st.Err()
	}
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &se) && se.GRPCStatus() != nil {
		if se != err {
			// Text wrapped around a status is internal context: log it, and
			// send the status alone.
			log.ErrorContext(ctx, "rpc failed", "method", method, "code", se.GRPCStatus().Code().String(), "err", err)
		}
		return se.GRPCStatus().Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, store.ErrNotFound):
		// Usually the client's mistake: the cause only at debug level.
		log.DebugContext(ctx, "rpc failed", "method", method, "code", codes.NotFound.String(), "err", err)
		return status.Error(codes.NotFound, "not found")
	case store.Transient(err):
		// The database connection was lost (a terminated backend, a
		// restart): another try, here or on another replica, may succeed.
		log.WarnContext(ctx, "rpc failed", "method", method, "code", codes.Unavailable.String(), "err", err)
		return status.Error(codes.Unavailable, "the database is unavailable; try again")
	case errors.Is(err, store.ErrConflict):
		log.WarnContext(ctx, "rpc failed", "method", method, "code", codes.Aborted.String(), "err", err)
		return status.Error(codes.Aborted, "changed concurrently; try again")
	}
	log.ErrorContext(ctx, "rpc failed", "method", method, "code", codes.Internal.String(), "err", err)
	return status.Error(codes.Internal, "internal error; the server log has the details under this request id")
}
