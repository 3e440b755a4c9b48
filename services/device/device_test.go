package device_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

const number = "+31612345678"

func wantCode(t *testing.T, err error, code codes.Code, contains string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), code, contains)
	}
	return st
}

func fieldsOf(st *status.Status) []string {
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

func TestRegistrationOverGRPC(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)

		st, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "06 12345678", DefaultRegion: "NL", Locale: "nl"})
		if err != nil {
			t.Fatal(err)
		}
		if st.GetMaskedPhoneNumber() != "+31*******78" {
			t.Fatalf("masked %q", st.GetMaskedPhoneNumber())
		}
		code, link := ts.LastSMS(t, number)
		phone := servertest.NewPhone(t, false)
		req := &pushauthv1.CompletePhoneVerificationRequest{
			VerificationId: st.GetVerificationId(),
			Proof:          &pushauthv1.CompletePhoneVerificationRequest_Code{Code: code},
			Device:         phone.Registration(t, st.GetVerificationId()),
		}
		resp, err := ts.Device.CompletePhoneVerification(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		cred := resp.GetDeviceCredential()
		if !strings.HasPrefix(cred, "pdc_") || resp.GetDevice().GetMaskedPhoneNumber() != "+31*******78" {
			t.Fatalf("response %v", resp)
		}
		if strings.Contains(ts.Logs.String(), code) || strings.Contains(ts.Logs.String(), link) || strings.Contains(ts.Logs.String(), cred) || strings.Contains(ts.Logs.String(), "612345678") {
			t.Error("a code, link, credential or full number was logged")
		}

		// Replay of the used code.
		_, err = ts.Device.CompletePhoneVerification(ctx, req)
		wantCode(t, err, codes.FailedPrecondition, "already used")

		// The device acts with its credential.
		dctx := ts.WithToken(ctx, cred)
		got, err := ts.Device.GetDevice(dctx, &pushauthv1.GetDeviceRequest{})
		if err != nil || got.GetDevice().GetId() != resp.GetDevice().GetId() {
			t.Fatalf("GetDevice: %v %v", got, err)
		}
		upd, err := ts.Device.UpdateDevice(dctx, &pushauthv1.UpdateDeviceRequest{Name: "Werktelefoon", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
		if err != nil || upd.GetDevice().GetName() != "Werktelefoon" || upd.GetDevice().GetAppVersion() != "1.0.0" {
			t.Fatalf("UpdateDevice: %v %v", upd, err)
		}
		_, err = ts.Device.UpdateDevice(dctx, &pushauthv1.UpdateDeviceRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"phone_number"}}})
		wantCode(t, err, codes.InvalidArgument, "update_mask")

		// A second phone with the same number registers by link; the first stays.
		ts.Clock.Advance(time.Minute)
		st2, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
		if err != nil {
			t.Fatal(err)
		}
		_, link2 := ts.LastSMS(t, number)
		phone2 := servertest.NewPhone(t, true)
		resp2, err := ts.Device.CompletePhoneVerification(ctx, &pushauthv1.CompletePhoneVerificationRequest{
			VerificationId: st2.GetVerificationId(),
			Proof:          &pushauthv1.CompletePhoneVerificationRequest_LinkToken{LinkToken: link2},
			Device:         phone2.Registration(t, st2.GetVerificationId()),
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp2.GetDevice().GetPlatform() != pushauthv1.Platform_PLATFORM_IOS {
			t.Fatalf("platform %v", resp2.GetDevice().GetPlatform())
		}
		if _, err := ts.Device.GetDevice(dctx, &pushauthv1.GetDeviceRequest{}); err != nil {
			t.Fatalf("first phone lost its registration: %v", err)
		}

		// Deregistration revokes at once.
		if _, err := ts.Device.DeregisterDevice(dctx, &pushauthv1.DeregisterDeviceRequest{}); err != nil {
			t.Fatal(err)
		}
		_, err = ts.Device.GetDevice(dctx, &pushauthv1.GetDeviceRequest{})
		wantCode(t, err, codes.PermissionDenied, "")

		// Every step is audited, without codes or full numbers.
		ev, err := ts.Admin.ListAuditEvents(ts.AdminCtx(ctx), &pushauthv1.ListAuditEventsRequest{PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range ev.GetEvents() {
			seen[e.GetAction()] = true
			for _, v := range e.GetDetails() {
				if strings.Contains(v, "612345678") || strings.Contains(v, code) {
					t.Errorf("audit %s holds a secret: %q", e.GetAction(), v)
				}
			}
		}
		for _, a := range []string{"phone_verification.started", "sms.sent", "phone_verification.completed", "device.revoked"} {
			if !seen[a] {
				t.Errorf("no %s audit event", a)
			}
		}
	})
}

func TestRegistrationBadInput(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	ctx := servertest.Context(t)
	st, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := ts.LastSMS(t, number)
	phone := servertest.NewPhone(t, false)
	good := func() *pushauthv1.CompletePhoneVerificationRequest {
		return &pushauthv1.CompletePhoneVerificationRequest{
			VerificationId: st.GetVerificationId(),
			Proof:          &pushauthv1.CompletePhoneVerificationRequest_Code{Code: code},
			Device:         phone.Registration(t, st.GetVerificationId()),
		}
	}
	starts := []struct {
		name  string
		req   *pushauthv1.StartPhoneVerificationRequest
		code  codes.Code
		field string
	}{
		{"unparseable", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "banana", DefaultRegion: "NL"}, codes.InvalidArgument, "phone_number"},
		{"landline", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "020 123 4567", DefaultRegion: "NL"}, codes.InvalidArgument, "phone_number"},
		{"disallowed country", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "+33 6 12 34 56 78"}, codes.InvalidArgument, "phone_number"},
		{"no country", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "06 12345678"}, codes.InvalidArgument, "phone_number"},
		{"bad region", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "06 12345678", DefaultRegion: "NLD"}, codes.InvalidArgument, "default_region"},
		{"too long", &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: strings.Repeat("6", 40)}, codes.InvalidArgument, "phone_number"},
	}
	for _, tt := range starts {
		t.Run("start/"+tt.name, func(t *testing.T) {
			_, err := ts.Device.StartPhoneVerification(ctx, tt.req)
			s := wantCode(t, err, tt.code, tt.field)
			if f := fieldsOf(s); len(f) == 0 || f[0] != tt.field {
				t.Errorf("BadRequest fields %v, want %s", f, tt.field)
			}
		})
	}
	completes := []struct {
		name   string
		change func(*pushauthv1.CompletePhoneVerificationRequest)
		code   codes.Code
		want   string
	}{
		{"no proof", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.Proof = nil }, codes.InvalidArgument, "proof"},
		{"code not digits", func(r *pushauthv1.CompletePhoneVerificationRequest) {
			r.Proof = &pushauthv1.CompletePhoneVerificationRequest_Code{Code: "12a456"}
		}, codes.InvalidArgument, "code"},
		{"no device", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.Device = nil }, codes.InvalidArgument, "device"},
		{"no platform", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.Device.Platform = 0 }, codes.InvalidArgument, "device.platform"},
		{"oversized push token", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.Device.PushToken = strings.Repeat("t", 2000) }, codes.InvalidArgument, "device.push_token"},
		{"missing signature", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.Device.ProofSignature = nil }, codes.InvalidArgument, "device.proof_signature"},
		{"bad signature", func(r *pushauthv1.CompletePhoneVerificationRequest) {
			r.Device.ProofSignature = phone.Sign(t, []byte("something else"))
		}, codes.PermissionDenied, "proof_signature"},
		{"key not P-256", func(r *pushauthv1.CompletePhoneVerificationRequest) {
			r.Device.PublicKey = append([]byte{4}, make([]byte, 96)...)
		}, codes.InvalidArgument, "device.public_key"},
		{"wrong code", func(r *pushauthv1.CompletePhoneVerificationRequest) {
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			r.Proof = &pushauthv1.CompletePhoneVerificationRequest_Code{Code: wrong}
		}, codes.PermissionDenied, "wrong code; 4 tries left"},
		{"unknown verification", func(r *pushauthv1.CompletePhoneVerificationRequest) { r.VerificationId = "ver_nope" }, codes.NotFound, "verification"},
	}
	for _, tt := range completes {
		t.Run("complete/"+tt.name, func(t *testing.T) {
			r := good()
			tt.change(r)
			_, err := ts.Device.CompletePhoneVerification(ctx, r)
			wantCode(t, err, tt.code, tt.want)
		})
	}
	// None of that registered anything; the good request still works.
	if _, err := ts.Device.CompletePhoneVerification(ctx, good()); err != nil {
		t.Fatalf("good request after bad ones: %v", err)
	}
}

func TestLimitCarriesRetryInfoAndMetric(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	ctx := servertest.Context(t)
	if _, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number}); err != nil {
		t.Fatal(err)
	}
	_, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
	st := wantCode(t, err, codes.ResourceExhausted, "30s")
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != 30*time.Second {
		t.Fatalf("RetryInfo %v", retry)
	}
	if _, body := ts.Ops(t, "/metrics"); !strings.Contains(body, `pushauth_sms_refused_total{reason="resend_cooldown"} 1`) {
		t.Fatalf("refusal not counted:\n%s", body)
	}
}

func TestOutboxOnlyInDevelopment(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t), func(o *server.Options) { o.Outbox = false })
	_, err := ts.Admin.ListOutboxMessages(ts.AdminCtx(servertest.Context(t)), &pushauthv1.ListOutboxMessagesRequest{})
	wantCode(t, err, codes.FailedPrecondition, "real SMS provider")
}

// FuzzCompletePhoneVerification feeds arbitrary requests through the real
// server: none may crash it, get a status outside the documented ones, or
// register a device.
func FuzzCompletePhoneVerification(f *testing.F) {
	seed := &pushauthv1.CompletePhoneVerificationRequest{
		VerificationId: "ver_x",
		Proof:          &pushauthv1.CompletePhoneVerificationRequest_Code{Code: "123456"},
		Device: &pushauthv1.DeviceRegistration{PublicKey: make([]byte, 91), ProofSignature: make([]byte, 70),
			Platform: pushauthv1.Platform_PLATFORM_ANDROID, PushToken: "t", Name: "n"},
	}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Add([]byte{})
	ts := servertest.New(f, servertest.Backends[0].NewURL(f))
	allowed := map[codes.Code]bool{codes.InvalidArgument: true, codes.NotFound: true, codes.PermissionDenied: true,
		codes.FailedPrecondition: true, codes.ResourceExhausted: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &pushauthv1.CompletePhoneVerificationRequest{}
		if proto.Unmarshal(raw, req) != nil {
			return
		}
		_, err := ts.Device.CompletePhoneVerification(servertest.Context(t), req)
		if err == nil {
			t.Fatalf("registered a device from fuzz input %v", req)
		}
		if c := status.Code(err); !allowed[c] {
			t.Fatalf("status %v (%v) for %v", c, err, req)
		}
	})
}
