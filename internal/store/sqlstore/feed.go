package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushauth/pushauth/internal/store"
)

// The security event outbox and the webhook queue.

// RecordAuditEvent implements store.Audit. PostgreSQL inserts the audit row
// in a data-modifying WITH in front of the outbox insert; SQLite, which has
// none, inserts into the view audit_with_feed, whose trigger writes both
// tables (migration 10). Either way it is one statement.
func (s *Store) RecordAuditEvent(ctx context.Context, e store.AuditEvent, feed []store.FeedEvent) error {
	if len(feed) == 0 {
		_, err := s.AppendAuditEvent(ctx, e)
		return err
	}
	details, err := json.Marshal(e.Details)
	if err != nil {
		return fmt.Errorf("record audit event: encode details: %w", err)
	}
	args := []any{timeArg(e.Time), e.Actor, e.Action, e.RelyingPartyID, e.Target, e.RequestID, string(details)}
	var query string
	if s.dialect == dialectPostgres {
		rows, rowArgs := outboxRows(feed)
		query = "WITH audit AS (INSERT INTO audit_events (" + auditInsertColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?)) " + outboxInsert + rows
		args = append(args, rowArgs...)
	} else {
		type row struct {
			ID             string `json:"id"`
			RelyingPartyID string `json:"relying_party_id"`
			Type           string `json:"type"`
			Body           string `json:"body"`
			CreatedAt      int64  `json:"created_at"`
			Traceparent    string `json:"traceparent"`
		}
		rows := make([]row, len(feed))
		for i, f := range feed {
			if !utf8.Valid(f.Body) {
				return fmt.Errorf("record audit event %s: feed event %q: body is not UTF-8 JSON", e.Action, f.ID)
			}
			rows[i] = row{f.ID, f.RelyingPartyID, f.Type, string(f.Body), f.CreatedAt.UnixMicro(), f.Traceparent}
		}
		b, err := json.Marshal(rows)
		if err != nil {
			return fmt.Errorf("record audit event %s: encode feed: %w", e.Action, err)
		}
		query = "INSERT INTO audit_with_feed (" + auditInsertColumns + ", feed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
		args = append(args, string(b))
	}
	if _, err := s.w.ExecContext(ctx, s.q(query), args...); err != nil {
		return fmt.Errorf("record audit event %s with %d feed events: %w", e.Action, len(feed), mapErr(err))
	}
	return nil
}

// outboxInsert and outboxRows make the event outbox's multi-row insert,
// shared by AddEvents and RecordAuditEvent.
const outboxInsert = "INSERT INTO event_outbox (id, relying_party_id, type, body, created_at, traceparent) VALUES "

func outboxRows(events []store.FeedEvent) (string, []any) {
	args := make([]any, 0, 6*len(events))
	for _, e := range events {
		args = append(args, e.ID, e.RelyingPartyID, e.Type, bytesArg(e.Body), e.CreatedAt.UnixMicro(), e.Traceparent)
	}
	return strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(events)), ", "), args
}

// AddEvents implements store.EventOutbox in one statement.
func (s *Store) AddEvents(ctx context.Context, events []store.FeedEvent) error {
	if len(events) == 0 {
		return nil
	}
	rows, args := outboxRows(events)
	if _, err := s.w.ExecContext(ctx, s.q(outboxInsert+rows), args...); err != nil {
		return fmt.Errorf("add %d events to the outbox: %w", len(events), mapErr(err))
	}
	return nil
}

// ClaimEvents implements store.EventOutbox in one statement, as ClaimPushes
// does: FOR UPDATE SKIP LOCKED on PostgreSQL, and the hold test repeated in
// the UPDATE.
func (s *Store) ClaimEvents(ctx context.Context, now, until time.Time, limit int) ([]store.FeedEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	pick := "SELECT id FROM event_outbox WHERE claimed_until IS NULL OR claimed_until <= ? ORDER BY created_at, id LIMIT ?"
	if s.dialect == dialectPostgres {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.w.QueryContext(ctx, s.q("WITH due AS MATERIALIZED ("+pick+`)
		UPDATE event_outbox SET claimed_until = ?
		WHERE id IN (SELECT id FROM due) AND (claimed_until IS NULL OR claimed_until <= ?)
		RETURNING id, relying_party_id, type, body, created_at, traceparent`),
		now.UnixMicro(), limit, until.UnixMicro(), now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.FeedEvent
	for rows.Next() {
		var e store.FeedEvent
		if err := rows.Scan(&e.ID, &e.RelyingPartyID, &e.Type, &e.Body, timeCol{&e.CreatedAt}, &e.Traceparent); err != nil {
			return nil, fmt.Errorf("claim events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim events: %w", mapErr(err))
	}
	slices.SortFunc(out, func(a, b store.FeedEvent) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeleteEvents implements store.EventOutbox in one statement.
func (s *Store) DeleteEvents(ctx context.Context, ids []string) error {
	return s.byIDs(ctx, "DELETE FROM event_outbox", "delete events of the outbox", ids)
}

const webhookColumns = "id, relying_party_id, url, description, secret_sealed, created_at, updated_at, disabled_at, disabled_reason, failing_since"

func scanWebhook(sc scanner) (store.WebhookEndpoint, error) {
	var e store.WebhookEndpoint
	err := sc.Scan(&e.ID, &e.RelyingPartyID, &e.URL, &e.Description, &e.Secret, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt},
		timeCol{&e.DisabledAt}, &e.DisabledReason, timeCol{&e.FailingSince})
	return e, err
}

// CreateWebhookEndpoint implements store.Webhooks.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e store.WebhookEndpoint) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO webhook_endpoints ("+webhookColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		e.ID, e.RelyingPartyID, e.URL, e.Description, bytesArg(e.Secret), e.CreatedAt.UnixMicro(), e.UpdatedAt.UnixMicro(),
		timeArg(e.DisabledAt), e.DisabledReason, timeArg(e.FailingSince))
	if err != nil {
		return fmt.Errorf("create webhook endpoint: %w", mapErr(err))
	}
	return nil
}

// GetWebhookEndpoint implements store.Webhooks.
func (s *Store) GetWebhookEndpoint(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	e, err := scanWebhook(s.r.QueryRowContext(ctx, s.q("SELECT "+webhookColumns+" FROM webhook_endpoints WHERE id = ?"), id))
	if err != nil {
		return store.WebhookEndpoint{}, fmt.Errorf("get webhook endpoint %q: %w", id, mapErr(err))
	}
	return e, nil
}

// ListWebhookEndpoints implements store.Webhooks.
func (s *Store) ListWebhookEndpoints(ctx context.Context, relyingPartyID string, includeDisabled bool) ([]store.WebhookEndpoint, error) {
	query := "SELECT " + webhookColumns + " FROM webhook_endpoints WHERE (? = '' OR relying_party_id = ?)"
	if !includeDisabled {
		query += " AND disabled_at IS NULL"
	}
	rows, err := s.r.QueryContext(ctx, s.q(query+" ORDER BY created_at, id"), relyingPartyID, relyingPartyID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", mapErr(err))
	}
	return collect(rows, "list webhook endpoints", scanWebhook)
}

// SetWebhookSecret implements store.Webhooks.
func (s *Store) SetWebhookSecret(ctx context.Context, id string, sealed []byte, at time.Time) error {
	return s.swap(ctx, "set webhook secret", "webhook_endpoints", id, "",
		"UPDATE webhook_endpoints SET secret_sealed = ?, updated_at = ? WHERE id = ?", bytesArg(sealed), at.UnixMicro(), id)
}

// DisableWebhookEndpoint implements store.Webhooks; the WHERE clause is the
// compare-and-swap.
func (s *Store) DisableWebhookEndpoint(ctx context.Context, id, reason string, at time.Time) error {
	return s.swap(ctx, "disable webhook endpoint", "webhook_endpoints", id, "already disabled",
		"UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? WHERE id = ? AND disabled_at IS NULL",
		at.UnixMicro(), reason, at.UnixMicro(), id)
}

// RecordWebhookResult implements store.Webhooks in one statement.
func (s *Store) RecordWebhookResult(ctx context.Context, id string, ok bool, at time.Time) (time.Time, error) {
	// A success writes the row only when it was failing: deliveries to a
	// healthy endpoint do not all queue on its row.
	query := "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL RETURNING failing_since"
	args := []any{id}
	if !ok {
		query = "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ? RETURNING failing_since"
		args = []any{at.UnixMicro(), id}
	}
	var since time.Time
	err := s.w.QueryRowContext(ctx, s.q(query), args...).Scan(timeCol{&since})
	switch {
	case ok && errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil // it was not failing: nothing to clear
	case err != nil:
		return time.Time{}, fmt.Errorf("record webhook result %q: %w", id, mapErr(err))
	}
	return since, nil
}

const deliveryColumns = "id, endpoint_id, event_id, event_type, body, state, attempts, next_attempt_at, claimed_until, claim, last_status, last_error, created_at, finished_at, traceparent"

func scanDelivery(sc scanner) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	err := sc.Scan(&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.Body, &d.State, &d.Attempts, timeCol{&d.NextAttemptAt},
		timeCol{&d.ClaimedUntil}, &d.Claim, &d.LastStatus, &d.LastError, timeCol{&d.CreatedAt}, timeCol{&d.FinishedAt}, &d.Traceparent)
	return d, err
}

// AddWebhookDeliveries implements store.Webhooks in one statement.
func (s *Store) AddWebhookDeliveries(ctx context.Context, ds []store.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	args := make([]any, 0, 9*len(ds))
	for _, d := range ds {
		args = append(args, d.ID, d.EndpointID, d.EventID, d.EventType, bytesArg(d.Body), store.WebhookPending,
			d.NextAttemptAt.UnixMicro(), d.CreatedAt.UnixMicro(), d.Traceparent)
	}
	rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(ds)), ", ")
	if _, err := s.w.ExecContext(ctx, s.q(`INSERT INTO webhook_deliveries
		(id, endpoint_id, event_id, event_type, body, state, next_attempt_at, created_at, traceparent) VALUES `+rows+
		" ON CONFLICT (endpoint_id, event_id) DO NOTHING"), args...); err != nil {
		return fmt.Errorf("queue %d webhook deliveries: %w", len(ds), mapErr(err))
	}
	return nil
}

// ClaimWebhookDeliveries implements store.Webhooks in one statement: the
// pick skips rows other workers lock (PostgreSQL) and the UPDATE repeats
// the hold test, so two workers never hold one delivery at once.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, claim string, limit int) ([]store.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	pick := `SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until <= ?)
		AND e.disabled_at IS NULL ORDER BY d.next_attempt_at, d.id LIMIT ?`
	if s.dialect == dialectPostgres {
		pick += " FOR UPDATE OF d SKIP LOCKED"
	}
	n := now.UnixMicro()
	rows, err := s.w.QueryContext(ctx, s.q("WITH due AS MATERIALIZED ("+pick+`)
		UPDATE webhook_deliveries SET claimed_until = ?, claim = ?
		WHERE id IN (SELECT id FROM due) AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)
		RETURNING `+deliveryColumns),
		n, n, limit, until.UnixMicro(), claim, n)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", mapErr(err))
	}
	out, err := collect(rows, "claim webhook deliveries", scanDelivery)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b store.WebhookDelivery) int {
		return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// FinishWebhookAttempt implements store.Webhooks; the claim in the WHERE
// clause is the compare-and-swap.
func (s *Store) FinishWebhookAttempt(ctx context.Context, d store.WebhookDelivery) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?,
		last_status = ?, last_error = ?, finished_at = ?, claimed_until = NULL, claim = ''
		WHERE id = ? AND claim = ? AND state = 'pending'`),
		d.State, d.Attempts, d.NextAttemptAt.UnixMicro(), d.LastStatus, d.LastError, timeArg(d.FinishedAt), d.ID, d.Claim)
	if err != nil {
		return fmt.Errorf("finish webhook attempt %q: %w", d.ID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("finish webhook attempt %q: %w", d.ID, err)
	} else if n == 0 {
		return fmt.Errorf("finish webhook attempt %q: the claim was lost: %w", d.ID, store.ErrConflict)
	}
	return nil
}

// ListWebhookDeliveries implements store.Webhooks.
func (s *Store) ListWebhookDeliveries(ctx context.Context, endpointID string, before time.Time, limit int) ([]store.WebhookDelivery, error) {
	if limit <= 0 {
		return nil, nil
	}
	b := int64(1<<63 - 1)
	if !before.IsZero() {
		b = before.UnixMicro()
	}
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+deliveryColumns+
		" FROM webhook_deliveries WHERE endpoint_id = ? AND created_at < ? ORDER BY created_at DESC, id DESC LIMIT ?"), endpointID, b, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", mapErr(err))
	}
	return collect(rows, "list webhook deliveries", scanDelivery)
}

// DeleteWebhookDeliveriesBefore implements store.Webhooks.
func (s *Store) DeleteWebhookDeliveriesBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete webhook deliveries: %w", err)
	}
	n, err := s.deleteOldest(ctx, "webhook_deliveries", "id",
		"finished_at IS NOT NULL AND finished_at < ?", "finished_at, id", []any{cutoff.UnixMicro()}, limit)
	if err != nil {
		return 0, fmt.Errorf("delete webhook deliveries: %w", err)
	}
	return n, nil
}
