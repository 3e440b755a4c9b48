package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

const testToken = "pa_admin_0123456789abcdef"

// baseTime is the create time of the first object of fakeAdmin.
var baseTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeAdmin is an in-memory AdminService. It accepts testToken as bearer
// token, or a verified TLS client certificate, and records what it was sent.
type fakeAdmin struct {
	pushauthv1.UnimplementedAdminServiceServer

	mu           sync.Mutex
	n            int // objects created, for ids and times
	rps          []*pushauthv1.RelyingParty
	keys         []*pushauthv1.ApiKey
	events       []*pushauthv1.AuditEvent // newest first
	auditMaxPage int                      // caps page_size of ListAuditEvents, if > 0

	// Recorded requests.
	authHeaders  []string
	updates      []*pushauthv1.UpdateRelyingPartyPolicyRequest
	listRPCalls  []*pushauthv1.ListRelyingPartiesRequest
	auditCalls   []*pushauthv1.ListAuditEventsRequest
	createCalled int
}

// auth is a unary interceptor checking "authorization: Bearer <testToken>".
func (f *fakeAdmin) auth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	f.mu.Lock()
	f.authHeaders = append(f.authHeaders, strings.Join(vals, ","))
	f.mu.Unlock()
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(vals) == 0 {
			return handler(ctx, req)
		}
	}
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "missing credentials")
	}
	if len(vals) != 1 || vals[0] != "Bearer "+testToken {
		return nil, status.Error(codes.Unauthenticated, "invalid admin token")
	}
	return handler(ctx, req)
}

func (f *fakeAdmin) lastAuth() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.authHeaders) == 0 {
		return ""
	}
	return f.authHeaders[len(f.authHeaders)-1]
}

func (f *fakeAdmin) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.authHeaders)
}

func (f *fakeAdmin) next() (int, *timestamppb.Timestamp) {
	f.n++
	return f.n, timestamppb.New(baseTime.Add(time.Duration(f.n-1) * time.Hour))
}

func (f *fakeAdmin) findRP(s string) (*pushauthv1.RelyingParty, error) {
	for _, rp := range f.rps {
		if rp.Id == s || rp.Name == s {
			return rp, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "relying party %q not found", s)
}

func (f *fakeAdmin) CreateRelyingParty(_ context.Context, req *pushauthv1.CreateRelyingPartyRequest) (*pushauthv1.CreateRelyingPartyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.createCalled++
	if req.Name == "bad" {
		st, err := status.New(codes.InvalidArgument, "invalid relying party").WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{
				Field:       "name",
				Description: "must not be \"bad\"",
			}},
		})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	if _, err := f.findRP(req.Name); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "relying party %q exists", req.Name)
	}
	pol := proto.Clone(req.GetPolicy()).(*pushauthv1.RelyingPartyPolicy)
	if pol == nil {
		pol = &pushauthv1.RelyingPartyPolicy{}
	}
	if pol.NumberMatching == pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_UNSPECIFIED {
		pol.NumberMatching = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE
	}
	if pol.ApprovalTtl == nil {
		pol.ApprovalTtl = durationpb.New(2 * time.Minute)
	}
	n, ts := f.next()
	rp := &pushauthv1.RelyingParty{
		Id: fmt.Sprintf("rp_%d", n), Name: req.Name, DisplayName: req.DisplayName,
		Policy: pol, CreateTime: ts,
	}
	f.rps = append(f.rps, rp)
	return &pushauthv1.CreateRelyingPartyResponse{RelyingParty: proto.Clone(rp).(*pushauthv1.RelyingParty)}, nil
}

func (f *fakeAdmin) GetRelyingParty(_ context.Context, req *pushauthv1.GetRelyingPartyRequest) (*pushauthv1.GetRelyingPartyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rp, err := f.findRP(req.RelyingParty)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.GetRelyingPartyResponse{RelyingParty: proto.Clone(rp).(*pushauthv1.RelyingParty)}, nil
}

// page returns the bounds of a page of n items for a token (the start index).
func page(token string, size int32, def int, n int) (start, end int, next string, err error) {
	if token != "" {
		if start, err = strconv.Atoi(token); err != nil || start < 0 || start > n {
			return 0, 0, "", status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	if size <= 0 {
		size = int32(def)
	}
	end = min(start+int(size), n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

func (f *fakeAdmin) ListRelyingParties(_ context.Context, req *pushauthv1.ListRelyingPartiesRequest) (*pushauthv1.ListRelyingPartiesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listRPCalls = append(f.listRPCalls, proto.Clone(req).(*pushauthv1.ListRelyingPartiesRequest))
	start, end, next, err := page(req.PageToken, req.PageSize, 50, len(f.rps))
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListRelyingPartiesResponse{NextPageToken: next}
	for _, rp := range f.rps[start:end] {
		resp.RelyingParties = append(resp.RelyingParties, proto.Clone(rp).(*pushauthv1.RelyingParty))
	}
	return resp, nil
}

func (f *fakeAdmin) UpdateRelyingPartyPolicy(_ context.Context, req *pushauthv1.UpdateRelyingPartyPolicyRequest) (*pushauthv1.UpdateRelyingPartyPolicyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, proto.Clone(req).(*pushauthv1.UpdateRelyingPartyPolicyRequest))
	rp, err := f.findRP(req.RelyingParty)
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = []string{"number_matching", "approval_ttl", "allow_location_automation", "allow_backup_restore"}
	}
	for _, p := range paths {
		switch p {
		case "number_matching":
			rp.Policy.NumberMatching = req.Policy.NumberMatching
		case "approval_ttl":
			rp.Policy.ApprovalTtl = req.Policy.ApprovalTtl
			if rp.Policy.ApprovalTtl == nil {
				rp.Policy.ApprovalTtl = durationpb.New(2 * time.Minute)
			}
		case "allow_location_automation":
			rp.Policy.AllowLocationAutomation = req.Policy.AllowLocationAutomation
		case "allow_backup_restore":
			rp.Policy.AllowBackupRestore = req.Policy.AllowBackupRestore
		default:
			return nil, status.Errorf(codes.InvalidArgument, "unknown update_mask path %q", p)
		}
	}
	_, rp.UpdateTime = f.next()
	return &pushauthv1.UpdateRelyingPartyPolicyResponse{RelyingParty: proto.Clone(rp).(*pushauthv1.RelyingParty)}, nil
}

func (f *fakeAdmin) CreateApiKey(_ context.Context, req *pushauthv1.CreateApiKeyRequest) (*pushauthv1.CreateApiKeyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rp, err := f.findRP(req.RelyingParty)
	if err != nil {
		return nil, err
	}
	n, ts := f.next()
	k := &pushauthv1.ApiKey{
		Id: fmt.Sprintf("key_%d", n), RelyingPartyId: rp.Id, Prefix: fmt.Sprintf("pak_%d", n),
		Description: req.Description, CreateTime: ts,
	}
	f.keys = append(f.keys, k)
	return &pushauthv1.CreateApiKeyResponse{
		ApiKey: proto.Clone(k).(*pushauthv1.ApiKey),
		Secret: fmt.Sprintf("pak_%d_s3cr3t", n),
	}, nil
}

func (f *fakeAdmin) ListApiKeys(_ context.Context, req *pushauthv1.ListApiKeysRequest) (*pushauthv1.ListApiKeysResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rp, err := f.findRP(req.RelyingParty)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListApiKeysResponse{}
	for _, k := range f.keys {
		if k.RelyingPartyId == rp.Id && (req.IncludeRevoked || k.RevokeTime == nil) {
			resp.ApiKeys = append(resp.ApiKeys, proto.Clone(k).(*pushauthv1.ApiKey))
		}
	}
	return resp, nil
}

func (f *fakeAdmin) RevokeApiKey(_ context.Context, req *pushauthv1.RevokeApiKeyRequest) (*pushauthv1.RevokeApiKeyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.keys {
		if k.Id == req.ApiKey || k.Prefix == req.ApiKey {
			if k.RevokeTime == nil {
				_, k.RevokeTime = f.next()
			}
			return &pushauthv1.RevokeApiKeyResponse{ApiKey: proto.Clone(k).(*pushauthv1.ApiKey)}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "api key %q not found", req.ApiKey)
}

func (f *fakeAdmin) ListAuditEvents(_ context.Context, req *pushauthv1.ListAuditEventsRequest) (*pushauthv1.ListAuditEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auditCalls = append(f.auditCalls, proto.Clone(req).(*pushauthv1.ListAuditEventsRequest))
	var match []*pushauthv1.AuditEvent
	for _, ev := range f.events {
		if req.RelyingParty != "" {
			rp, err := f.findRP(req.RelyingParty)
			if err != nil {
				return nil, err
			}
			if ev.RelyingPartyId != rp.Id {
				continue
			}
		}
		t := ev.Time.AsTime()
		if req.StartTime != nil && t.Before(req.StartTime.AsTime()) || req.EndTime != nil && !t.Before(req.EndTime.AsTime()) {
			continue
		}
		match = append(match, ev)
	}
	size := req.PageSize
	if f.auditMaxPage > 0 && (size == 0 || size > int32(f.auditMaxPage)) {
		size = int32(f.auditMaxPage)
	}
	start, end, next, err := page(req.PageToken, size, 100, len(match))
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListAuditEventsResponse{NextPageToken: next}
	for _, ev := range match[start:end] {
		resp.Events = append(resp.Events, proto.Clone(ev).(*pushauthv1.AuditEvent))
	}
	return resp, nil
}

// addEvents adds n audit events for rp, one a minute, newest first, the
// newest at newest.
func (f *fakeAdmin) addEvents(rpID string, n int, newest time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		f.events = append(f.events, &pushauthv1.AuditEvent{
			Id: fmt.Sprintf("ev_%s_%d", rpID, i), Time: timestamppb.New(newest.Add(-time.Duration(i) * time.Minute)),
			Actor: "admin", Action: "relying_party.updated", RelyingPartyId: rpID,
			Target: rpID, Details: map[string]string{"field": "number_matching", "note": "was none"},
			RequestId: fmt.Sprintf("req_%d", i),
		})
	}
	slices.SortStableFunc(f.events, func(a, b *pushauthv1.AuditEvent) int {
		return b.Time.AsTime().Compare(a.Time.AsTime())
	})
}

// testServer is a fakeAdmin served over gRPC on a loopback port.
type testServer struct {
	*fakeAdmin
	addr string
}

// startServer serves a new fakeAdmin on 127.0.0.1 until the test ends.
func startServer(t *testing.T, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAdmin{}
	s := grpc.NewServer(append(opts, grpc.UnaryInterceptor(f.auth))...)
	pushauthv1.RegisterAdminServiceServer(s, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return &testServer{fakeAdmin: f, addr: lis.Addr().String()}
}

// result is what one run of the CLI did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command line with the given environment and stdin, and
// nothing of the test process's environment.
func cli(t *testing.T, env map[string]string, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr bytes.Buffer
	code := runEnv(t.Context(), args, stdin, &stdout, &stderr, func(k string) string { return env[k] })
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// admin runs "pushauth admin args..." against s with the admin token, the
// connection flags after the command's own arguments.
func (s *testServer) admin(t *testing.T, args ...string) result {
	t.Helper()
	args = append(append([]string{"admin"}, args...), "--addr", s.addr, "--token", testToken)
	return cli(t, nil, nil, args...)
}

// mustAdmin is admin that fails the test unless the command succeeds.
func (s *testServer) mustAdmin(t *testing.T, args ...string) string {
	t.Helper()
	r := s.admin(t, args...)
	if r.code != 0 {
		t.Fatalf("pushauth admin %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}
