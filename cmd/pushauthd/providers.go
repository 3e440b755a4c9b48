package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
)

// newSMSSender builds the configured SMS provider; real providers retry
// transient failures a few times. Config.Validate has checked the settings.
func newSMSSender(cfg Config, st store.Outbox, log *slog.Logger) (sms.Sender, error) {
	var s sms.Sender
	var err error
	switch cfg.SMSProvider {
	case "twilio":
		s, err = sms.NewTwilio(sms.TwilioConfig{
			AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom, BaseURL: cfg.TwilioBaseURL,
		})
	case "messagebird":
		s, err = sms.NewMessageBird(sms.MessageBirdConfig{
			AccessKey: cfg.MessageBirdAccessKey, Originator: cfg.MessageBirdOrigin, BaseURL: cfg.MessageBirdBaseURL,
		})
	default:
		log.Warn("SMS go to the development outbox, not to phones: set sms_provider for production")
		return sms.NewOutbox(st, time.Now, log), nil
	}
	if err != nil {
		return nil, fmt.Errorf("sms_provider %s: %w", cfg.SMSProvider, err)
	}
	return sms.NewRetrying(s, 3, 500*time.Millisecond, nil), nil
}

// loadKeys reads or generates the master secret(s) and derives the keyring.
func loadKeys(cfg Config, log *slog.Logger) (*keyring.Keyring, error) {
	setting := cfg.SecretKey
	if setting == "" {
		s, err := dataSecret("", cfg.DataDir, "secret-key", log)
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		setting = s
	}
	keys, err := keyring.Parse(setting)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if cfg.SecretKey != "" && cfg.DataDir != "" {
		// A replica that once ran without secret_key made its own key; what
		// it sealed then needs that key listed in secret_key.
		if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "secret-key")); err == nil {
			if m, err := keyring.ParseMaster(strings.TrimSpace(string(b))); err == nil && !keys.Has(m) {
				log.Warn("data_dir/secret-key holds a key that secret_key lacks: data sealed with it will not open; add it to secret_key as an older key (see docs/security/secrets.md)")
			}
		}
	}
	log.Info("server keys", "sealing_key_id", keys.IDs()[0], "key_ids", keys.IDs())
	return keys, nil
}

// allowedRegions turns the configured list into the registration form,
// where empty means all.
func allowedRegions(list []string) []string {
	if slices.Contains(list, "*") {
		return nil
	}
	return list
}

// newPushSender builds the configured push providers; with none it logs.
func newPushSender(ctx context.Context, cfg Config, log *slog.Logger) (push.Sender, error) {
	var rc push.RouterConfig
	rc.Logger = log
	if cfg.FCMCredentialsFile != "" {
		fcm, err := push.NewFCM(ctx, push.FCMConfig{CredentialsFile: cfg.FCMCredentialsFile, ProjectID: cfg.FCMProjectID, Endpoint: cfg.FCMEndpoint})
		if err != nil {
			return nil, fmt.Errorf("fcm: %w", err)
		}
		rc.FCM = fcm
	}
	if cfg.APNsKeyFile != "" {
		apns, err := push.NewAPNs(push.APNsConfig{KeyFile: cfg.APNsKeyFile, KeyID: cfg.APNsKeyID, TeamID: cfg.APNsTeamID,
			Topic: cfg.APNsTopic, Production: cfg.APNsEnvironment == "production"})
		if err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
		rc.APNs = apns
	}
	if rc.FCM == nil && rc.APNs == nil {
		log.Warn("no push provider configured: pushes are only logged; apps see requests when opened")
	}
	return push.NewRouter(rc), nil
}

// approvalConfig is the engine's configuration: defaults with the
// configurable limits applied.
func approvalConfig(cfg Config) approval.Config {
	c := approval.DefaultConfig()
	c.MaxPendingPerUser = cfg.MaxPendingLogin
	c.FraudMute = cfg.FraudMute
	c.ApprovalsPerMinute, c.ApprovalsPerHour = cfg.ApprovalsPerMinute, cfg.ApprovalsPerHour
	return c
}
