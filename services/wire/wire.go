// Package wire converts stored records to the messages more than one service
// sends, so every service shows a relying party or a device the same way.
package wire

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// NumberMatching converts a stored number-matching mode.
func NumberMatching(m store.NumberMatching) pushauthv1.NumberMatchingMode {
	switch m {
	case store.NumberMatchingNone:
		return pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE
	case store.NumberMatchingNumber:
		return pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER
	case store.NumberMatchingCode:
		return pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE
	}
	return pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_UNSPECIFIED
}

// RelyingParty converts a stored relying party for the wire.
func RelyingParty(rp store.RelyingParty) *pushauthv1.RelyingParty {
	return &pushauthv1.RelyingParty{
		Id:          rp.ID,
		Name:        rp.Name,
		DisplayName: rp.DisplayName,
		Policy: &pushauthv1.RelyingPartyPolicy{
			NumberMatching:          NumberMatching(rp.Policy.NumberMatching),
			ApprovalTtl:             durationpb.New(rp.Policy.ApprovalTTL),
			AllowLocationAutomation: rp.Policy.AllowLocationAutomation,
			AllowBackupRestore:      rp.Policy.AllowBackupRestore,
			ApprovalsPerMinute:      int32(rp.Policy.ApprovalsPerMinute),
			ApprovalsPerHour:        int32(rp.Policy.ApprovalsPerHour),
		},
		CreateTime: timestamppb.New(rp.CreatedAt),
		UpdateTime: timestamppb.New(rp.UpdatedAt),
	}
}

// OptionalTime leaves a zero time unset on the wire.
func OptionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Device converts a stored device. The phone number is masked: a device's
// own number is shown only as much as needed to recognise it.
func Device(d store.Device) *pushauthv1.Device {
	p := pushauthv1.Platform_PLATFORM_UNSPECIFIED
	switch d.Platform {
	case "ANDROID":
		p = pushauthv1.Platform_PLATFORM_ANDROID
	case "IOS":
		p = pushauthv1.Platform_PLATFORM_IOS
	}
	return &pushauthv1.Device{
		Id:                d.ID,
		Platform:          p,
		Name:              d.Name,
		AppVersion:        d.AppVersion,
		Locale:            d.Locale,
		MaskedPhoneNumber: pii.MaskPhone(d.PhoneNumber),
		CreateTime:        timestamppb.New(d.CreatedAt),
		LastSeenTime:      OptionalTime(d.LastSeenAt),
		PushTokenDead:     d.PushTokenDead,
	}
}
