-- Feature flags as last set (projection `feature_flags`): the settings as
-- the domain's JSON (description, enabled, conditions, metadata).
CREATE TABLE feature_flags (
    app_id      BLOB    NOT NULL,
    name        TEXT    NOT NULL,
    settings    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);
