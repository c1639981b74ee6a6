-- Access control's lookup tables: who holds which token (by its sha256 only) and who owns which
-- model. A trigger keeps them from the events as they are appended, in the same transaction, so
-- they can never disagree with the event store; the token caches of API processes are told of
-- every token change by NOTIFY registrar_access (delivered at commit).
CREATE TABLE access_tokens (
    token_hash  text        PRIMARY KEY,
    token_id    uuid        NOT NULL UNIQUE,
    user_name   text        NOT NULL,
    role        text        NOT NULL,
    label       text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    issued_by   text        NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text
);
CREATE INDEX access_tokens_user ON access_tokens (user_name);

-- Owners of a model (by stream id, so a rename keeps them): whoever registered it, and whoever
-- was granted it since.
CREATE TABLE access_owners (
    model_id    text        NOT NULL,
    user_name   text        NOT NULL,
    since       timestamptz NOT NULL,
    granted_by  text        NOT NULL,
    PRIMARY KEY (model_id, user_name)
);
CREATE INDEX access_owners_user ON access_owners (user_name);

CREATE FUNCTION access_from_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := NEW.payload::jsonb;
BEGIN
    IF NEW.type = 'TokenIssued' THEN
        INSERT INTO access_tokens (token_hash, token_id, user_name, role, label, issued_at,
                                   issued_by)
        VALUES (p->>'token_hash', (p->>'token_id')::uuid, p->>'user', p->>'role', p->>'label',
                NEW.recorded_at, NEW.actor)
        ON CONFLICT DO NOTHING;
        PERFORM pg_notify('registrar_access', NEW.type);
    ELSIF NEW.type = 'TokenRevoked' THEN
        UPDATE access_tokens SET revoked_at = NEW.recorded_at, revoked_by = NEW.actor
        WHERE token_id = (p->>'token_id')::uuid AND revoked_at IS NULL;
        PERFORM pg_notify('registrar_access', NEW.type);
    ELSIF NEW.type = 'OwnershipGranted' THEN
        INSERT INTO access_owners (model_id, user_name, since, granted_by)
        VALUES (p->>'model_id', p->>'user', NEW.recorded_at, NEW.actor)
        ON CONFLICT DO NOTHING;
    ELSIF NEW.type = 'OwnershipRevoked' THEN
        DELETE FROM access_owners WHERE model_id = p->>'model_id' AND user_name = p->>'user';
    ELSIF NEW.type = 'ModelRegistered' THEN
        INSERT INTO access_owners (model_id, user_name, since, granted_by)
        VALUES (NEW.stream_id, NEW.actor, NEW.recorded_at, NEW.actor)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

-- The WHEN clause is evaluated without entering PL/pgSQL: other events pay next to nothing.
CREATE TRIGGER events_maintain_access AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type IN ('TokenIssued', 'TokenRevoked', 'OwnershipGranted', 'OwnershipRevoked',
                       'ModelRegistered'))
    EXECUTE FUNCTION access_from_events();

-- Models registered before this migration are owned by whoever registered them.
INSERT INTO access_owners (model_id, user_name, since, granted_by)
SELECT stream_id, actor, recorded_at, actor FROM events WHERE type = 'ModelRegistered'
ON CONFLICT DO NOTHING;
