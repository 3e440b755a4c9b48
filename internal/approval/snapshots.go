package approval

import (
	"sync"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// snapshots keeps, per replica, the request a device has just fetched
// (GetForDevice), so its answer (Respond) on the same replica needs no
// second read. Only what never changes is taken from it: the fields the
// signature covers, the expiry, the number's hash and the targets. Whether
// the request is still pending is decided by DecideRequest's
// compare-and-swap, and whether the device may still answer by the
// deciding transaction (mayDecide), as without the snapshot.
type snapshots struct {
	mu  sync.Mutex
	max int
	m   map[snapshotKey]snapshot
}

type snapshotKey struct{ requestID, deviceID string }

type snapshot struct {
	r       store.Request
	targets []store.RequestTarget
}

func newSnapshots(max int) *snapshots {
	return &snapshots{max: max, m: map[snapshotKey]snapshot{}}
}

// put keeps what deviceID was shown of r.
func (s *snapshots) put(deviceID string, r store.Request, targets []store.RequestTarget, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		for k, v := range s.m {
			if !now.Before(v.r.ExpiresAt) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			clear(s.m)
		}
	}
	s.m[snapshotKey{r.ID, deviceID}] = snapshot{r: r, targets: targets}
}

// take returns and forgets what deviceID was shown of requestID.
func (s *snapshots) take(deviceID, requestID string) (snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := snapshotKey{requestID, deviceID}
	v, ok := s.m[k]
	delete(s.m, k)
	return v, ok
}
