package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
)

// startTimeout bounds how long start-up waits for the database and NATS.
const startTimeout = 15 * time.Second

// serve runs the server until ctx ends, then shuts down gracefully: health
// says NOT_SERVING, listeners stop accepting, in-flight RPCs get
// cfg.ShutdownTimeout to finish, then NATS and the database are closed.
func serve(ctx context.Context, cfg Config, log *slog.Logger, started func(grpcAddr, opsAddr string)) error {
	// The listeners come first: a second server started on a taken port
	// must fail before it creates, opens or generates anything.
	lis, opsLis, err := listen(cfg)
	if err != nil {
		return err
	}
	defer lis.Close()
	if opsLis != nil {
		defer opsLis.Close()
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
	}
	token, err := dataSecret(cfg.AdminToken, cfg.DataDir, "admin-token", log)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return err
	}
	tlsCfg, err := loadTLS(cfg)
	if err != nil {
		return err
	}

	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	st, err := sqlstore.Open(startCtx, cfg.databaseURL(), log)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer st.Close()
	if err := st.MigrateUp(startCtx); err != nil {
		return fmt.Errorf("database migrations: %w", err)
	}
	ev := events.Config{URL: cfg.NATSURL, ServerName: "pushauthd"}
	if cfg.NATSURL == "" {
		ev.StoreDir = cfg.DataDir + "/nats"
	}
	natsCtx, cancelNATS := context.WithTimeout(ctx, cfg.NATSStartWait)
	defer cancelNATS()
	bus, err := events.StartWait(natsCtx, ev, log)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer bus.Close()
	size, known := bus.ClusterSize()
	replicas, err := events.Replicas(cfg.NATSReplicas, size, known)
	if err != nil {
		return err
	}
	log.Info("jetstream streams", "replicas", replicas, "nats_servers", size, "nats_servers_known", known)

	sender, err := newSMSSender(cfg, st, log)
	if err != nil {
		return err
	}
	pushSender, err := newPushSender(startCtx, cfg, log)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Options{
		Logger:     log,
		Version:    version,
		Store:      st,
		Checks:     []server.Check{{Name: "database", Check: st.Ping}, {Name: "nats", Check: bus.Ping}},
		Auth:       auth.Config{AdminToken: token, AdminCertNames: cfg.AdminCertNames},
		TLS:        tlsCfg,
		Keys:       keys,
		Bus:        bus,
		PushSender: pushSender,
		PushQueue:  push.QueueConfig{Replicas: replicas, FinishTimeout: cfg.ShutdownTimeout},
		PairingTTL: cfg.PairingTTL,
		Approval:   approvalConfig(cfg),
		Retention:  cfg.retentionConfig(),
		SMS:        sender,
		Outbox:     cfg.SMSProvider == "outbox",
		Registration: registration.Config{
			AllowedRegions:  allowedRegions(cfg.AllowedRegions),
			VerificationTTL: cfg.VerificationTTL,
			LinkBaseURL:     cfg.LinkBaseURL,
			AppName:         cfg.AppName,
			Limits: registration.Limits{
				ResendCooldown:          cfg.SMSResendCooldown,
				PerNumberHour:           cfg.SMSPerNumberHour,
				PerNumberDay:            cfg.SMSPerNumberDay,
				PerAddressHour:          cfg.SMSPerAddressHour,
				PerPrefixHour:           cfg.SMSPerPrefixHour,
				GlobalDay:               cfg.SMSDailyBudget,
				MaxAttempts:             cfg.VerificationAttempts,
				MaxFailuresPerNumberDay: cfg.VerificationFailures,
			},
		},
		Limits:         cfg.transportLimits(),
		TrustedProxies: cfg.TrustedProxies,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	if tlsCfg == nil && !isLoopback(cfg.GRPCAddr) {
		log.Warn("SERVING gRPC IN PLAINTEXT ON A NON-LOOPBACK ADDRESS: credentials and tokens cross the network unencrypted; set tls_cert_file and tls_key_file", "addr", lis.Addr().String())
	}

	var httpLis net.Listener
	if cfg.HTTPAddr != "" {
		if httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			lis.Close()
			if opsLis != nil {
				opsLis.Close()
			}
			return fmt.Errorf("http_addr: %w", err)
		}
		if tlsCfg == nil && !isLoopback(cfg.HTTPAddr) {
			log.Warn("SERVING THE HTTP API IN PLAINTEXT ON A NON-LOOPBACK ADDRESS: credentials and tokens cross the network unencrypted; set tls_cert_file and tls_key_file", "addr", httpLis.Addr().String())
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if httpLis != nil {
		g.Go(func() error {
			log.Info("serving HTTP API", "addr", httpLis.Addr().String(), "tls", tlsCfg != nil)
			return srv.ServeHTTP(httpLis)
		})
	}
	g.Go(func() error {
		log.Info("serving gRPC", "addr", lis.Addr().String(), "tls", tlsCfg != nil, "database", st.Dialect(), "nats_embedded", bus.Embedded())
		return srv.Serve(lis)
	})
	var ops *http.Server
	if opsLis != nil {
		ops = &http.Server{Handler: srv.OpsHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			log.Info("serving ops HTTP", "addr", opsLis.Addr().String())
			if err := ops.Serve(opsLis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		srv.Health.Run(gctx, cfg.HealthInterval)
		return nil
	})
	g.Go(func() error {
		if err := srv.Run(gctx, cfg.SweepInterval); err != nil && gctx.Err() == nil {
			return fmt.Errorf("push queue: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
		srv.Health.Shutdown()
		// Waiting calls end now with Unavailable, so their clients move to
		// another replica instead of holding this one for shutdown_timeout.
		srv.Drain()
		done := make(chan struct{})
		go func() {
			var wg sync.WaitGroup
			wg.Go(func() {
				hctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
				defer cancel()
				_ = srv.ShutdownHTTP(hctx)
			})
			wg.Go(srv.GRPC.GracefulStop)
			wg.Wait()
			close(done)
		}()
		timer := time.NewTimer(cfg.ShutdownTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			log.Warn("in-flight RPCs did not finish in time; closing them")
			srv.GRPC.Stop()
		}
		if ops != nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = ops.Shutdown(sctx)
		}
		return nil
	})
	if started != nil {
		opsAddr := ""
		if opsLis != nil {
			opsAddr = opsLis.Addr().String()
		}
		started(lis.Addr().String(), opsAddr)
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

// listen binds the gRPC and (unless ops_addr is empty) the ops listeners.
func listen(cfg Config) (lis, opsLis net.Listener, err error) {
	if lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, nil, fmt.Errorf("grpc_addr: %w", err)
	}
	if cfg.OpsAddr != "" {
		if opsLis, err = net.Listen("tcp", cfg.OpsAddr); err != nil {
			lis.Close()
			return nil, nil, fmt.Errorf("ops_addr: %w", err)
		}
	}
	return lis, opsLis, nil
}

// loadTLS builds the gRPC TLS configuration, or nil for plaintext.
func loadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	t := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_client_ca_file: no PEM certificates in %s", cfg.TLSClientCAFile)
		}
		t.ClientCAs = pool
		t.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return t, nil
}
