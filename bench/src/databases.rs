//! Fresh databases for a benchmark run, with Herald's durability settings.

use infra::database::{self, DbOptions};
use projections::db::{Db, PgDb};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A fresh, migrated Herald database; dropped (schema or directory) by `cleanup`.
pub struct Fresh {
    pub db: Db,
    pub dir: std::path::PathBuf,
    pub schema: Option<String>,
    pg_url: String,
}

pub async fn fresh(backend: Backend, pg_url: &str, connections: u32) -> anyhow::Result<Fresh> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("herald-bench-{id}"));
    std::fs::create_dir_all(&dir)?;
    let options = DbOptions {
        max_connections: connections,
        ..DbOptions::default()
    };
    let (db, schema) = match backend {
        Backend::Sqlite => (database::open_sqlite(&dir, &options).await?, None),
        Backend::Postgres => {
            let schema = format!("bench_{id}");
            let mut admin = pg_url.parse::<PgConnectOptions>()?.connect().await?;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .await?;
            let connect = pg_url
                .parse::<PgConnectOptions>()?
                .options([("search_path", schema.as_str())]);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(connections)
                .connect_with(connect)
                .await?;
            (
                Db::Postgres(PgDb {
                    pool,
                    schema: schema.clone(),
                }),
                Some(schema),
            )
        }
    };
    database::migrate(&db).await?;
    Ok(Fresh {
        db,
        dir,
        schema,
        pg_url: pg_url.to_owned(),
    })
}

impl Fresh {
    pub async fn cleanup(self) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some(schema) = self.schema {
            let mut admin = self.pg_url.parse::<PgConnectOptions>()?.connect().await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}
