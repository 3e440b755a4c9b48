package events

import "fmt"

// The JetStream streams and their subjects. Only this package spells them:
// internal/feed and internal/push ask for them here.

// The push queue's JetStream stream and the subject its jobs go to (the
// defaults of push.QueueConfig).
const (
	PushStream      = "PUSHAUTH_PUSH"
	PushJobsSubject = "pushauth.push.jobs"
)

// SecurityEventStream names the JetStream stream that keeps relying
// parties' security events for WatchEvents and the webhooks.
const SecurityEventStream = "PUSHAUTH_EVENTS"

// SecurityEventSubjects are the stream's subjects:
// pushauth.events.<relying party id>.<event type>. The two tokens keep it
// apart from the core-NATS pushauth.events.<relying party id> notices,
// which are not stored.
var SecurityEventSubjects = []string{RelyingPartyPrefix + "*.*"}

// SecurityEventSubject is the subject of one event of a relying party
// ("pushauth.events.<id>.<type>"); both must be single subject tokens.
func SecurityEventSubject(relyingPartyID, eventType string) (string, error) {
	if err := ValidateID(eventType); err != nil {
		return "", fmt.Errorf("event type: %w", err)
	}
	s, err := subject(RelyingPartyPrefix, relyingPartyID)
	if err != nil {
		return "", err
	}
	return s + "." + eventType, nil
}

// SecurityEventFilter is the subject filter of every event of one relying
// party ("pushauth.events.<id>.*"), so a watcher reads only its own.
func SecurityEventFilter(relyingPartyID string) (string, error) {
	s, err := subject(RelyingPartyPrefix, relyingPartyID)
	if err != nil {
		return "", err
	}
	return s + ".*", nil
}
