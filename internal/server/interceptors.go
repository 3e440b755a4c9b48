package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/requestid"
)

const requestIDHeader = "x-request-id"

// observe is the outermost interceptor but for the standard metrics: it
// names the request, logs it, and turns errors into statuses.
type observe struct {
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	// codec, when set, holds the decoding errors of requests (see codec).
	codec *codec
}

// withRequestID adopts a well-formed client request id or makes one, and
// sends it back in the response header.
func withRequestID(ctx context.Context) context.Context {
	id := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDHeader); len(v) > 0 && requestid.Valid(v[0]) {
			id = v[0]
		}
	}
	if id == "" {
		id = requestid.New()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id)) // fails only if headers were sent
	return requestid.With(ctx, id)
}

func (o *observe) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	markSeen(ctx)
	ctx = withRequestID(ctx)
	start := o.now()
	var resp any
	err := o.codec.decodeError(req)
	if err == nil {
		resp, err = handler(ctx, req)
	}
	err = toStatus(ctx, o.log, info.FullMethod, err)
	o.done(ctx, info.FullMethod, start, err)
	return resp, err
}

func (o *observe) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	markSeen(ss.Context())
	ctx := withRequestID(ss.Context())
	start := o.now()
	err := handler(srv, &ctxStream{ServerStream: ss, ctx: ctx, codec: o.codec})
	err = toStatus(ctx, o.log, info.FullMethod, err)
	o.done(ctx, info.FullMethod, start, err)
	return err
}

func (o *observe) done(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	elapsed := o.now().Sub(start)
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		level = slog.LevelError
	}
	o.log.Log(ctx, level, "rpc", "method", method, "code", code.String(), "duration_ms", float64(elapsed.Microseconds())/1000)
}

type ctxStream struct {
	grpc.ServerStream
	ctx   context.Context
	codec *codec
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// RecvMsg answers a message that did not decode with its decoding error.
func (s *ctxStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.decodeError(m)
}

// recoverUnary turns a panic in a handler into Internal, logging the stack.
func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fault.Wrap(fault.Internal, fmt.Errorf("panic: %v\n%s", r, debug.Stack()), "internal error")
		}
	}()
	return handler(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fault.Wrap(fault.Internal, fmt.Errorf("panic: %v\n%s", r, debug.Stack()), "internal error")
		}
	}()
	return handler(srv, ss)
}

// validator enforces the protovalidate constraints declared in the protos.
type validator struct{ v protovalidate.Validator }

func (v validator) check(m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if err := checkTimes(msg.ProtoReflect(), ""); err != nil {
		return err
	}
	err := v.v.Validate(msg)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return status.Error(codes.Internal, "cannot validate request")
	}
	br := &errdetails.BadRequest{}
	var parts []string
	for _, viol := range ve.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: field, Description: viol.Proto.GetMessage()})
		parts = append(parts, field+": "+viol.Proto.GetMessage())
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if withD, derr := st.WithDetails(br); derr == nil {
		st = withD
	}
	return st.Err()
}

func (v validator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := v.check(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (v validator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatingStream{ServerStream: ss, v: v})
}

type validatingStream struct {
	grpc.ServerStream
	v validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.v.check(m)
}
