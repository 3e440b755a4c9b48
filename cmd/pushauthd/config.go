package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"go.yaml.in/yaml/v3"

	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/retention"
	"github.com/pushauth/pushauth/internal/server"
)

// Config is everything pushauthd can be told. Each field is settable, in
// rising order of precedence, from the YAML file (its yaml key), the
// environment (PUSHAUTH_ + the key in upper case) and a flag (the key with
// dashes). The zero configuration runs a self-contained development server.
type Config struct {
	DataDir         string        `yaml:"data_dir" help:"directory for the SQLite database, the embedded NATS store and the generated admin token"`
	DatabaseURL     string        `yaml:"database_url" help:"postgres://… to use PostgreSQL; empty uses SQLite in data_dir"`
	NATSURL         string        `yaml:"nats_url" help:"nats://… (comma-separated) to use external NATS; empty embeds a server with no port"`
	NATSReplicas    int           `yaml:"nats_replicas" help:"NATS nodes that keep each JetStream stream (1-5, at most the cluster's size); 0 means 3 on a cluster of three or more nodes, else 1; a replica only ever raises an existing stream's count"`
	NATSStartWait   time.Duration `yaml:"nats_start_wait" help:"how long start-up waits for NATS and JetStream to answer, retrying, before giving up"`
	GRPCAddr        string        `yaml:"grpc_addr" help:"gRPC listen address"`
	OpsAddr         string        `yaml:"ops_addr" help:"HTTP listen address for /metrics, /healthz, /readyz; empty disables"`
	HTTPAddr        string        `yaml:"http_addr" help:"listen address of the JSON-over-HTTP API and /openapi.json (TLS as for gRPC); empty disables"`
	TLSCertFile     string        `yaml:"tls_cert_file" help:"PEM certificate for gRPC TLS"`
	TLSKeyFile      string        `yaml:"tls_key_file" help:"PEM private key for gRPC TLS"`
	TLSClientCAFile string        `yaml:"tls_client_ca_file" help:"PEM CA bundle; when set, clients must present a certificate it signed"`
	AdminToken      string        `yaml:"admin_token" help:"operators' bearer token; empty generates one into data_dir/admin-token"`
	AdminCertNames  []string      `yaml:"admin_cert_names" help:"client-certificate names (CN or DNS SAN) that act as operators, comma-separated"`
	SecretKey       string        `yaml:"secret_key" help:"master key(s) for keyed hashes and sealing: base64 of 32 random bytes, or id:base64,… to rotate (first seals, all open); empty generates one into data_dir/secret-key (single node only)"`
	LinkBaseURL     string        `yaml:"link_base_url" help:"base of the link in the verification SMS; the app opens <base>/v/<token>"`
	AppName         string        `yaml:"app_name" help:"name of the app in SMS texts"`
	AllowedRegions  []string      `yaml:"allowed_regions" help:"ISO 3166 regions whose mobile numbers may register, comma-separated; * allows all"`
	VerificationTTL time.Duration `yaml:"verification_ttl" help:"how long an SMS code and link stay valid"`

	SMSProvider          string `yaml:"sms_provider" help:"outbox (development: keep messages in the database), twilio or messagebird"`
	TwilioAccountSID     string `yaml:"twilio_account_sid" help:"Twilio account SID"`
	TwilioAuthToken      string `yaml:"twilio_auth_token" help:"Twilio auth token"`
	TwilioFrom           string `yaml:"twilio_from" help:"Twilio sender number or alphanumeric id"`
	TwilioBaseURL        string `yaml:"twilio_base_url" help:"Twilio API base URL (tests and proxies)"`
	MessageBirdAccessKey string `yaml:"messagebird_access_key" help:"MessageBird access key"`
	MessageBirdOrigin    string `yaml:"messagebird_originator" help:"MessageBird originator"`
	MessageBirdBaseURL   string `yaml:"messagebird_base_url" help:"MessageBird API base URL (tests and proxies)"`

	FCMCredentialsFile string `yaml:"fcm_credentials_file" help:"Firebase service-account JSON; enables pushes through FCM"`
	FCMProjectID       string `yaml:"fcm_project_id" help:"Firebase project id (default: the one in the credentials)"`
	FCMEndpoint        string `yaml:"fcm_endpoint" help:"FCM API base URL (tests and proxies)"`
	APNsKeyFile        string `yaml:"apns_key_file" help:".p8 token-auth key; enables direct APNs pushes to iOS"`
	APNsKeyID          string `yaml:"apns_key_id" help:"APNs key id"`
	APNsTeamID         string `yaml:"apns_team_id" help:"Apple developer team id"`
	APNsTopic          string `yaml:"apns_topic" help:"the iOS app's bundle id"`
	APNsEnvironment    string `yaml:"apns_environment" help:"production or sandbox"`

	SMSResendCooldown    time.Duration `yaml:"sms_resend_cooldown" help:"least time between two SMS to one number"`
	SMSPerNumberHour     int           `yaml:"sms_per_number_hour" help:"SMS to one number per hour"`
	SMSPerNumberDay      int           `yaml:"sms_per_number_day" help:"SMS to one number per day"`
	SMSPerAddressHour    int           `yaml:"sms_per_address_hour" help:"SMS asked for from one client address (IPv6: /64) per hour"`
	SMSPerPrefixHour     int           `yaml:"sms_per_prefix_hour" help:"SMS to numbers sharing all but their last four digits per hour"`
	SMSDailyBudget       int           `yaml:"sms_daily_budget" help:"SMS of the whole deployment per day"`
	VerificationAttempts int           `yaml:"verification_attempts" help:"wrong codes one SMS takes"`
	VerificationFailures int           `yaml:"verification_failures_per_day" help:"wrong codes one number takes per day, over all its SMS"`

	LogLevel        string        `yaml:"log_level" help:"debug, info, warn or error"`
	LogFormat       string        `yaml:"log_format" help:"json or text"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" help:"how long in-flight RPCs may take to finish at shutdown"`
	HealthInterval  time.Duration `yaml:"health_interval" help:"how often the database and NATS are checked for readiness"`
	SweepInterval   time.Duration `yaml:"sweep_interval" help:"how often expired requests are marked EXPIRED"`
	PairingTTL      time.Duration `yaml:"pairing_ttl" help:"how long a pairing phrase stays valid"`
	MaxPendingLogin int           `yaml:"max_pending_logins" help:"pending logins per user and relying party; a new one supersedes the oldest"`
	FraudMute       time.Duration `yaml:"fraud_mute" help:"how long pushes to a user stay muted after a fraud report"`
	// Push bombing: login requests to one user in any minute and hour.
	ApprovalsPerMinute int `yaml:"approvals_per_minute" help:"login requests to one user in any minute (a relying party's policy may set its own)"`
	ApprovalsPerHour   int `yaml:"approvals_per_hour" help:"login requests to one user in any hour (a relying party's policy may set its own)"`

	RetentionInterval      time.Duration `yaml:"retention_interval" help:"how often each replica deletes data past its retention (jittered ±20%)"`
	RetentionRequests      time.Duration `yaml:"retention_requests" help:"how long finished login and pairing requests (with IP, location, browser) are kept after their decision"`
	RetentionVerifications time.Duration `yaml:"retention_verifications" help:"how long SMS verifications (phone number, client address) are kept after they expire"`
	RetentionOutbox        time.Duration `yaml:"retention_outbox" help:"how long development outbox messages (plaintext codes) are kept"`
	RetentionAudit         time.Duration `yaml:"retention_audit" help:"how long audit events are kept; at least retention_requests"`
	RetentionCounters      time.Duration `yaml:"retention_counters" help:"how long rate-limit counters are kept after their window started; at least 24h, the longest window"`

	// Transport limits, each per replica (see docs/security/transport.md).
	MaxConnections        int           `yaml:"max_connections" help:"open gRPC connections; more are closed at once; 0 means no limit"`
	MaxConcurrentStreams  int           `yaml:"max_concurrent_streams" help:"calls open at once on one HTTP/2 connection"`
	MaxRecvMsgBytes       int           `yaml:"max_recv_msg_bytes" help:"largest request message in bytes"`
	MaxSendMsgBytes       int           `yaml:"max_send_msg_bytes" help:"largest response message in bytes"`
	KeepaliveMinTime      time.Duration `yaml:"keepalive_min_time" help:"least time between client keepalive pings; faster pingers are disconnected"`
	KeepaliveTime         time.Duration `yaml:"keepalive_time" help:"silence on a connection before the server pings it"`
	KeepaliveTimeout      time.Duration `yaml:"keepalive_timeout" help:"how long the server waits for a ping's answer before closing the connection"`
	MaxConnectionIdle     time.Duration `yaml:"max_connection_idle" help:"close connections without calls for this long; 0 means never"`
	MaxConnectionAge      time.Duration `yaml:"max_connection_age" help:"ask clients to reconnect after this long, to spread load; 0 means never"`
	MaxConnectionAgeGrace time.Duration `yaml:"max_connection_age_grace" help:"time open calls get to finish after max_connection_age; at least 10m, so a WaitRequest can finish"`
	WaitStreamsPerAPIKey  int           `yaml:"wait_streams_per_api_key" help:"WaitRequest streams one API key may hold open; 0 means no limit"`
	WatchStreamsPerDevice int           `yaml:"watch_streams_per_device" help:"WatchRequests streams one device may hold open; 0 means no limit"`
	APIKeyRate            int           `yaml:"api_key_rate" help:"calls per second one API key may make on average; 0 means no limit"`
	APIKeyBurst           int           `yaml:"api_key_burst" help:"calls one API key may make at once above api_key_rate"`
	TrustedProxies        []string      `yaml:"trusted_proxies" help:"CIDRs of proxies whose x-forwarded-for gives the client address, comma-separated; empty trusts none"`
}

// DefaultConfig is the configuration when nothing is given.
func DefaultConfig() Config {
	return Config{
		DataDir:            "./data",
		GRPCAddr:           "127.0.0.1:8470",
		OpsAddr:            "127.0.0.1:8471",
		HTTPAddr:           "127.0.0.1:8472",
		LogLevel:           "info",
		LogFormat:          "json",
		ShutdownTimeout:    15 * time.Second,
		NATSStartWait:      2 * time.Minute,
		HealthInterval:     5 * time.Second,
		SweepInterval:      time.Second,
		PairingTTL:         10 * time.Minute,
		MaxPendingLogin:    1,
		ApprovalsPerMinute: 5,
		ApprovalsPerHour:   30,
		FraudMute:          time.Hour,
		LinkBaseURL:        "https://pushauth.example",
		AppName:            "pushauth",
		AllowedRegions:     []string{"NL", "BE", "LU", "DE", "FR", "GB", "IE"},
		VerificationTTL:    10 * time.Minute,
		SMSProvider:        "outbox",
		APNsEnvironment:    "production",

		SMSResendCooldown:    30 * time.Second,
		SMSPerNumberHour:     5,
		SMSPerNumberDay:      10,
		SMSPerAddressHour:    20,
		SMSPerPrefixHour:     50,
		SMSDailyBudget:       10000,
		VerificationAttempts: 5,
		VerificationFailures: 10,

		RetentionInterval:      10 * time.Minute,
		RetentionRequests:      30 * retention.Day,
		RetentionVerifications: retention.Day,
		RetentionOutbox:        retention.Day,
		RetentionAudit:         400 * retention.Day,
		RetentionCounters:      retention.Day,
		MaxConnections:         1000,
		MaxConcurrentStreams:   100,
		MaxRecvMsgBytes:        256 << 10,
		MaxSendMsgBytes:        4 << 20,
		KeepaliveMinTime:       10 * time.Second,
		KeepaliveTime:          2 * time.Minute,
		KeepaliveTimeout:       20 * time.Second,
		MaxConnectionIdle:      15 * time.Minute,
		MaxConnectionAge:       30 * time.Minute,
		MaxConnectionAgeGrace:  11 * time.Minute,
		WaitStreamsPerAPIKey:   100,
		WatchStreamsPerDevice:  4,
		APIKeyRate:             50,
		APIKeyBurst:            100,
	}
}

// option is one Config field as the three sources see it.
type option struct {
	key   string // yaml key
	field reflect.Value
	help  string
}

func (c *Config) options() []option {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	opts := make([]option, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		opts = append(opts, option{key: f.Tag.Get("yaml"), field: v.Field(i), help: f.Tag.Get("help")})
	}
	return opts
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }
func envName(key string) string  { return "PUSHAUTH_" + strings.ToUpper(key) }

// set parses s into an option's field.
func (o option) set(s string) error {
	switch p := o.field.Addr().Interface().(type) {
	case *string:
		*p = s
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration like 15s or 2m: %q", s)
		}
		*p = d
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not a whole number: %q", s)
		}
		*p = n
	case *[]string:
		*p = nil
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*p = append(*p, part)
			}
		}
	default:
		return fmt.Errorf("unsupported option type %T", p)
	}
	return nil
}

// LoadConfig builds the configuration from args, the environment (getenv,
// environ) and the YAML file named by --config or PUSHAUTH_CONFIG. All
// problems of the three are reported together, one error each. --help
// prints the usage to usage and returns errHelp; --version returns
// errVersion.
func LoadConfig(args []string, getenv func(string) string, environ []string, usage io.Writer) (Config, error) {
	cfg := DefaultConfig()
	opts := cfg.options()
	p := parseArgs(args, opts)
	switch {
	case p.help:
		printUsage(usage)
		return cfg, errHelp
	case p.version:
		return cfg, errVersion
	}
	errs := p.errs
	configFile := getenv("PUSHAUTH_CONFIG")
	if p.hasConfig {
		configFile = p.config
	}
	if configFile != "" {
		if err := loadYAML(configFile, &cfg); err != nil {
			errs = append(errs, err)
		}
	}
	known := map[string]option{}
	for _, o := range opts {
		known[envName(o.key)] = o
	}
	var envKeys []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PUSHAUTH_") && k != "PUSHAUTH_CONFIG" && !strings.HasPrefix(k, "PUSHAUTH_TEST_") {
			envKeys = append(envKeys, k)
		}
	}
	sort.Strings(envKeys)
	for _, k := range envKeys {
		o, ok := known[k]
		if !ok {
			errs = append(errs, fmt.Errorf("environment: unknown variable %s", k))
			continue
		}
		if err := o.set(getenv(k)); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", k, err))
		}
	}
	for _, f := range p.settings {
		if err := f.o.set(f.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.flag, err))
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}

func loadYAML(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	// Decode into a map and apply each key like a flag, so durations are
	// written as "15s" and an unknown key is named.
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var errs []error
	byKey := map[string]option{}
	for _, o := range cfg.options() {
		byKey[o.key] = o
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, ok := byKey[k]
		if !ok {
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q", path, k))
			continue
		}
		var s string
		switch v := raw[k].(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		case nil:
			s = ""
		default:
			s = fmt.Sprint(v)
		}
		if err := o.set(s); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s: %w", path, k, err))
		}
	}
	return errors.Join(errs...)
}

// Validate reports every problem of c at once, one error per problem.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" && (c.DatabaseURL == "" || c.NATSURL == "" || c.AdminToken == "") {
		bad("data_dir", "must be set unless database_url, nats_url and admin_token all are")
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		switch {
		case err != nil:
			bad("database_url", "not a URL")
		case u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "sqlite":
			bad("database_url", "scheme must be postgres://, postgresql:// or sqlite:, got %q", u.Scheme)
		}
	}
	if c.NATSReplicas < 0 || c.NATSReplicas > 5 {
		bad("nats_replicas", "must be 1 to 5, or 0 for the cluster's default")
	}
	if c.NATSReplicas > 1 && c.NATSURL == "" {
		bad("nats_replicas", "must be 1 or 0 with the embedded NATS server (one node)")
	}
	if c.NATSStartWait <= 0 {
		bad("nats_start_wait", "must be positive")
	}
	if c.NATSURL != "" {
		for _, s := range strings.Split(c.NATSURL, ",") {
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
				bad("nats_url", "%q is not a nats:// or tls:// URL", redactURL(s))
			}
		}
	}
	checkAddr := func(key, addr string, required bool) {
		if addr == "" {
			if required {
				bad(key, "must be set")
			}
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	checkAddr("grpc_addr", c.GRPCAddr, true)
	checkAddr("ops_addr", c.OpsAddr, false)
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for _, f := range []struct{ key, path string }{{"tls_cert_file", c.TLSCertFile}, {"tls_key_file", c.TLSKeyFile}, {"tls_client_ca_file", c.TLSClientCAFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.key, "cannot read %s", f.path)
			}
		}
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		bad("tls_client_ca_file", "needs tls_cert_file and tls_key_file")
	}
	if len(c.AdminCertNames) > 0 && c.TLSClientCAFile == "" {
		bad("admin_cert_names", "needs tls_client_ca_file, so client certificates are verified")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 24 {
		bad("admin_token", "too short: use at least 24 random characters")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("log_format", "must be json or text, got %q", c.LogFormat)
	}
	if c.SecretKey != "" {
		if _, err := keyring.ParseKeys(c.SecretKey); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				bad("secret_key", "%s (a key is 32 random bytes in base64: openssl rand -base64 32)", line)
			}
		}
	} else if shared := c.sharedDeployment(); shared != "" {
		// Replicas generating their own keys could not open each other's data.
		bad("secret_key", "must be set because %s, so that every replica uses the same key: make one with openssl rand -base64 32 (a server that ran alone before can reuse its data_dir/secret-key)", shared)
	}
	if u, err := url.Parse(c.LinkBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("link_base_url", "must be an http(s) URL, got %q", c.LinkBaseURL)
	}
	if strings.TrimSpace(c.AppName) == "" {
		bad("app_name", "must be set")
	}
	for _, r := range c.AllowedRegions {
		if r != "*" && !phonenumbers.GetSupportedRegions()[r] {
			bad("allowed_regions", "%q is not an ISO 3166 region code known to libphonenumber (use upper case, e.g. NL)", r)
		}
	}
	if c.VerificationTTL < time.Minute || c.VerificationTTL > time.Hour {
		bad("verification_ttl", "must be between 1m and 1h")
	}
	switch c.SMSProvider {
	case "outbox":
	case "twilio":
		if c.TwilioAccountSID == "" || c.TwilioAuthToken == "" || c.TwilioFrom == "" {
			bad("sms_provider", "twilio needs twilio_account_sid, twilio_auth_token and twilio_from")
		}
	case "messagebird":
		if c.MessageBirdAccessKey == "" || c.MessageBirdOrigin == "" {
			bad("sms_provider", "messagebird needs messagebird_access_key and messagebird_originator")
		}
	default:
		bad("sms_provider", "must be outbox, twilio or messagebird, got %q", c.SMSProvider)
	}
	if c.APNsKeyFile != "" && (c.APNsKeyID == "" || c.APNsTeamID == "" || c.APNsTopic == "") {
		bad("apns_key_file", "needs apns_key_id, apns_team_id and apns_topic")
	}
	if c.APNsEnvironment != "production" && c.APNsEnvironment != "sandbox" {
		bad("apns_environment", "must be production or sandbox, got %q", c.APNsEnvironment)
	}
	for _, f := range []struct{ key, path string }{{"fcm_credentials_file", c.FCMCredentialsFile}, {"apns_key_file", c.APNsKeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.key, "cannot read %s", f.path)
			}
		}
	}
	if c.SMSResendCooldown < 0 {
		bad("sms_resend_cooldown", "must not be negative")
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"sms_per_number_hour", c.SMSPerNumberHour}, {"sms_per_number_day", c.SMSPerNumberDay}, {"sms_per_address_hour", c.SMSPerAddressHour},
		{"sms_per_prefix_hour", c.SMSPerPrefixHour}, {"sms_daily_budget", c.SMSDailyBudget}, {"verification_attempts", c.VerificationAttempts},
		{"verification_failures_per_day", c.VerificationFailures}} {
		if n.v < 1 {
			bad(n.key, "must be at least 1")
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	if c.PairingTTL < time.Minute || c.PairingTTL > time.Hour {
		bad("pairing_ttl", "must be between 1m and 1h")
	}
	if c.ApprovalsPerMinute < 1 {
		bad("approvals_per_minute", "must be at least 1")
	}
	if c.ApprovalsPerHour < c.ApprovalsPerMinute {
		bad("approvals_per_hour", "must be at least approvals_per_minute")
	}
	if c.MaxPendingLogin < 1 {
		bad("max_pending_logins", "must be at least 1")
	}
	if c.FraudMute < 0 {
		bad("fraud_mute", "must not be negative")
	}
	if c.SweepInterval < 10*time.Millisecond {
		bad("sweep_interval", "must be at least 10ms")
	}
	if c.HealthInterval < 100*time.Millisecond {
		bad("health_interval", "must be at least 100ms")
	}
	c.validateRetention(bad)
	c.validateTransport(bad)
	return errors.Join(errs...)
}

// validateRetention checks the retention_* settings.
func (c Config) validateRetention(bad func(key, format string, args ...any)) {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"retention_interval", c.RetentionInterval}, {"retention_requests", c.RetentionRequests},
		{"retention_verifications", c.RetentionVerifications}, {"retention_outbox", c.RetentionOutbox},
		{"retention_audit", c.RetentionAudit}, {"retention_counters", c.RetentionCounters}} {
		if d.v <= 0 {
			bad(d.key, "must be positive, got %s", d.v)
		}
	}
	if c.RetentionInterval > 0 && c.RetentionInterval < time.Second {
		bad("retention_interval", "must be at least 1s")
	}
	if c.RetentionAudit < c.RetentionRequests {
		bad("retention_audit", "must be at least retention_requests (%s), so a request's audit trail outlives it", c.RetentionRequests)
	}
	if c.RetentionCounters > 0 && c.RetentionCounters < retention.Day {
		bad("retention_counters", "must be at least 24h, the longest rate-limit window")
	}
	if c.RetentionVerifications > 0 && c.RetentionVerifications < c.SMSResendCooldown {
		bad("retention_verifications", "must be at least sms_resend_cooldown (%s): the cooldown is read from the last verification", c.SMSResendCooldown)
	}
}

// retentionConfig is the sweeper's configuration from c.
func (c Config) retentionConfig() retention.Config {
	return retention.Config{
		Period:        c.RetentionInterval,
		Requests:      c.RetentionRequests,
		Verifications: c.RetentionVerifications,
		Outbox:        c.RetentionOutbox,
		Audit:         c.RetentionAudit,
		Counters:      c.RetentionCounters,
	}
}

// sharedDeployment says why c may run as several replicas (PostgreSQL, or
// external NATS), or "" on the embedded single-node defaults.
func (c Config) sharedDeployment() string {
	var why []string
	if u, err := url.Parse(c.DatabaseURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		why = append(why, "database_url is PostgreSQL")
	}
	if c.NATSURL != "" {
		why = append(why, "nats_url names an external NATS")
	}
	return strings.Join(why, " and ")
}

// validateTransport checks the transport limits and trusted proxies.
func (c Config) validateTransport(bad func(key, format string, args ...any)) {
	for _, n := range []struct {
		key string
		v   int
	}{{"max_connections", c.MaxConnections}, {"wait_streams_per_api_key", c.WaitStreamsPerAPIKey},
		{"watch_streams_per_device", c.WatchStreamsPerDevice}, {"api_key_rate", c.APIKeyRate}} {
		if n.v < 0 {
			bad(n.key, "must not be negative (0 means no limit)")
		}
	}
	if c.MaxConcurrentStreams < 1 {
		bad("max_concurrent_streams", "must be at least 1")
	}
	if c.APIKeyRate > 0 && c.APIKeyBurst < 1 {
		bad("api_key_burst", "must be at least 1 while api_key_rate is set")
	}
	for _, m := range []struct {
		key string
		v   int
	}{{"max_recv_msg_bytes", c.MaxRecvMsgBytes}, {"max_send_msg_bytes", c.MaxSendMsgBytes}} {
		if m.v < 4<<10 || m.v > 64<<20 {
			bad(m.key, "must be between 4096 (4 KiB) and 67108864 (64 MiB), got %d", m.v)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"keepalive_min_time", c.KeepaliveMinTime}, {"keepalive_time", c.KeepaliveTime}, {"keepalive_timeout", c.KeepaliveTimeout}} {
		if d.v < time.Second {
			bad(d.key, "must be at least 1s")
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"max_connection_idle", c.MaxConnectionIdle}, {"max_connection_age", c.MaxConnectionAge}} {
		if d.v < 0 {
			bad(d.key, "must not be negative (0 means never)")
		}
	}
	// A WaitRequest lasts up to the longest approval_ttl (10 minutes); a
	// shorter grace would cut it off when its connection grows old.
	if c.MaxConnectionAge > 0 && c.MaxConnectionAgeGrace < 10*time.Minute {
		bad("max_connection_age_grace", "must be at least 10m (the longest approval_ttl), so a WaitRequest can finish after max_connection_age")
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("trusted_proxies", "%q is not a CIDR like 10.0.0.0/8 or an IP address", p)
			}
		}
	}
}

// transportLimits turns the configured limits into the server's; the
// configuration's 0 ("no limit", "never") is the server's negative.
func (c Config) transportLimits() server.Limits {
	off := func(n int) int {
		if n == 0 {
			return -1
		}
		return n
	}
	offDur := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return server.Limits{
		MaxConnections:        off(c.MaxConnections),
		MaxConcurrentStreams:  c.MaxConcurrentStreams,
		MaxRecvMsgSize:        c.MaxRecvMsgBytes,
		MaxSendMsgSize:        c.MaxSendMsgBytes,
		KeepaliveMinTime:      c.KeepaliveMinTime,
		KeepaliveTime:         c.KeepaliveTime,
		KeepaliveTimeout:      c.KeepaliveTimeout,
		MaxConnectionIdle:     offDur(c.MaxConnectionIdle),
		MaxConnectionAge:      offDur(c.MaxConnectionAge),
		MaxConnectionAgeGrace: c.MaxConnectionAgeGrace,
		WaitStreamsPerAPIKey:  off(c.WaitStreamsPerAPIKey),
		WatchStreamsPerDevice: off(c.WatchStreamsPerDevice),
		APIKeyRate:            float64(off(c.APIKeyRate)),
		APIKeyBurst:           c.APIKeyBurst,
	}
}

// databaseURL is database_url, or SQLite in the data directory.
func (c Config) databaseURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return "sqlite:" + filepath.Join(c.DataDir, "pushauth.db")
}

// redactURL hides a URL's password for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}
