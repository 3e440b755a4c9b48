// Package httpapi serves the gRPC API as JSON over HTTP for clients without
// gRPC (PHP, browsers, curl), using grpc-gateway's generated handlers and the
// google.api.http rules in the protos. It forwards every call over an
// in-process gRPC connection to the server's own services, so the same
// interceptors run: request ids, logs, metrics, authentication, limits,
// validation and the mapping of errors to statuses. Only the translation
// lives here: statuses become HTTP statuses with google.rpc.Status JSON and
// a Retry-After header, and server streams become newline-delimited JSON.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/proto/openapi"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// RequestIDHeader is the HTTP header that carries the request id both ways,
// as x-request-id does on gRPC.
const RequestIDHeader = "X-Request-Id"

// NDJSON is the content type of streamed responses: one JSON object a
// line, {"result": …} for each message and {"error": …} if the stream fails.
const NDJSON = "application/x-ndjson"

// Config shapes the handler.
type Config struct {
	// MaxBodyBytes caps a request body; larger ones are refused before they
	// are read. Zero or less means no cap here (gRPC's message cap still
	// holds).
	MaxBodyBytes int64
}

// New returns the handler for every service, forwarding calls over conn (a
// connection to the server's own gRPC services), and the OpenAPI document
// at /openapi.json.
func New(ctx context.Context, conn *grpc.ClientConn, cfg Config) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		runtime.WithErrorHandler(writeError),
		runtime.WithStreamErrorHandler(streamError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler()),
		runtime.WithDisableHTTPMethodOverride(),
	)
	for name, register := range map[string]func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		"RelyingPartyService": pushauthv1.RegisterRelyingPartyServiceHandler,
		"AdminService":        pushauthv1.RegisterAdminServiceHandler,
		"DeviceService":       pushauthv1.RegisterDeviceServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("http routes of %s: %w", name, err)
		}
	}
	top := http.NewServeMux()
	top.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	})
	top.Handle("/", mux)
	return frame(top, cfg.MaxBodyBytes), nil
}

// marshaler writes JSON with every field present (zero values included, so
// a PHP client need not know proto3's defaults), enums by name and
// lowerCamelCase names; it reads either name style and, as gRPC does,
// ignores fields it does not know.
func marshaler() runtime.Marshaler {
	return ndjson{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// ndjson labels streamed responses as newline-delimited JSON.
type ndjson struct{ *runtime.JSONPb }

// StreamContentType implements runtime.StreamContentType.
func (ndjson) StreamContentType(any) string { return NDJSON }

// incomingHeader forwards only the request id and the W3C trace context
// (traceparent, tracestate: the gRPC server's tracing continues the
// caller's trace; nothing trusts them) (Authorization and X-Forwarded-For
// are forwarded by the gateway itself). Nothing else from the client
// becomes metadata, so no header can pose as one the server trusts.
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case RequestIDHeader:
		return "x-request-id", true
	case "Traceparent":
		return "traceparent", true
	case "Tracestate":
		return "tracestate", true
	}
	return "", false
}

// dropMetadata keeps gRPC metadata out of HTTP headers: the request id is
// set by frame, and nothing else is meant for clients.
func dropMetadata(string) (string, bool) { return "", false }

// frame names the request (adopting a well-formed X-Request-Id or making
// one, so even requests the gateway refuses itself have one), caps the
// body, and lets error handlers set Retry-After.
func frame(next http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !requestid.Valid(id) {
			id = requestid.New()
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		if maxBody > 0 && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), writerKey{}, w)))
	})
}

// writeError answers a failed call with its status as google.rpc.Status
// JSON and the matching HTTP status.
func writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	var herr *runtime.HTTPStatusError
	if errors.As(err, &herr) {
		err = herr.Err
	}
	st := status.Convert(err)
	setErrorHeaders(w, st)
	body, merr := m.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code":13,"message":"cannot encode the error"}`)
		st = status.New(codes.Internal, "")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Trailer")
	w.Header().Del("Transfer-Encoding")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	_, _ = w.Write(body)
}

// streamError sets the error headers of a stream that fails before its
// first message (the gateway then writes the HTTP status); later, headers
// are gone and the error is the stream's last line.
func streamError(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	if w, ok := ctx.Value(writerKey{}).(http.ResponseWriter); ok {
		setErrorHeaders(w, st)
	}
	return st
}

// routingError answers paths and methods that match no rule.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	st := status.New(codes.NotFound, "no such path; see /openapi.json")
	switch code {
	case http.StatusMethodNotAllowed:
		st = status.New(codes.Unimplemented, "method not allowed on this path; see /openapi.json")
	case http.StatusBadRequest:
		st = status.New(codes.InvalidArgument, "malformed request")
	}
	writeError(ctx, mux, m, w, r, st.Err())
}

type writerKey struct{}

// setErrorHeaders adds Retry-After when the status carries RetryInfo, and
// the bearer challenge on Unauthenticated.
func setErrorHeaders(w http.ResponseWriter, st *status.Status) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			w.Header().Set("Retry-After", retryAfter(ri.GetRetryDelay().AsDuration()))
		}
	}
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushauth"`)
	}
}

// retryAfter is a delay in whole seconds, rounded up (Retry-After has no
// fractions, and retrying early would only be refused again).
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(max(d, time.Second).Seconds())), 10)
}
