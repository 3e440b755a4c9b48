package server_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
	"github.com/pushauth/pushauth/internal/store/storetest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// terminate ends every PostgreSQL backend of application app, as an
// operator's pg_terminate_backend or a failover would, and returns how many.
func terminate(t *testing.T, ctx context.Context, db *sql.DB, app string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// After pg_terminate_backend on all the server's connections, API-key
// checks, reads and WatchRequests retry once on a fresh connection or
// answer Unavailable; never Internal.
func TestTerminatedConnectionsAreNotInternal(t *testing.T) {
	url := storetest.NewPostgresURL(t)
	app := "pushauth_dbloss_" + strings.ReplaceAll(t.Name(), "/", "_")
	ts := servertest.New(t, url+"&application_name="+app)
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := servertest.Context(t)

	key, phone := paired(t, ts)
	rctx := ts.WithToken(ctx, key)

	watch, err := ts.Device.WatchRequests(ts.WithToken(ctx, phone.Credential), &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	codesSeen := map[codes.Code]int{}
	var mu sync.Mutex
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		codesSeen[status.Code(err)]++
		if status.Code(err) == codes.Internal {
			t.Errorf("Internal after terminated connections: %v", err)
		}
	}
	for round := range 5 {
		ts.Clock.Advance(2 * time.Minute) // refills the rate limits
		// Fill the pool with connections, then kill them all.
		servertest.Burst(20, func(int) error {
			_, err := ts.RP.WhoAmI(rctx, &pushauthv1.WhoAmIRequest{})
			return err
		})
		if n := terminate(t, ctx, admin, app); n == 0 {
			t.Fatalf("round %d: no backend of %s to terminate", round, app)
		}
		for _, err := range servertest.Burst(20, func(int) error {
			_, err := ts.RP.WhoAmI(rctx, &pushauthv1.WhoAmIRequest{})
			return err
		}) {
			note(err)
		}
		terminate(t, ctx, admin, app)
		c, err := ts.RP.CreateApproval(rctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		note(err)
		if err != nil {
			continue
		}
		// The watch reads the new request from the database.
		for {
			ev, err := watch.Recv()
			if err != nil {
				note(err)
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("watch: %v", err)
				}
				// The phone re-attaches, as the app does on Unavailable.
				if watch, err = ts.Device.WatchRequests(ts.WithToken(ctx, phone.Credential), &pushauthv1.WatchRequestsRequest{}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if ev.GetRequest().GetId() == c.GetRequestId() {
				break
			}
		}
	}
	st := ts.Store.(*sqlstore.Store)
	t.Logf("codes after terminations: %v; statements and transactions retried: %d", codesSeen, st.Retries())
	if st.Retries() == 0 {
		t.Error("no read or transaction was retried on a fresh connection")
	}
	if codesSeen[codes.OK] == 0 {
		t.Error("no call succeeded after the terminations")
	}
}
