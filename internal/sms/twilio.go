package sms

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTwilioBaseURL is Twilio's REST API.
const DefaultTwilioBaseURL = "https://api.twilio.com"

// TwilioConfig configures the Twilio Messages API sender.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	// From is a Twilio number or alphanumeric sender id; MessagingServiceSID
	// lets a Messaging Service pick the sender. At least one is required; if
	// both are set both are sent and From must belong to the service.
	From                string
	MessagingServiceSID string
	BaseURL             string       // default DefaultTwilioBaseURL; tests and proxies override it
	HTTPClient          *http.Client // default: a client with a 15s timeout
}

// Twilio sends through POST /2010-04-01/Accounts/{sid}/Messages.json.
type Twilio struct {
	doer     httpDoer
	endpoint string
	cfg      TwilioConfig
}

var _ Sender = (*Twilio)(nil)

// NewTwilio checks cfg and returns a sender. Errors wrap ErrInvalidConfig and
// name the fields, never their values.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	var problems []string
	if strings.TrimSpace(cfg.AccountSID) == "" {
		problems = append(problems, "AccountSID is required")
	}
	if cfg.AuthToken == "" {
		problems = append(problems, "AuthToken is required")
	}
	if strings.TrimSpace(cfg.From) == "" && strings.TrimSpace(cfg.MessagingServiceSID) == "" {
		problems = append(problems, "From or MessagingServiceSID is required")
	}
	base, ok := normalizeBaseURL(cfg.BaseURL, DefaultTwilioBaseURL)
	if !ok {
		problems = append(problems, "BaseURL must be an absolute http(s) URL without query")
	}
	if len(problems) > 0 {
		return nil, configError("twilio", problems)
	}
	return &Twilio{
		doer: httpDoer{
			provider: "twilio",
			client:   clientOrDefault(cfg.HTTPClient),
			secrets:  []string{cfg.AuthToken},
			now:      time.Now,
		},
		endpoint: base + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		cfg:      cfg,
	}, nil
}

// Name implements Sender.
func (t *Twilio) Name() string { return "twilio" }

// Send implements Sender and returns the message SID ("SM...").
func (t *Twilio) Send(ctx context.Context, m Message) (string, error) {
	if err := checkMessage(t.Name(), m); err != nil {
		return "", err
	}
	form := url.Values{}
	form.Set("To", m.To)
	if t.cfg.From != "" {
		form.Set("From", t.cfg.From)
	}
	if t.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", t.cfg.MessagingServiceSID)
	}
	form.Set("Body", m.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &Error{Provider: t.Name(), Code: "internal", Message: "building the request failed"}
	}
	req.SetBasicAuth(t.cfg.AccountSID, t.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	r, err := t.doer.do(ctx, req, m)
	if err != nil {
		return "", err
	}
	if r.status/100 == 2 {
		var ok struct {
			SID string `json:"sid"`
		}
		if json.Unmarshal(r.body, &ok) != nil || ok.SID == "" {
			return "", t.doer.noID(r)
		}
		return ok.SID, nil
	}
	// {"code": 21211, "message": "The 'To' number ... is not a valid phone number.", "more_info": ..., "status": 400}
	var e struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(r.body, &e) != nil {
		e.Code, e.Message = nil, ""
	}
	return "", t.doer.statusError(r, jsonCode(e.Code), e.Message, m)
}
