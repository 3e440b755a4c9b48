package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		addr    string
		target  string
		local   bool
		wantErr bool
	}{
		{addr: "127.0.0.1:8470", target: "127.0.0.1:8470", local: true},
		{addr: "127.0.0.2:9000", target: "127.0.0.2:9000", local: true},
		{addr: "localhost:8470", target: "localhost:8470", local: true},
		{addr: "LOCALHOST", target: "LOCALHOST:8470", local: true},
		{addr: "[::1]:8470", target: "[::1]:8470", local: true},
		{addr: "::1", target: "[::1]:8470", local: true},
		{addr: "unix:///run/pushauth.sock", target: "unix:///run/pushauth.sock", local: true},
		{addr: "dns:///localhost:8470", target: "dns:///localhost:8470", local: true},
		{addr: "10.0.0.1:8470", target: "10.0.0.1:8470"},
		{addr: "0.0.0.0:8470", target: "0.0.0.0:8470"},
		{addr: "pushauth.example.com", target: "pushauth.example.com:8470"},
		{addr: "localhost.example.com:8470", target: "localhost.example.com:8470"},
		{addr: "dns://8.8.8.8/pushauth.example.com:443", target: "dns://8.8.8.8/pushauth.example.com:443"},
		{addr: "", wantErr: true},
		{addr: ":8470", wantErr: true},
		{addr: "a:b:c", wantErr: true},
	}
	for _, tt := range tests {
		target, local, err := parseAddr(tt.addr)
		if (err != nil) != tt.wantErr || target != tt.target || local != tt.local {
			t.Errorf("parseAddr(%q) = %q, %v, %v; want %q, %v, error %v", tt.addr, target, local, err, tt.target, tt.local, tt.wantErr)
		}
	}
}

// TestPlaintextRefusal checks that the token is not sent without TLS to an
// address that is not loopback, unless --insecure says so.
func TestPlaintextRefusal(t *testing.T) {
	r := cli(t, nil, nil, "admin", "rp", "list", "--addr", "10.0.0.1:8470", "--token", testToken)
	want := "pushauth: refusing to send the admin token unencrypted to 10.0.0.1:8470, which is not a loopback address: " +
		"use --tls (with --ca-file if the server's certificate is not publicly trusted), " +
		"or --insecure if the network between here and the server is trusted\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}
	r = cli(t, map[string]string{envAddr: "pushauth.example.com", envToken: testToken}, nil, "admin", "audit")
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to send the admin token unencrypted to pushauth.example.com:8470") {
		t.Errorf("with PUSHAUTH_ADDR: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	// dial is lazy, so these connect to nothing.
	pki := newTestPKI(t)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--addr", "10.0.0.1:1", "--token", "x"}, "refusing to send the admin token unencrypted"},
		{[]string{"--addr", "10.0.0.1:1", "--token", "x", "--insecure"}, ""},
		{[]string{"--addr", "10.0.0.1:1", "--token", "x", "--tls"}, ""},
		{[]string{"--addr", "10.0.0.1:1", "--token", "x", "--ca-file", pki.caFile}, ""},
		{[]string{"--addr", "10.0.0.1:1", "--cert-file", pki.clientCert, "--key-file", pki.clientKey}, ""},
		{[]string{"--addr", "localhost:1", "--token", "x"}, ""},
		{[]string{"--addr", "[::1]:1", "--token", "x"}, ""},
		{[]string{"--addr", "10.0.0.1:1", "--token", "x", "--ca-file", pki.clientKey}, "holds no PEM certificate"},
		{[]string{"--addr", "10.0.0.1:1", "--token", "x", "--cert-file", pki.caFile}, "cannot load the client certificate"},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cf := registerConnFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		c, err := cf.dial(&env{getenv: func(string) string { return "" }})
		if err == nil {
			c.close()
		}
		if got := errString(err); tt.wantErr == "" && err != nil || !strings.Contains(got, tt.wantErr) {
			t.Errorf("%q: error %q, want %q", tt.args, got, tt.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverCert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("server auth", func(t *testing.T) {
		s := startServer(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}})))
		s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal", "--ca-file", pki.caFile, "--server-name", "pushauth.test")
		if out := s.mustAdmin(t, "rp", "get", "portal", "--ca-file", pki.caFile); !strings.Contains(out, "rp_1  portal") {
			t.Errorf("output:\n%s", out)
		}
		// Without the CA the server is not trusted.
		r := s.admin(t, "rp", "get", "portal", "--tls")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: Unavailable: ") || !strings.Contains(r.stderr, "certificate") {
			t.Errorf("untrusted server: exit %d, stderr:\n%s", r.code, r.stderr)
		}
		r = s.admin(t, "rp", "get", "portal", "--ca-file", pki.caFile, "--server-name", "other.test")
		if r.code != 1 || !strings.Contains(r.stderr, "other.test") {
			t.Errorf("wrong server name: exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})

	t.Run("client certificate without token", func(t *testing.T) {
		s := startServer(t, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.pool,
		})))
		base := []string{"admin", "rp", "list", "--addr", s.addr, "--ca-file", pki.caFile}
		for _, certFlags := range [][]string{
			{"--cert-file", pki.clientCert, "--key-file", pki.clientKey},
			{"--cert-file", pki.clientBoth}, // key in the same file
		} {
			r := cli(t, nil, nil, append(base, certFlags...)...)
			if r.code != 0 || !strings.HasPrefix(r.stdout, "ID ") {
				t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", certFlags, r.code, r.stdout, r.stderr)
			}
			if got := s.lastAuth(); got != "" {
				t.Errorf("authorization %q sent, want none", got)
			}
		}
	})
}

// testPKI is a CA with a server certificate for pushauth.test and 127.0.0.1
// and a client certificate, as PEM files.
type testPKI struct {
	pool                              *x509.CertPool
	caFile                            string
	serverCert, serverKey             string
	clientCert, clientKey, clientBoth string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() (*ecdsa.PrivateKey, *pem.Block) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	serial := int64(0)
	sign := func(tmpl, parent *x509.Certificate, pub, priv any) (*x509.Certificate, *pem.Block) {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, &pem.Block{Type: "CERTIFICATE", Bytes: der}
	}

	caKey, _ := newKey()
	caTmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: "pushauth test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	ca, caPEM := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)

	srvKey, srvKeyPEM := newKey()
	_, srvPEM := sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "pushauth.test"}, DNSNames: []string{"pushauth.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, &srvKey.PublicKey, caKey)

	cliKey, cliKeyPEM := newKey()
	_, cliPEM := sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "operator"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}, ca, &cliKey.PublicKey, caKey)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:       pool,
		caFile:     write("ca.pem", caPEM),
		serverCert: write("server.pem", srvPEM),
		serverKey:  write("server-key.pem", srvKeyPEM),
		clientCert: write("client.pem", cliPEM),
		clientKey:  write("client-key.pem", cliKeyPEM),
		clientBoth: write("client-both.pem", cliPEM, cliKeyPEM),
	}
}
