package server_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestLogNames: in the server log, a phone number is only ever the masked
// form under the key phone; request_id is only the RPC correlation id, and
// a login or pairing request is named approval_id.
func TestLogNames(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, "portal")
		ts.Pair(t, phone, key, "jan", "jan")
		ctx := servertest.Context(t)
		created, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Decide(t, phone, ts.Pending(t, phone), pushauthv1.Decision_DECISION_REPORT_FRAUD, ""); err != nil {
			t.Fatal(err)
		}
		log := ts.Logs.String()

		phones := regexp.MustCompile(`([A-Za-z_.]+)=("?)(\+[0-9*]+)`).FindAllStringSubmatch(log, -1)
		if len(phones) == 0 {
			t.Fatalf("no phone number logged at all:\n%s", log)
		}
		for _, m := range phones {
			if m[1] != "phone" || !regexp.MustCompile(`^\+31\*+78$`).MatchString(m[3]) {
				t.Errorf("phone number logged as %s=%s, want phone=+31*******78", m[1], m[3])
			}
		}
		if strings.Contains(log, "612345678") {
			t.Error("the full number was logged")
		}

		if !strings.Contains(log, "approval_id="+created.GetRequestId()) {
			t.Errorf("the fraud report does not name approval_id=%s:\n%s", created.GetRequestId(), log)
		}
		for _, m := range regexp.MustCompile(`([A-Za-z_.]+)=(req_[0-9a-z]+)`).FindAllStringSubmatch(log, -1) {
			if m[1] != "approval_id" {
				t.Errorf("login or pairing request logged as %s=%s, want approval_id", m[1], m[2])
			}
		}
		for _, m := range regexp.MustCompile(`request_id=(\S+)`).FindAllStringSubmatch(log, -1) {
			if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(m[1]) {
				t.Errorf("request_id=%s is not an RPC id", m[1])
			}
		}
	})
}
