-- The lineage projection: datasets, runs, commits, model versions and deployments as a graph.
-- Every edge points from a thing to what it was made from, so "upstream" follows edges forward.
-- Keys are stable: a version is keyed by its model's stream id (not its name, which may change).
CREATE TABLE lineage_nodes (
    node_key   text    PRIMARY KEY,  -- dataset:N@V, run:ID, commit:REPO@SHA, version:STREAM/N, ...
    kind       text    NOT NULL,     -- dataset, run, commit, version, deployment
    attrs      jsonb   NOT NULL,     -- what is known of it: uri, digest, source, experiment, ...
    recorded   boolean NOT NULL,     -- false while only referenced (a run id no run event named)
    stream_id  text,                 -- versions: their model's stream
    version    integer,
    stage      text,
    aliases    text[],
    deleted    boolean NOT NULL DEFAULT false
);
CREATE INDEX lineage_nodes_version ON lineage_nodes (stream_id, version) WHERE kind = 'version';

CREATE TABLE lineage_edges (
    src       text NOT NULL,
    dst       text NOT NULL,
    kind      text NOT NULL,  -- trained_on, produced_by, derived_from, built_from, deployed_as
    relation  text NOT NULL,  -- derived_from: fine_tuned, distilled, ensembled...; else ''
    PRIMARY KEY (src, dst, kind)
);
CREATE INDEX lineage_edges_dst ON lineage_edges (dst, src);

-- Each model stream's current name and deletion, and the last stream version applied here.
CREATE TABLE lineage_models (
    stream_id       text    PRIMARY KEY,
    name            text    NOT NULL,
    deleted         boolean NOT NULL,
    stream_version  integer NOT NULL
);
-- Every name a model has held (names are never reused): a former name still finds its versions.
CREATE TABLE lineage_model_names (
    name       text PRIMARY KEY,
    stream_id  text NOT NULL
);
