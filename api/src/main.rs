//! The `herald` binary.

use std::process::ExitCode;

use api::cli::{Cli, Command, ProjectionsCommand, WebhooksCommand};
use clap::Parser;
use infra::herald::Herald;
use infra::{database, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {}", database::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            let _telemetry = telemetry::init_with(
                config.otlp_endpoint.as_deref(),
                config.otlp_ca_file.as_deref(),
                config.log_json,
            )?;
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            let started = Herald::start(config).await?;
            if let Some(token) = &started.new_root_token {
                eprintln!(
                    "\nA root token was generated and saved in {}. It is shown only this once:\n\n    {}\n",
                    started
                        .herald
                        .config()
                        .data_dir
                        .join(infra::root_token::FILE)
                        .display(),
                    token.expose()
                );
            }
            tracing::info!(address = %listener.local_addr()?, backend = ?started.herald.db().backend(), "herald is listening");
            api::serve(listener, started.herald, api::server::shutdown_signal()).await?;
            Ok(())
        }
        Command::Migrate(args) => {
            let _telemetry = telemetry::init(None, false)?;
            let config = args.config();
            let url = config.database_url.as_ref().map(|u| u.expose().as_str());
            let db = database::open(url, &config.data_dir, &config.db).await?;
            database::migrate(&db).await?;
            db.close().await;
            eprintln!("herald: the database is migrated");
            Ok(())
        }
        Command::Verify(args) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::verify(args).await
        }
        Command::Export(args) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::export(args).await
        }
        Command::Projections(ProjectionsCommand::Status(args)) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::projections_status(args).await
        }
        Command::Healthcheck(args) => api::healthcheck::run(&args).await,
        Command::Forget(args) => api::forget::run(&args).await,
        Command::Webhooks(WebhooksCommand::Apply(args)) => api::webhooks_file::run(&args).await,
        Command::Changes(command) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::changes(command).await
        }
        Command::Projections(ProjectionsCommand::Rebuild(args)) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::projections_rebuild(args).await
        }
        Command::Projections(ProjectionsCommand::Skip(args)) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::projections_fault(args, infra::runtime::faults::Action::Skip).await
        }
        Command::Projections(ProjectionsCommand::Retry(args)) => {
            let _telemetry = telemetry::init(None, false)?;
            api::admin::projections_fault(args, infra::runtime::faults::Action::Retry).await
        }
    }
}
