-- Feature flags as last set (projection `feature_flags`): the settings as
-- the domain's JSON (description, enabled, conditions, metadata).
CREATE TABLE feature_flags (
    app_id      UUID    NOT NULL,
    name        TEXT    NOT NULL,
    settings    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    version     BIGINT  NOT NULL,
    PRIMARY KEY (app_id, name)
);
