package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/requestid"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

var testInfo = &grpc.UnaryServerInfo{FullMethod: "/pushauth.v1.AdminService/Test"}

func TestRecoverUnary(t *testing.T) {
	resp, err := recoverUnary(context.Background(), nil, testInfo, func(context.Context, any) (any, error) {
		panic("nil map write in secret-handler")
	})
	if resp != nil {
		t.Errorf("resp = %v, want nil", resp)
	}
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.Internal || fe.Message != "internal error" {
		t.Fatalf("err = %v, want an Internal fault with a generic message", err)
	}
	if !strings.Contains(fe.Cause.Error(), "secret-handler") || !strings.Contains(fe.Cause.Error(), "goroutine") {
		t.Errorf("cause %q lacks the panic value and stack", fe.Cause)
	}

	// No panic: the handler's result passes through.
	want := errors.New("plain")
	if _, err := recoverUnary(context.Background(), nil, testInfo, func(context.Context, any) (any, error) { return "ok", want }); err != want {
		t.Errorf("err = %v, want the handler's", err)
	}
}

func TestRecoverStream(t *testing.T) {
	err := recoverStream(nil, &fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/x/Y"}, func(any, grpc.ServerStream) error {
		panic(errors.New("stream exploded"))
	})
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.Internal || strings.Contains(fe.Message, "exploded") {
		t.Fatalf("err = %v, want an Internal fault hiding the panic", err)
	}
}

// TestObservePanic runs the outer part of the real chain (observe, then
// recover) around a panicking handler.
func TestObservePanic(t *testing.T) {
	var log bytes.Buffer
	m := NewMetrics("test")
	o := &observe{log: slog.New(requestid.Handler(slog.NewTextHandler(&log, nil))), metrics: m, now: time.Now}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "req-42"))
	var seenID string
	// The standard metrics wrap observe, as in the server's chain.
	_, err := m.grpc.UnaryServerInterceptor()(ctx, nil, testInfo, func(ctx context.Context, req any) (any, error) {
		return o.unary(ctx, req, testInfo, func(ctx context.Context, req any) (any, error) {
			return recoverUnary(ctx, req, testInfo, func(ctx context.Context, _ any) (any, error) {
				seenID = requestid.From(ctx)
				panic("boom with password=hunter2")
			})
		})
	})
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Internal {
		t.Fatalf("err = %v, want Internal", err)
	}
	if strings.Contains(st.Message(), "hunter2") || strings.Contains(st.Message(), "boom") {
		t.Errorf("message %q leaks the panic", st.Message())
	}
	if seenID != "req-42" {
		t.Errorf("handler saw request id %q, want the client's req-42", seenID)
	}
	for _, want := range []string{"hunter2", "request_id=req-42", "level=ERROR", "code=Internal"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	// The internal cause is logged under the request id the client got,
	// which the "internal error" message points to.
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if !strings.Contains(line, "request_id=req-42") {
			t.Errorf("a line of the failed call lacks its request id: %s", line)
		}
		if strings.Contains(line, "rpc failed") && !strings.Contains(line, "hunter2") {
			t.Errorf("the rpc failed line lacks the cause: %s", line)
		}
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if "/"+labels["grpc_service"]+"/"+labels["grpc_method"] == testInfo.FullMethod && labels["grpc_code"] == "Internal" && metric.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no grpc_server_handled_total{grpc_code=Internal} = 1 for %s", testInfo.FullMethod)
	}
}

func TestObserveMakesRequestID(t *testing.T) {
	o := &observe{log: slog.New(slog.DiscardHandler), metrics: NewMetrics("test"), now: time.Now}
	for _, sent := range []string{"", "bad id", strings.Repeat("x", 65)} {
		ctx := context.Background()
		if sent != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-request-id", sent))
		}
		var seen string
		if _, err := o.unary(ctx, nil, testInfo, func(ctx context.Context, _ any) (any, error) {
			seen = requestid.From(ctx)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 24 || seen == sent {
			t.Errorf("sent %q: handler saw request id %q, want a fresh one", sent, seen)
		}
	}

	// Streams get one too, through the wrapped stream's context.
	var seen string
	err := o.stream(nil, &fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: "/x/Y"}, func(_ any, ss grpc.ServerStream) error {
		seen = requestid.From(ss.Context())
		return fault.New(fault.NotFound, "gone")
	})
	if status.Code(err) != codes.NotFound {
		t.Errorf("stream error %v, want the fault as NotFound", err)
	}
	if len(seen) != 24 {
		t.Errorf("stream handler saw request id %q", seen)
	}
}

func TestValidator(t *testing.T) {
	pv, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	v := validator{v: pv}
	if err := v.check(&pushauthv1.CreateRelyingPartyRequest{Name: "portal", DisplayName: "Portal"}); err != nil {
		t.Errorf("valid request refused: %v", err)
	}
	if err := v.check("not a proto"); err != nil {
		t.Errorf("non-proto refused: %v", err)
	}
	err = v.check(&pushauthv1.CreateRelyingPartyRequest{
		Name:   "Bad Name",
		Policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(time.Second)},
	})
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %s, want InvalidArgument", st.Code())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	slices.Sort(fields)
	if want := []string{"display_name", "name", "policy.approval_ttl"}; !slices.Equal(fields, want) {
		t.Errorf("violations %v, want %v", fields, want)
	}
	for _, f := range fields {
		if !strings.Contains(st.Message(), f+": ") {
			t.Errorf("message %q does not name %s", st.Message(), f)
		}
	}

	// Streams validate every received message.
	ss := &validatingStream{ServerStream: &fakeStream{ctx: context.Background(), recv: &pushauthv1.CreateRelyingPartyRequest{Name: "x"}}, v: v}
	var got pushauthv1.CreateRelyingPartyRequest
	if err := ss.RecvMsg(&got); status.Code(err) != codes.InvalidArgument {
		t.Errorf("stream RecvMsg of an invalid message: %v, want InvalidArgument", err)
	}
}

// fakeStream is a grpc.ServerStream with a fixed context that receives one
// message.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	recv *pushauthv1.CreateRelyingPartyRequest
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) RecvMsg(m any) error {
	if f.recv == nil {
		return errors.New("no message")
	}
	out := m.(*pushauthv1.CreateRelyingPartyRequest)
	out.Name, out.DisplayName, out.Policy = f.recv.Name, f.recv.DisplayName, f.recv.Policy
	return nil
}
