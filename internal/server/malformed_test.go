package server_test

// Tests of malformed input sent as raw bytes on a real connection: requests
// that do not decode are InvalidArgument naming the problem, out-of-range
// durations are refused rather than normalised, and calls refused before any
// interceptor are still logged and counted.

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// rawCodec sends and receives messages as the bytes they are, so a test can
// send what no generated client would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, errors.New("rawCodec: want *[]byte")
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return errors.New("rawCodec: want *[]byte")
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// invokeRaw calls the unary method with body as the request's bytes.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) error {
	var resp []byte
	return conn.Invoke(ctx, method, &body, &resp, grpc.ForceCodecV2(rawCodec{}))
}

// streamRaw opens the server-streaming method with body as the request's
// bytes and returns the error that ends it.
func streamRaw(ctx context.Context, conn *grpc.ClientConn, method string, body []byte) error {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	if err := s.SendMsg(&body); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		var resp []byte
		if err := s.RecvMsg(&resp); err != nil {
			return err
		}
	}
}

func stringField(num protowire.Number, s string) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func TestMalformedRequests(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) { o.Limits.MaxRecvMsgSize = 4096 })
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		kctx := ts.WithToken(ctx, key)
		start := pushauthv1.DeviceService_StartPhoneVerification_FullMethodName

		// A string that is not UTF-8, named by its field.
		err := invokeRaw(ctx, ts.Conn, start, stringField(1, "+3161234\xff5678"))
		wantInvalidField(t, err, "phone_number")

		// Also inside a nested message.
		body := append(stringField(1, "jan"), protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), stringField(1, "Portal \xc3"))...)
		err = invokeRaw(kctx, ts.Conn, pushauthv1.RelyingPartyService_CreateApproval_FullMethodName, body)
		wantInvalidField(t, err, "context.app_name")

		// Bytes that are no protobuf at all.
		err = invokeRaw(ctx, ts.Conn, start, []byte{0xff, 0xff, 0xff})
		wantStatus(t, err, codes.InvalidArgument, "not a valid pushauth.v1.StartPhoneVerificationRequest")

		// The same on a stream.
		err = streamRaw(kctx, ts.Conn, pushauthv1.RelyingPartyService_WaitRequest_FullMethodName, []byte{0x0a, 0x05, 'r', 'e', 'q', 0xe2, 0x82})
		wantInvalidField(t, err, "request_id")

		// Too large: refused by gRPC before any interceptor runs.
		err = invokeRaw(ctx, ts.Conn, start, stringField(1, string(bytes.Repeat([]byte("6"), 5000))))
		wantStatus(t, err, codes.ResourceExhausted, "larger than max")

		// Every one is logged and counted like any call.
		for _, want := range []string{
			`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="StartPhoneVerification",grpc_service="pushauth.v1.DeviceService",grpc_type="unary"} 2`,
			`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="CreateApproval",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="WaitRequest",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="server_stream"} 1`,
			// Refused before the interceptors: the standard metrics never see it.
			`pushauth_grpc_refused_early_total{grpc_code="ResourceExhausted",grpc_method="StartPhoneVerification",grpc_service="pushauth.v1.DeviceService"} 1`,
		} {
			wantMetric(t, ts, want)
		}
		for _, want := range []string{
			"method=/pushauth.v1.DeviceService/StartPhoneVerification code=InvalidArgument",
			"method=/pushauth.v1.RelyingPartyService/WaitRequest code=InvalidArgument",
			"method=/pushauth.v1.DeviceService/StartPhoneVerification code=ResourceExhausted",
		} {
			if !ts.Logs.Contains("msg=rpc " + want) {
				t.Errorf("log lacks an rpc line with %q", want)
			}
		}

		// The connection is still good.
		if _, err := ts.RP.WhoAmI(kctx, &pushauthv1.WhoAmIRequest{}); err != nil {
			t.Fatalf("WhoAmI after malformed requests: %v", err)
		}
	})
}

func TestDurationOutOfRange(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))
		for _, d := range []*durationpb.Duration{
			{Seconds: 60, Nanos: 2_000_000_000}, // would read as 62 s
			{Seconds: 60, Nanos: -5},            // signs differ
			{Seconds: 1 << 62},                  // beyond ±10,000 years
		} {
			_, err := ts.Admin.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{
				Name: "portal", DisplayName: "Portal", Policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: d},
			})
			wantInvalidField(t, err, "policy.approval_ttl")
		}
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, err := ts.Admin.UpdateRelyingPartyPolicy(ctx, &pushauthv1.UpdateRelyingPartyPolicyRequest{
			RelyingParty: rp.GetId(),
			Policy:       &pushauthv1.RelyingPartyPolicy{ApprovalTtl: &durationpb.Duration{Seconds: 60, Nanos: 2_000_000_000}},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"approval_ttl"}},
		})
		wantInvalidField(t, err, "policy.approval_ttl")

		// A well-formed one still works, and the policy was not changed.
		got, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: rp.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if ttl := got.GetRelyingParty().GetPolicy().GetApprovalTtl().AsDuration(); ttl != 120*time.Second {
			t.Errorf("approval_ttl %v after refused updates, want the default 120s", ttl)
		}
	})
}
