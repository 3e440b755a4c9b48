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
}

// toStatus turns a handler's error into what the client sees. Client-facing
// messages come only from fault.Error or existing statuses; any other error's
// text stays in the log, and the client gets a generic Internal.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
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
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "changed concurrently; try again")
	}
	log.ErrorContext(ctx, "rpc failed", "method", method, "code", codes.Internal.String(), "err", err)
	return status.Error(codes.Internal, "internal error; the server log has the details under this request id")
}
