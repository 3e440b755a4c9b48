package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultMessageBirdBaseURL is MessageBird's REST API.
const DefaultMessageBirdBaseURL = "https://rest.messagebird.com"

// MessageBirdConfig configures the MessageBird (Bird) REST messages sender.
type MessageBirdConfig struct {
	AccessKey string
	// Originator is a number with country code, or an alphanumeric sender id
	// of at most 11 characters (the GSM limit, enforced here so a typo fails
	// at startup rather than on the first SMS).
	Originator string
	BaseURL    string       // default DefaultMessageBirdBaseURL
	HTTPClient *http.Client // default: a client with a 15s timeout
}

// MessageBird sends through POST /messages.
type MessageBird struct {
	doer     httpDoer
	endpoint string
	cfg      MessageBirdConfig
}

var _ Sender = (*MessageBird)(nil)

// NewMessageBird checks cfg and returns a sender. Errors wrap
// ErrInvalidConfig and name the fields, never their values.
func NewMessageBird(cfg MessageBirdConfig) (*MessageBird, error) {
	var problems []string
	if strings.TrimSpace(cfg.AccessKey) == "" {
		problems = append(problems, "AccessKey is required")
	}
	if p := checkOriginator(cfg.Originator); p != "" {
		problems = append(problems, p)
	}
	base, ok := normalizeBaseURL(cfg.BaseURL, DefaultMessageBirdBaseURL)
	if !ok {
		problems = append(problems, "BaseURL must be an absolute http(s) URL without query")
	}
	if len(problems) > 0 {
		return nil, configError("messagebird", problems)
	}
	return &MessageBird{
		doer: httpDoer{
			provider: "messagebird",
			client:   clientOrDefault(cfg.HTTPClient),
			secrets:  []string{cfg.AccessKey},
			now:      time.Now,
		},
		endpoint: base + "/messages",
		cfg:      cfg,
	}, nil
}

func checkOriginator(o string) string {
	if strings.TrimSpace(o) == "" {
		return "Originator is required"
	}
	digits := strings.TrimPrefix(o, "+")
	numeric := digits != ""
	for _, c := range digits {
		if c < '0' || c > '9' {
			numeric = false
			break
		}
	}
	switch {
	case numeric && len(digits) > 17:
		return "Originator number is longer than 17 digits"
	case !numeric && len(o) > 11:
		return "Originator sender id is longer than 11 characters"
	}
	return ""
}

// Name implements Sender.
func (b *MessageBird) Name() string { return "messagebird" }

// Send implements Sender and returns MessageBird's message id.
func (b *MessageBird) Send(ctx context.Context, m Message) (string, error) {
	if err := checkMessage(b.Name(), m); err != nil {
		return "", err
	}
	payload, err := json.Marshal(struct {
		Recipients []string `json:"recipients"`
		Originator string   `json:"originator"`
		Body       string   `json:"body"`
	}{
		// MessageBird wants the number in international format without "+".
		Recipients: []string{strings.TrimPrefix(m.To, "+")},
		Originator: b.cfg.Originator,
		Body:       m.Body,
	})
	if err != nil {
		return "", &Error{Provider: b.Name(), Code: "internal", Message: "encoding the request failed"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, bytes.NewReader(payload))
	if err != nil {
		return "", &Error{Provider: b.Name(), Code: "internal", Message: "building the request failed"}
	}
	req.Header.Set("Authorization", "AccessKey "+b.cfg.AccessKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	r, err := b.doer.do(ctx, req, m)
	if err != nil {
		return "", err
	}
	if r.status/100 == 2 {
		var ok struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(r.body, &ok) != nil || ok.ID == "" {
			return "", b.doer.noID(r)
		}
		return ok.ID, nil
	}
	// {"errors":[{"code":9,"description":"no (correct) recipients found","parameter":"recipients"}]}
	var e struct {
		Errors []struct {
			Code        json.RawMessage `json:"code"`
			Description string          `json:"description"`
			Parameter   string          `json:"parameter"`
		} `json:"errors"`
	}
	var code string
	var texts []string
	if json.Unmarshal(r.body, &e) == nil {
		for i, x := range e.Errors {
			if i == 0 {
				code = jsonCode(x.Code)
			}
			t := x.Description
			if x.Parameter != "" {
				t += " (parameter " + strconv.Quote(x.Parameter) + ")"
			}
			texts = append(texts, t)
		}
	}
	return "", b.doer.statusError(r, code, strings.Join(texts, "; "), m)
}
