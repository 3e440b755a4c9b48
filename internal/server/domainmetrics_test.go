package server_test

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// A scrape after a login shows the standard gRPC metrics and the domain
// ones: what was decided and how fast, pushes and SMS by provider, the SMS
// budget, open waits and the push backlog.
func TestMetricsAfterAFlow(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ts.Pair(t, phone, key, "jan", "jan@example.nl")
		ctx := ts.WithToken(servertest.Context(t), key)
		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := ts.RP.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
		if err != nil {
			t.Fatal(err)
		}
		// Sent means the provider (the log sender) took the push: counted.
		for {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetProgress().GetKind() == pushauthv1.Progress_KIND_SENT {
				break
			}
		}
		wantMetric(t, ts, `pushauth_open_waits{method="WaitRequest"} 1`)

		ts.Clock.Advance(3 * time.Second)
		if _, err := ts.Decide(t, phone, ts.Pending(t, phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetResult() != nil {
				break
			}
		}
		if _, err := stream.Recv(); err == nil {
			t.Fatal("the stream went on after its result")
		}

		for _, want := range []string{
			// Standard gRPC server metrics.
			`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateApproval",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="OK",grpc_method="WaitRequest",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="server_stream"} 1`,
			`grpc_server_handling_seconds_count{grpc_method="CreateApproval",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="unary"} 1`,
			`grpc_server_started_total{grpc_method="RespondToRequest",grpc_service="pushauth.v1.DeviceService",grpc_type="unary"} 2`,
			// Domain metrics.
			`pushauth_requests_decided_total{kind="LOGIN",reason="USER",status="APPROVED"} 1`,
			`pushauth_requests_decided_total{kind="PAIRING",reason="USER",status="APPROVED"} 1`,
			`pushauth_request_decision_seconds_sum{kind="LOGIN",status="APPROVED"} 3`,
			`pushauth_request_decision_seconds_bucket{kind="LOGIN",status="APPROVED",le="3"} 1`,
			`pushauth_sms_total{provider="outbox",result="sent"} 1`,
			`pushauth_sms_budget_left 9999`,
			`pushauth_open_waits{method="WaitRequest"} 0`,
			`pushauth_open_waits{method="AwaitRequest"} 0`,
			`pushauth_push_queue_jobs{state="pending"} 0`,
			// Kept from before.
			`pushauth_secret_checks_total{result="right",secret="sms_code"} 1`,
		} {
			wantMetric(t, ts, want)
		}
		// The login's push was sent (its SENT progress came); the pairing's
		// may still be on its way.
		body := wantOps(t, ts, "/metrics", http.StatusOK)
		m := regexp.MustCompile(`(?m)^pushauth_pushes_total\{provider="log",result="sent"\} (\d+)$`).FindStringSubmatch(body)
		if m == nil || (m[1] != "1" && m[1] != "2") {
			t.Errorf("pushauth_pushes_total{provider=log,result=sent} = %v, want 1 or 2", m)
		}
	})
}
