// Command pushauth-portal is a reference login page built only on package
// client, as a portal team would write one: password sign-in for demo
// users, then, by the user's state, linking the app with the two words it
// shows or approving on the phone (with the number to type, and live
// progress), a fallback to a code from an authenticator app, and settings to
// enrol another authenticator app and remove linked phones. Dutch and
// English. See docs/portal.md.
//
//	go run ./cmd/pushauth-portal --setup --user jan:geheim
//
// starts it on http://localhost:8480 against a pushauthd on 127.0.0.1:8470,
// creating its relying party and API key with the admin token the first
// time.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/client"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pushauth-portal:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	listen          string
	tlsCert, tlsKey string
	addrs           string
	caFile          string
	useTLS          bool
	apiKeyFile      string
	usersFile       string
	users           []string
	appName         string
	setup           bool
	adminTokenFile  string
	rpName          string
}

// userFlags collects repeated --user flags.
type userFlags struct{ list *[]string }

func (u userFlags) String() string     { return "" }
func (u userFlags) Set(s string) error { *u.list = append(*u.list, s); return nil }

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("pushauth-portal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", "localhost:8480", "`host:port` to serve the portal on")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM); without it, plain HTTP, for localhost only")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "private key `file` (PEM) of --tls-cert")
	fs.StringVar(&cfg.addrs, "pushauth-addr", "127.0.0.1:8470", "pushauth's gRPC `host:port`; several replicas comma-separated")
	fs.BoolVar(&cfg.useTLS, "pushauth-tls", false, "connect to pushauth with TLS (implied by --pushauth-ca-file)")
	fs.StringVar(&cfg.caFile, "pushauth-ca-file", "", "verify pushauth's certificate with the CA certificates (PEM) in `file`")
	fs.StringVar(&cfg.apiKeyFile, "api-key-file", "data/portal-api-key", "the relying party's API key `file` (or set PUSHAUTH_API_KEY); --setup writes it")
	fs.StringVar(&cfg.usersFile, "users", "", "YAML `file` of users: users: [{username, name, email, password_hash}]")
	fs.Var(userFlags{&cfg.users}, "user", "a demo user `name:password` (repeatable; the password is hashed at once)")
	fs.StringVar(&cfg.appName, "app-name", "Mijn Portal", "the `name` the phone shows for this portal")
	fs.BoolVar(&cfg.setup, "setup", false, "create the relying party (--rp-name) and an API key with the admin token, if --api-key-file does not exist yet")
	fs.StringVar(&cfg.adminTokenFile, "admin-token-file", "data/admin-token", "the pushauth admin token `file`, for --setup")
	fs.StringVar(&cfg.rpName, "rp-name", "demo-portal", "the relying party's `name`, for --setup")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "hash-password" {
		return hashPassword(stdin, stdout)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	us := users{}
	if cfg.usersFile != "" {
		if us, err = loadUsers(cfg.usersFile); err != nil {
			return err
		}
	}
	for _, u := range cfg.users {
		if err := us.addFlag(u); err != nil {
			return err
		}
	}
	if len(us) == 0 {
		return errors.New("no users: pass --user NAME:PASSWORD or --users FILE")
	}
	var tlsCfg *tls.Config
	if cfg.useTLS || cfg.caFile != "" {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.caFile != "" {
			pem, err := os.ReadFile(cfg.caFile)
			if err != nil {
				return err
			}
			tlsCfg.RootCAs = x509.NewCertPool()
			if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--pushauth-ca-file %s holds no PEM certificate", cfg.caFile)
			}
		}
	}
	addrs := strings.Split(cfg.addrs, ",")
	if cfg.setup {
		if err := setup(ctx, cfg, addrs[0], tlsCfg, stderr); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	key := strings.TrimSpace(os.Getenv("PUSHAUTH_API_KEY"))
	if key == "" {
		b, err := os.ReadFile(cfg.apiKeyFile)
		if err != nil {
			return fmt.Errorf("no API key: %w (set PUSHAUTH_API_KEY, or run once with --setup)", err)
		}
		key = strings.TrimSpace(string(b))
	}
	c, err := client.Dial(client.Config{Addrs: addrs, APIKey: key, TLS: tlsCfg,
		DialOptions: []grpc.DialOption{grpc.WithUserAgent("pushauth-portal")}})
	if err != nil {
		return err
	}
	defer c.Close()
	rp, err := c.WhoAmI(ctx)
	if err != nil {
		return fmt.Errorf("the API key does not work at %s: %w", cfg.addrs, err)
	}
	p, err := newPortal(c, us, cfg.appName, log, time.Now)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if cfg.tlsCert != "" {
		scheme = "https"
	}
	// Name the host as given: browsers treat http://localhost as secure (its
	// Secure cookies work), not every loopback address.
	host, _, _ := net.SplitHostPort(cfg.listen)
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	fmt.Fprintf(stderr, "pushauth-portal for relying party %s (%s) on %s://%s/\n", rp.GetName(), rp.GetDisplayName(), scheme, net.JoinHostPort(host, port))
	errc := make(chan error, 1)
	go func() {
		if cfg.tlsCert != "" {
			errc <- srv.ServeTLS(lis, cfg.tlsCert, cfg.tlsKey)
			return
		}
		errc <- srv.Serve(lis)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// setup creates the relying party (number matching on) and an API key with
// the admin token, and writes the key to cfg.apiKeyFile, unless that file
// exists already.
func setup(ctx context.Context, cfg *config, addr string, tlsCfg *tls.Config, stderr io.Writer) error {
	if _, err := os.Stat(cfg.apiKeyFile); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tok, err := os.ReadFile(cfg.adminTokenFile)
	if err != nil {
		return fmt.Errorf("read the admin token: %w", err)
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	admin := pushauthv1.NewAdminServiceClient(cc)
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	_, err = admin.GetRelyingParty(actx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: cfg.rpName})
	if status.Code(err) == codes.NotFound {
		_, err = admin.CreateRelyingParty(actx, &pushauthv1.CreateRelyingPartyRequest{
			Name: cfg.rpName, DisplayName: cfg.appName,
			Policy: &pushauthv1.RelyingPartyPolicy{NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER},
		})
		if err == nil {
			fmt.Fprintf(stderr, "created relying party %s (number matching on)\n", cfg.rpName)
		}
	}
	if err != nil {
		return err
	}
	key, err := admin.CreateApiKey(actx, &pushauthv1.CreateApiKeyRequest{RelyingParty: cfg.rpName, Description: "pushauth-portal"})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.apiKeyFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.apiKeyFile, []byte(key.GetSecret()+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "API key %s… written to %s\n", key.GetApiKey().GetPrefix(), cfg.apiKeyFile)
	return nil
}

// hashPassword reads a password line from stdin and prints its bcrypt hash,
// for the users file.
func hashPassword(stdin io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("hash-password: give the password on stdin")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(h))
	return err
}
