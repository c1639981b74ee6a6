-- Webhooks (registrar.webhooks). Their registrations are events in streams `webhook:<id>`; a
-- trigger keeps `webhooks` from those events as they are appended, in the same transaction (as
-- access control's tables are), and tells the delivering process by NOTIFY registrar_webhooks.
-- Signing secrets are kept out of the events: encrypted, in webhook_secrets, dropped with the
-- webhook. Deliveries, their attempts, each webhook's run of failures and the dispatcher's place
-- in the store are the dispatcher's own state, so deliveries survive restarts.
CREATE TABLE webhooks (
    webhook_id        text        PRIMARY KEY,
    name              text        NOT NULL,
    description       text        NOT NULL,
    url               text        NOT NULL,
    events            text[]      NOT NULL,
    format            text        NOT NULL,
    status            text        NOT NULL,
    disabled_reason   text,
    has_secret        boolean     NOT NULL,
    created_at        timestamptz NOT NULL,
    created_by        text        NOT NULL,
    created_position  bigint      NOT NULL,
    updated_at        timestamptz NOT NULL,
    stream_version    integer     NOT NULL,
    deleted_at        timestamptz
);
CREATE INDEX webhooks_listed ON webhooks (created_at DESC, webhook_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_secrets (
    webhook_id  text        PRIMARY KEY,
    ciphertext  text        NOT NULL,
    key_id      text        NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_cursor (
    name            text        PRIMARY KEY,
    transaction_id  bigint      NOT NULL,
    position        bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    delivery_id       uuid        PRIMARY KEY,
    webhook_id        text        NOT NULL,
    event_id          uuid        NOT NULL,
    position          bigint      NOT NULL,
    event_type        text        NOT NULL,
    body              text        NOT NULL,
    status            text        NOT NULL DEFAULT 'pending',
    attempts          integer     NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    last_status_code  integer,
    last_error        text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_attempt_at, position)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, position DESC);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    delivery_id  uuid             NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt      integer          NOT NULL,
    started_at   timestamptz      NOT NULL,
    status_code  integer,
    latency_ms   double precision,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE webhook_health (
    webhook_id            text        PRIMARY KEY,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    paused_until          timestamptz,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    last_status_code      integer,
    last_error            text
);

CREATE FUNCTION webhooks_from_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := NEW.payload::jsonb;
    hook text := p->>'webhook_id';
BEGIN
    IF NEW.type = 'WebhookCreated' THEN
        INSERT INTO webhooks (webhook_id, name, description, url, events, format, status,
                              has_secret, created_at, created_by, created_position, updated_at,
                              stream_version)
        VALUES (hook, p->>'name', coalesce(p->>'description', ''), p->>'url',
                ARRAY(SELECT jsonb_array_elements_text(p->'events')), p->>'format',
                coalesce(p->>'status', 'ACTIVE'), (p->>'has_secret')::boolean, NEW.recorded_at,
                NEW.actor, NEW.position, NEW.recorded_at, NEW.stream_version)
        ON CONFLICT (webhook_id) DO NOTHING;
    ELSIF NEW.type = 'WebhookUpdated' THEN
        UPDATE webhooks SET
            name = coalesce(p->>'name', name),
            description = coalesce(p->>'description', description),
            url = coalesce(p->>'url', url),
            events = CASE WHEN jsonb_typeof(p->'events') = 'array'
                          THEN ARRAY(SELECT jsonb_array_elements_text(p->'events'))
                          ELSE events END,
            status = coalesce(p->>'status', status),
            disabled_reason = CASE WHEN p->>'status' = 'ACTIVE' THEN NULL
                                   ELSE disabled_reason END,
            has_secret = coalesce((p->>'has_secret')::boolean, has_secret),
            updated_at = NEW.recorded_at,
            stream_version = NEW.stream_version
        WHERE webhook_id = hook AND stream_version < NEW.stream_version;
        IF p->>'status' = 'ACTIVE' THEN
            -- Re-enabled: a fresh start, and its queued deliveries are due now.
            UPDATE webhook_health SET consecutive_failures = 0, paused_until = NULL
            WHERE webhook_id = hook;
            UPDATE webhook_deliveries SET next_attempt_at = NEW.recorded_at
            WHERE webhook_id = hook AND status = 'pending' AND next_attempt_at > NEW.recorded_at;
        END IF;
    ELSIF NEW.type = 'WebhookDisabled' THEN
        UPDATE webhooks SET status = 'DISABLED', disabled_reason = p->>'reason',
                            updated_at = NEW.recorded_at, stream_version = NEW.stream_version
        WHERE webhook_id = hook AND stream_version < NEW.stream_version;
    ELSIF NEW.type = 'WebhookDeleted' THEN
        UPDATE webhooks SET deleted_at = NEW.recorded_at, updated_at = NEW.recorded_at,
                            stream_version = NEW.stream_version
        WHERE webhook_id = hook AND stream_version < NEW.stream_version;
        DELETE FROM webhook_secrets WHERE webhook_id = hook;
        UPDATE webhook_deliveries SET status = 'cancelled'
        WHERE webhook_id = hook AND status = 'pending';
    END IF;
    PERFORM pg_notify('registrar_webhooks', hook);
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_maintain_webhooks AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type IN ('WebhookCreated', 'WebhookUpdated', 'WebhookDisabled', 'WebhookDeleted'))
    EXECUTE FUNCTION webhooks_from_events();
