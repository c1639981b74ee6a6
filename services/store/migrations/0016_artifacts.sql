-- The artifact store. A version's sealed files are named by an ArtifactsSealed event (its
-- manifest digest, file count and bytes), which the current-state read model now shows; files
-- uploaded to a version not sealed yet are staged here, by path, until the seal lists them.
ALTER TABLE cs_versions ADD COLUMN artifacts jsonb;

CREATE TABLE artifact_uploads (
    stream_id   text        NOT NULL,
    version     int         NOT NULL,
    path        text        NOT NULL,
    sha256      text        NOT NULL,
    size        bigint      NOT NULL,
    uploaded_by text        NOT NULL,
    uploaded_at timestamptz NOT NULL,
    PRIMARY KEY (stream_id, version, path)
);
CREATE INDEX artifact_uploads_blob ON artifact_uploads (sha256);
