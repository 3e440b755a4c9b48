package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Defaults and environment variables of the connection flags.
const (
	defaultAddr      = "127.0.0.1:8470"
	defaultPort      = "8470"
	defaultTokenFile = "data/admin-token" // relative to the working directory, where the server writes it

	envAddr      = "PUSHAUTH_ADDR"
	envToken     = "PUSHAUTH_ADMIN_TOKEN"
	envTokenFile = "PUSHAUTH_ADMIN_TOKEN_FILE"

	maxTokenFileSize = 64 << 10
)

// connFlags are the connection and output flags that every command
// accepts. Environment variables only apply to flags not given.
type connFlags struct {
	fs *flag.FlagSet

	addr       string
	token      string
	tokenFile  string
	tls        bool
	caFile     string
	certFile   string
	keyFile    string
	serverName string
	insecure   bool
	json       bool
	timeout    time.Duration

	target string // the address dialed, set by dial
}

// registerConnFlags adds the connection and output flags to fs.
func registerConnFlags(fs *flag.FlagSet) *connFlags {
	cf := &connFlags{fs: fs}
	fs.StringVar(&cf.addr, "addr", defaultAddr, "server `host:port` (env "+envAddr+")")
	fs.StringVar(&cf.token, "token", "", "admin `token` (env "+envToken+"); command-line arguments are visible to other local users, prefer --token-file")
	fs.StringVar(&cf.tokenFile, "token-file", "", "read the admin token from `file`, - for stdin (env "+envTokenFile+"; default ./"+defaultTokenFile+" if it exists)")
	fs.BoolVar(&cf.tls, "tls", false, "connect with TLS (implied by --ca-file and --cert-file)")
	fs.StringVar(&cf.caFile, "ca-file", "", "verify the server with the CA certificates (PEM) in `file` instead of the system roots")
	fs.StringVar(&cf.certFile, "cert-file", "", "client certificate `file` (PEM) for mutual TLS")
	fs.StringVar(&cf.keyFile, "key-file", "", "private key `file` (PEM) of --cert-file (default: read from --cert-file)")
	fs.StringVar(&cf.serverName, "server-name", "", "`name` expected in the server certificate (default: the host of --addr)")
	fs.BoolVar(&cf.insecure, "insecure", false, "allow sending the admin token, a device credential or an API key without TLS to an address that is not loopback")
	fs.BoolVar(&cf.json, "json", false, "print the response message as JSON, for scripts")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "time limit of each request, 0 for none")
	return cf
}

// conn is a connection to the server with the credentials to use.
type conn struct {
	cc      *grpc.ClientConn
	admin   pushauthv1.AdminServiceClient
	device  pushauthv1.DeviceServiceClient
	rp      pushauthv1.RelyingPartyServiceClient
	token   string // the admin token; "" if there is none
	timeout time.Duration
}

// tokenUse says whether a command needs the admin token.
type tokenUse int

const (
	tokenRequired tokenUse = iota // admin commands
	tokenOptional                 // used if found (device register's outbox lookup)
	tokenUnused                   // device commands that send the device credential
)

// dialOptions are what a command needs of the connection.
type dialOptions struct {
	token tokenUse
	// device is set when a device credential goes over the connection, in
	// either direction: it is refused in the clear like the admin token.
	device bool
	// apiKey is set when a relying party's API key goes over the
	// connection: it is refused in the clear like the admin token.
	apiKey bool
	// defaultAddr, if set, is used when --addr is not given, before
	// $PUSHAUTH_ADDR: the server a device state file belongs to.
	defaultAddr string
}

// dial checks the connection flags, finds the admin token and connects.
// The connection is lazy: errors of the network show at the first call.
func (cf *connFlags) dial(e *env) (*conn, error) {
	return cf.dialWith(e, dialOptions{token: tokenRequired})
}

// dialWith is dial for commands with other needs than the admin commands.
func (cf *connFlags) dialWith(e *env, o dialOptions) (*conn, error) {
	given := givenFlags(cf.fs)
	addr := cf.addr
	switch {
	case given["addr"]:
	case o.defaultAddr != "":
		addr = o.defaultAddr
	case e.getenv(envAddr) != "":
		addr = e.getenv(envAddr)
	}
	if cf.timeout < 0 {
		return nil, usageErrorf("--timeout must not be negative")
	}
	if cf.keyFile != "" && cf.certFile == "" {
		return nil, usageErrorf("--key-file needs --cert-file")
	}
	useTLS := cf.tls || cf.caFile != "" || cf.certFile != ""
	if cf.serverName != "" && !useTLS {
		return nil, usageErrorf("--server-name needs --tls")
	}
	target, local, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	cf.target = target

	var token string
	if o.token != tokenUnused {
		if token, err = cf.findToken(e, given); err != nil {
			return nil, err
		}
	}
	if token == "" && cf.certFile == "" && o.token == tokenRequired {
		return nil, errors.New("no admin token: pass --token-file FILE (or --token), set " + envTokenFile + " or " + envToken +
			", or run this in the server's working directory so ./" + defaultTokenFile + " is found")
	}
	if (token != "" || o.device || o.apiKey) && !useTLS && !local && !cf.insecure {
		what := "the admin token"
		switch {
		case token != "" && o.device:
			what = "the admin token and the device credential"
		case o.device:
			what = "the device credential"
		case o.apiKey:
			what = "the API key"
		}
		return nil, fmt.Errorf("refusing to send %s unencrypted to %s, which is not a loopback address: "+
			"use --tls (with --ca-file if the server's certificate is not publicly trusted), "+
			"or --insecure if the network between here and the server is trusted", what, target)
	}

	creds := insecure.NewCredentials()
	if useTLS {
		cfg, err := cf.tlsConfig()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("pushauth-cli"))
	if err != nil {
		return nil, fmt.Errorf("cannot use --addr %q: %w", addr, err)
	}
	return &conn{
		cc:      cc,
		admin:   pushauthv1.NewAdminServiceClient(cc),
		device:  pushauthv1.NewDeviceServiceClient(cc),
		rp:      pushauthv1.NewRelyingPartyServiceClient(cc),
		token:   token,
		timeout: cf.timeout,
	}, nil
}

// close releases the connection.
func (c *conn) close() { c.cc.Close() }

// ctx returns the context of one admin call: with the admin token and the
// time limit.
func (c *conn) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return c.ctxWith(parent, c.token)
}

// ctxWith returns the context of one call sending bearer (unless "") and
// with the time limit.
func (c *conn) ctxWith(parent context.Context, bearer string) (context.Context, context.CancelFunc) {
	ctx := parent
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// streamCtx returns the context of a call that waits for news (a stream):
// sending bearer (unless ""), and without the time limit of each request.
func (c *conn) streamCtx(parent context.Context, bearer string) (context.Context, context.CancelFunc) {
	ctx := parent
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	return context.WithCancel(ctx)
}

// findToken returns the admin token, in this order: --token, --token-file,
// $PUSHAUTH_ADMIN_TOKEN, $PUSHAUTH_ADMIN_TOKEN_FILE, ./data/admin-token.
// It returns "" if there is none.
func (cf *connFlags) findToken(e *env, given map[string]bool) (string, error) {
	switch {
	case given["token"] && given["token-file"]:
		return "", usageErrorf("use either --token or --token-file, not both")
	case given["token"]:
		return checkToken(cf.token, "--token")
	case given["token-file"]:
		return readToken(e, cf.tokenFile)
	case e.getenv(envToken) != "":
		return checkToken(e.getenv(envToken), envToken)
	case e.getenv(envTokenFile) != "":
		return readToken(e, e.getenv(envTokenFile))
	}
	tok, err := readToken(e, defaultTokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tok, err
}

// readToken reads a token from a file, or from stdin for "-".
func readToken(e *env, path string) (string, error) {
	return readSecret(e, path, "the admin token")
}

// readSecret reads the secret named what (e.g. "the API key") from a file,
// or from stdin for "-".
func readSecret(e *env, path, what string) (string, error) {
	var r io.Reader = e.stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("cannot read %s: %w", what, err)
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s from %s: %w", what, name, err)
	}
	if len(b) > maxTokenFileSize {
		return "", fmt.Errorf("%s file %s is too large to be a token", what, name)
	}
	return checkSecret(strings.TrimSpace(string(b)), what, name)
}

// checkToken rejects tokens that cannot go into a gRPC header.
func checkToken(tok, from string) (string, error) {
	return checkSecret(tok, "the admin token", from)
}

// checkSecret rejects secrets that cannot go into a gRPC header.
func checkSecret(tok, what, from string) (string, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%s from %s is empty", what, from)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x20 || c >= 0x7f {
			return "", fmt.Errorf("%s from %s contains characters a token cannot have", what, from)
		}
	}
	return tok, nil
}

// parseAddr turns --addr into a gRPC target and tells whether it is on this
// machine (a loopback address, localhost or a unix socket). Without a port,
// the default port is used.
func parseAddr(addr string) (target string, local bool, err error) {
	if addr == "" {
		return "", false, usageErrorf("--addr is empty")
	}
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:") {
		return addr, true, nil
	}
	target, endpoint := addr, addr
	schemed := false
	if i := strings.Index(addr, "://"); i > 0 { // e.g. dns:///host:port
		schemed = true
		rest := addr[i+3:]
		endpoint = rest[strings.LastIndex(rest, "/")+1:]
	}
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(endpoint, "["), "]")
		if !schemed {
			if strings.Contains(host, ":") && net.ParseIP(host) == nil {
				return "", false, usageErrorf("--addr %q is not host:port", addr)
			}
			target = net.JoinHostPort(host, defaultPort)
		}
	}
	if host == "" {
		return "", false, usageErrorf("--addr %q has no host", addr)
	}
	return target, isLoopback(host), nil
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
// Other names are not resolved: they count as remote.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the client TLS configuration from the flags.
func (cf *connFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cf.serverName}
	if cf.caFile != "" {
		pem, err := os.ReadFile(cf.caFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read --ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", cf.caFile)
		}
		cfg.RootCAs = pool
	}
	if cf.certFile != "" {
		keyFile := cf.keyFile
		if keyFile == "" {
			keyFile = cf.certFile
		}
		cert, err := tls.LoadX509KeyPair(cf.certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load the client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// adminCall dials, runs one admin call with a bounded context and prints
// its result (as a table, or as JSON with --json): the shape of every
// single-call admin command.
func adminCall[T proto.Message](ctx context.Context, e *env, cf *connFlags, call func(context.Context, pushauthv1.AdminServiceClient) (T, error), print func(io.Writer, T) error) error {
	c, err := cf.dial(e)
	if err != nil {
		return err
	}
	defer c.close()
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := call(ctx, c.admin)
	if err != nil {
		return err
	}
	return output(e.stdout, cf, resp, func(w io.Writer) error { return print(w, resp) })
}
