//! The operator's subcommands: `verify`, `export`, `projections status`,
//! `projections rebuild` (each opens the database directly, no server
//! needed) and `changes …` (a client of a running server).

#![allow(clippy::print_stdout)] // a command line: its output is the point

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::ids::AppId;
use infra::audit::{apps_in_log, verify_app_with};
use infra::database;
use infra::privacy::{KeyRing, Personal, SealedStore};
use infra::runtime::{self, faults};
use infra::secrets::Secret;
use infra::store::{EventFilter, SqlEventStore};
use infra::vault::{self, Vault};
use projections::db::Db;

use crate::cli::{ChangesCommand, DatabaseArgs, ExportArgs, FaultArgs, RebuildArgs, VerifyArgs};
use crate::progress_line::ProgressLine;
use crate::pump::buffer::{Buffer, id_of, list_dead_letters};
use crate::pump::client::ChangesClient;
use crate::pump::{Pump, retry_dead_letters};

/// The database, and the log with personal values opened under the
/// subjects' keys (sealed with the secret key of the data directory or
/// `HERALD_SECRET_KEY`: the same as the server's).
async fn open(
    args: &DatabaseArgs,
    keys: Keys,
) -> anyhow::Result<(Db, Arc<SealedStore>, Arc<Personal>)> {
    let config = args.config();
    let url = config.database_url.as_ref().map(|u| u.expose().as_str());
    // An operator's command reads a database; it never makes an empty one.
    let file = config.data_dir.join(database::SQLITE_FILE);
    anyhow::ensure!(
        url.is_some() || file.exists(),
        "no Herald database at {} (is --data-dir right? `herald serve` or `herald migrate` \
         creates one)",
        file.display()
    );
    let db = database::open(url, &config.data_dir, &config.db).await?;
    anyhow::ensure!(
        database::is_migrated(&db).await.unwrap_or(false),
        "the database is not migrated by this version: run `herald migrate` first"
    );
    let key = match keys {
        Keys::Needed => secret_key(&config, &db).await?,
        Keys::Unused => ephemeral_key(),
    };
    let vault = Vault::new(db.clone(), &key);
    let personal = Personal::new(KeyRing::new(db.clone(), vault, infra::clock::system()));
    let stored = Arc::new(SqlEventStore::open(db.clone()).await?);
    let store = Arc::new(SealedStore::new(stored, personal.clone()));
    Ok((db, store, personal))
}

/// The server's secret key (configured, or saved in the data directory),
/// never a new one: a command must not leave a key behind. Without it, a
/// log whose personal values are sealed cannot be read: say so.
async fn secret_key(config: &infra::config::Config, db: &Db) -> anyhow::Result<Secret<String>> {
    if let Some(key) = vault::saved_key(config.secret_key.as_ref(), &config.data_dir) {
        return Ok(key);
    }
    let sealed: Option<i64> = projections::on_db!(db, |pool| {
        sqlx::query_scalar("SELECT generation FROM subject_keys LIMIT 1")
            .fetch_optional(pool)
            .await?
    });
    anyhow::ensure!(
        sealed.is_none(),
        "this log holds personal values sealed with the server's secret key: give it \
         (--secret-key or HERALD_SECRET_KEY), or the server's --data-dir, where it is saved"
    );
    // Nothing is sealed: any key opens nothing.
    Ok(ephemeral_key())
}

fn ephemeral_key() -> Secret<String> {
    Secret::new(URL_SAFE_NO_PAD.encode(infra::secrets::random_bytes::<32>()))
}

/// Whether a command opens personal values (and so needs the secret key).
#[derive(Clone, Copy)]
enum Keys {
    Needed,
    /// The command reads nothing sealed (verification hashes what is stored).
    Unused,
}

/// Prints one JSON line per app; fails when any chain is broken.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let (db, store, _) = open(&args.database, Keys::Unused).await?;
    let store = store.stored();
    let apps = match args.app {
        Some(id) => vec![AppId(id)],
        None => apps_in_log(&db).await?,
    };
    let total = infra::audit::count_events(&db, args.app.map(AppId)).await?;
    if let Some(id) = args.app
        && total == 0
    {
        // Every app's log starts with its creation: this one is not here.
        db.close().await;
        anyhow::bail!("the log holds no app {id} (check --app and the database)");
    }
    let mut progress = ProgressLine::new();
    let started = Instant::now();
    let mut done = 0u64;
    let mut broken = 0;
    for app in apps {
        let report = verify_app_with(store.as_ref(), app, |checked| {
            let so_far = done + checked;
            let rate = so_far as f64 / started.elapsed().as_secs_f64().max(1e-3);
            progress.show(so_far, total, rate);
        })
        .await?;
        done += report.events();
        if !report.is_ok() {
            broken += 1;
        }
        output_line(&serde_json::to_string(&report)?);
    }
    progress.finish();
    db.close().await;
    anyhow::ensure!(broken == 0, "{broken} chain(s) broken");
    Ok(())
}

/// Writes the app's events as NDJSON, page by page.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let (db, store, personal) = open(&args.database, Keys::Needed).await?;
    let store = store.stored();
    let app = AppId(args.app);
    // What the export will write, for the progress line.
    let micros =
        |t: Option<chrono::DateTime<chrono::Utc>>, none| t.map_or(none, |t| t.timestamp_micros());
    let total: i64 = projections::on_db!(&db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE app_id = $1 AND recorded_at >= $2 \
             AND recorded_at < $3",
        )
        .bind(app.0)
        .bind(micros(args.since, i64::MIN))
        .bind(micros(args.until, i64::MAX))
        .fetch_one(pool)
        .await?
    });
    let written = write_export(&args, app, store, &personal, total).await;
    if written.is_err()
        && let Some(path) = &args.output
    {
        // No partial file is left to be taken for an export.
        let _ = std::fs::remove_file(path);
    }
    let written = written?;
    eprintln!("herald: exported {written} events");
    db.close().await;
    Ok(())
}

/// Writes the export; answers how many events it wrote.
async fn write_export(
    args: &ExportArgs,
    app: AppId,
    store: &Arc<dyn infra::store::EventStore>,
    personal: &Personal,
    total: i64,
) -> anyhow::Result<u64> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut filter = EventFilter {
        since: args.since,
        until: args.until,
        ..EventFilter::default()
    };
    let started = Instant::now();
    let mut progress = ProgressLine::new();
    let mut written = 0u64;
    loop {
        let page = store.read_filtered(app, &filter, 5000).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        filter.after = last;
        let opened = personal.opened_bodies(&page).await?;
        for (event, opened) in page.into_iter().zip(opened) {
            serde_json::to_writer(&mut out, &crate::routes::EventBody::exported(event, opened))?;
            out.write_all(b"\n")?;
            written += 1;
        }
        progress.show(
            written,
            total as u64,
            written as f64 / started.elapsed().as_secs_f64(),
        );
    }
    out.flush()?;
    progress.finish();
    Ok(written)
}

/// Prints each read model's status as a JSON line.
pub async fn projections_status(args: DatabaseArgs) -> anyhow::Result<()> {
    let (db, store, _) = open(&args, Keys::Unused).await?;
    for status in infra::runtime::status::status(
        &db,
        store.as_ref(),
        &runtime::registered(),
        infra::clock::system().now(),
    )
    .await?
    {
        output_line(&serde_json::to_string(&status)?);
    }
    db.close().await;
    Ok(())
}

/// Rebuilds one read model (or all) beside the live ones, then switches.
pub async fn projections_rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let (db, store, personal) = open(&args.database, Keys::Needed).await?;
    let all = runtime::read_models();
    let chosen: Vec<_> = match &args.name {
        Some(name) => {
            let found: Vec<_> = all.iter().filter(|p| p.name() == name).cloned().collect();
            anyhow::ensure!(
                !found.is_empty(),
                "no read model named {name:?}; there are: {} (reactor feeds — {} — are \
                 not rebuilt: they record what was handed out and delivered)",
                all.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
                runtime::reactor_feeds(personal.clone(), None)
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            found
        }
        None => all,
    };
    let mut progress = ProgressLine::new();
    let rebuilt = infra::runtime::rebuild::rebuild(&db, store.as_ref(), &chosen, |p| {
        progress.step(p.step);
        progress.show(p.applied, p.total, p.events_per_second);
    })
    .await?;
    progress.finish();
    eprintln!(
        "herald: rebuilt {} in {:.1} s ({} events, {:.0} events/s); switched in at position {} \
         (writes waited at most {} ms for the switch)",
        rebuilt.projections.join(", "),
        rebuilt.seconds,
        rebuilt.events,
        rebuilt.events as f64 / rebuilt.seconds.max(1e-9),
        rebuilt.position,
        rebuilt.longest_lock.as_millis()
    );
    let steps: Vec<String> = rebuilt
        .steps
        .iter()
        .map(|(step, took)| format!("{step} {:.1} s", took.as_secs_f64()))
        .collect();
    if !steps.is_empty() {
        eprintln!("herald: steps: {}", steps.join(", "));
    }
    db.close().await;
    Ok(())
}

/// `herald projections skip|retry`: asks the node running the projection
/// to skip the event it is stopped at for an app, or to retry it.
pub async fn projections_fault(args: FaultArgs, action: faults::Action) -> anyhow::Result<()> {
    let (db, _, _) = open(&args.database, Keys::Unused).await?;
    anyhow::ensure!(
        runtime::registered()
            .iter()
            .any(|r| r.projection.name() == args.name),
        "no projection named {:?}",
        args.name
    );
    let app = domain::ids::AppId(args.app);
    let found = faults::request(&db, &args.name, app, args.position, action).await?;
    db.close().await;
    anyhow::ensure!(
        found,
        "{} is not stopped for app {}{} (see `herald projections status`)",
        args.name,
        args.app,
        args.position
            .map(|p| format!(" at position {p}"))
            .unwrap_or_default()
    );
    eprintln!(
        "herald: asked {} to {} for app {}; the node running it acts within a second \
         (`herald projections status` shows when the fault is gone)",
        args.name,
        match action {
            faults::Action::Skip => "skip the event it is stopped at",
            faults::Action::Retry => "retry the event it is stopped at",
        },
        args.app
    );
    Ok(())
}

/// `herald changes …`: the pump and its dead letters.
pub async fn changes(command: ChangesCommand) -> anyhow::Result<()> {
    match command {
        ChangesCommand::Pump(args) => {
            let mut pump = Pump {
                client: ChangesClient::new(
                    &args.url,
                    &args.token,
                    Duration::from_secs(args.max_wait_seconds),
                )?,
                queue: args.queue.clone(),
                limit: args.limit.max(1),
                buffer: Buffer::open(&args.buffer.buffer_dir)?,
                handler: args.handler.handler(),
                on_error: args.on_error,
            };
            let report = pump.run().await?;
            eprintln!(
                "herald: delivered {} change(s), {} to the dead letters; the queue is empty",
                report.delivered, report.dead_lettered
            );
            Ok(())
        }
        ChangesCommand::DeadLetters(args) => {
            for (name, letter) in list_dead_letters(&args.buffer_dir)? {
                let line = serde_json::json!({"file": name, "id": id_of(&letter.change),
                    "position": letter.change["position"], "error": letter.error,
                    "attempts": letter.attempts, "failed_at": letter.failed_at});
                output_line(&line.to_string());
            }
            Ok(())
        }
        ChangesCommand::RetryDeadLetters(args) => {
            let (delivered, failing) =
                retry_dead_letters(&args.buffer.buffer_dir, &args.handler.handler()).await?;
            eprintln!("herald: {delivered} dead letter(s) delivered, {failing} still failing");
            anyhow::ensure!(failing == 0, "{failing} dead letter(s) still failing");
            Ok(())
        }
    }
}

/// Writes a line of a command's output. A reader that went away (`| head`)
/// ends the command quietly, as it ends any Unix tool, rather than with a
/// panic.
pub(crate) fn output_line(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("herald: cannot write the output: {e}");
        std::process::exit(1);
    }
}
