package wire

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

var (
	kinds = map[string]pushauthv1.RequestKind{
		store.KindLogin: pushauthv1.RequestKind_REQUEST_KIND_LOGIN, store.KindPairing: pushauthv1.RequestKind_REQUEST_KIND_PAIRING,
	}
	statuses = map[string]pushauthv1.RequestStatus{
		store.StatusPending: pushauthv1.RequestStatus_REQUEST_STATUS_PENDING, store.StatusApproved: pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED,
		store.StatusDenied: pushauthv1.RequestStatus_REQUEST_STATUS_DENIED, store.StatusExpired: pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED,
		store.StatusCancelled: pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED,
	}
	reasons = map[string]pushauthv1.DecisionReason{
		store.ReasonUser: pushauthv1.DecisionReason_DECISION_REASON_USER, store.ReasonLocationRule: pushauthv1.DecisionReason_DECISION_REASON_LOCATION_RULE,
		store.ReasonNumberMismatch: pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH, store.ReasonFraudReport: pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT,
		store.ReasonSuperseded: pushauthv1.DecisionReason_DECISION_REASON_SUPERSEDED, store.ReasonTimeout: pushauthv1.DecisionReason_DECISION_REASON_TIMEOUT,
		store.ReasonCancelled:     pushauthv1.DecisionReason_DECISION_REASON_CANCELLED,
		store.ReasonDeviceRemoved: pushauthv1.DecisionReason_DECISION_REASON_DEVICE_REMOVED,
	}
)

// Context converts a stored request context.
func Context(c store.RequestContext) *pushauthv1.RequestContext {
	return &pushauthv1.RequestContext{AppName: c.AppName, IpAddress: c.IPAddress, Location: c.Location, Browser: c.Browser, Action: c.Action}
}

// ContextFromProto converts a request context from the wire.
func ContextFromProto(c *pushauthv1.RequestContext) store.RequestContext {
	return store.RequestContext{AppName: c.GetAppName(), IPAddress: c.GetIpAddress(), Location: c.GetLocation(), Browser: c.GetBrowser(), Action: c.GetAction()}
}

// Request converts a request for its relying party.
func Request(r store.Request) *pushauthv1.Request {
	out := &pushauthv1.Request{
		Id:               r.ID,
		Kind:             kinds[r.Kind],
		UserRef:          r.UserRef,
		Status:           statuses[r.Status],
		Reason:           reasons[r.Reason],
		Context:          Context(r.Context),
		NumberMatching:   NumberMatching(r.NumberMatching),
		CreateTime:       timestamppb.New(r.CreatedAt),
		ExpireTime:       timestamppb.New(r.ExpiresAt),
		DecideTime:       OptionalTime(r.DecidedAt),
		DecidingDeviceId: r.DecidedBy,
		AutoApproved:     r.AutoApproved,
		LocationRuleId:   r.LocationRuleID,
		AccountLabel:     r.AccountLabel,
	}
	if r.DecidedBy != "" && r.Signature != nil {
		out.SignedDecision = &pushauthv1.SignedDecision{Payload: r.Payload, Signature: r.Signature, DeviceId: r.DecidedBy}
	}
	return out
}

// DeviceRequest converts a request for the phone, which sees its relying
// party's display name.
func DeviceRequest(r store.Request, rp store.RelyingParty) *pushauthv1.DeviceRequest {
	return &pushauthv1.DeviceRequest{
		Id:                        r.ID,
		Kind:                      kinds[r.Kind],
		Status:                    statuses[r.Status],
		RelyingPartyName:          rp.DisplayName,
		RelyingPartyId:            rp.ID,
		AccountLabel:              r.AccountLabel,
		UserRef:                   r.UserRef,
		Context:                   Context(r.Context),
		NumberMatching:            NumberMatching(r.NumberMatching),
		CreateTime:                timestamppb.New(r.CreatedAt),
		ExpireTime:                timestamppb.New(r.ExpiresAt),
		ContextSha256:             approval.ContextHash(r.Context, r.AccountLabel),
		LocationAutomationAllowed: approval.LocationAutomationAllowed(rp, r),
	}
}

var failureReasons = map[push.Reason]pushauthv1.DeliveryFailureReason{
	push.ReasonTokenInvalid:        pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_TOKEN_INVALID,
	push.ReasonProviderUnavailable: pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_PROVIDER_UNAVAILABLE,
	push.ReasonRateLimited:         pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_RATE_LIMITED,
	push.ReasonRejected:            pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_REJECTED,
	push.ReasonNotConfigured:       pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_NOT_CONFIGURED,
	push.ReasonQueueFailed:         pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_QUEUE_FAILED,
	push.ReasonMuted:               pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_MUTED,
}

// DeliveryFailure is what a relying party sees of a target whose push did
// not go out: a reason and its fixed sentence. The stored detail is read
// only for its reason code, so nothing a push provider wrote (nor a detail
// stored by an older version) reaches the relying party.
func DeliveryFailure(t store.RequestTarget) (pushauthv1.DeliveryFailureReason, string) {
	r := push.ParseDetail(t.Detail)
	switch {
	case t.Delivery == store.DeliveryMuted:
		r = push.ReasonMuted
	case t.Delivery == store.DeliveryDead && r == push.ReasonUnspecified:
		r = push.ReasonTokenInvalid
	}
	return failureReasons[r], r.Message()
}
