package server_test

import (
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Statement budget of one complete login flow on the request path:
// CreateApproval, WaitRequest until the result, the phone's GetRequest and
// RespondToRequest, with the replica's caches warm. Background work (the
// outbox relay, push results, batched marks) is counted apart and only
// logged.
//
// The request-engine issue's budget is 12 statements and 2 commits on both
// databases, and the flow takes 12, each statement for a guarantee (see
// docs/benchmarks.md, "Statements per flow"). CreateApproval 7: the user's
// devices; the user's state row, locked, with their pending requests (one
// statement on SQLite, the lock then the list on PostgreSQL, so the list
// sees every earlier holder's requests); the rate limit (one statement; the
// state row's lock serializes its key); the request with its targets (two
// statements on SQLite, one on PostgreSQL); its audit event; its push jobs.
// WaitRequest 1, GetRequest 1, RespondToRequest 3 (the decider's
// connection, locked, with the user's state; the decision; its audit event
// with its security event for the event outbox, one statement, so the
// relying party's feed cannot miss a decision that committed).
var budgetStatements = map[string]float64{"sqlite": 12, "postgres": 12}

const budgetCommits = 2

// TestFlowStatementBudget counts the SQL statements and commits of complete
// login flows through the real server, its store's own counters, and fails
// above the budget. The flows are driven one step at a time, so the count
// is the same on every run.
func TestFlowStatementBudget(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		fcm := servertest.NewFakeFCM(t)
		ts := servertest.New(t, url, servertest.WithPushSender(fcm.Sender(t)), func(o *server.Options) {
			o.Recheck = time.Hour      // no periodic re-reads inside a flow
			o.AuthCacheTTL = time.Hour // steady state: busy credentials are cached
		})
		st, ok := ts.Store.(*sqlstore.Store)
		if !ok {
			t.Fatalf("store is %T, want *sqlstore.Store", ts.Store)
		}
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ts.Pair(t, phone, key, "jan", "Jan")

		flow := func() {
			t.Helper()
			ctx := ts.WithToken(servertest.Context(t), key)
			c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
			if err != nil {
				t.Fatal(err)
			}
			w, err := ts.RP.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
			if err != nil {
				t.Fatal(err)
			}
			until := func(kind pushauthv1.Progress_Kind) {
				t.Helper()
				for {
					m, err := w.Recv()
					if err != nil {
						t.Fatalf("WaitRequest: %v", err)
					}
					if m.GetProgress().GetKind() == kind {
						return
					}
				}
			}
			until(pushauthv1.Progress_KIND_QUEUED)
			if got := nextPush(t, fcm)["request_id"]; got != c.GetRequestId() {
				t.Fatalf("push for %q", got)
			}
			until(pushauthv1.Progress_KIND_SENT)
			dctx := ts.WithToken(servertest.Context(t), phone.Credential)
			dr, err := ts.Device.GetRequest(dctx, &pushauthv1.DeviceServiceGetRequestRequest{RequestId: c.GetRequestId()})
			if err != nil {
				t.Fatal(err)
			}
			until(pushauthv1.Progress_KIND_SEEN)
			if _, err := ts.Device.RespondToRequest(dctx, phone.SignedResponse(t, dr.GetRequest(), pushauthv1.Decision_DECISION_APPROVE, "", ts.Clock.Now())); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := w.Recv()
				if err != nil {
					t.Fatalf("WaitRequest: %v", err)
				}
				if r := m.GetResult(); r != nil {
					if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
						t.Fatalf("result %v", r.GetStatus())
					}
					return
				}
			}
		}
		flow() // warms what a replica caches
		const flows = 5
		before := st.Counts()
		for range flows {
			ts.Clock.Advance(15 * time.Second) // under 5 logins a minute
			flow()
		}
		d := st.Counts().Sub(before)
		stmts, commits := float64(d.Statements)/flows, float64(d.Commits)/flows
		t.Logf("per flow on the request path: %.1f statements, %.1f commits; in background work (relay, push results, marks; may lag): %.1f statements, %.1f commits",
			stmts, commits, float64(d.BackgroundStatements)/flows, float64(d.BackgroundCommits)/flows)
		if st.Dialect() == "postgres" {
			// pgx's statement cache is per connection: a statement is
			// prepared the first time it runs on each of the pool's
			// connections, then never again (TestPostgresStatementCache).
			all := d.Statements + d.BackgroundStatements
			t.Logf("PostgreSQL round trips per flow (request path and background, BEGIN and COMMIT included): %.1f; statements prepared (first use on a pool connection): %d of %d",
				float64(d.RoundTrips)/flows, d.Prepares, all)
			if d.Prepares >= all {
				t.Errorf("pgx prepared %d of %d statements: its statement cache is not in use", d.Prepares, all)
			}
		}
		budget := budgetStatements[st.Dialect()]
		if stmts > budget || commits > budgetCommits {
			t.Errorf("a flow takes %.1f statements and %.1f commits on the request path; the budget is %.0f and %d", stmts, commits, budget, budgetCommits)
		}
	})
}
