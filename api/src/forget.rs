//! `herald forget --user ID`: an erasure request, as a client of a running
//! node (`POST /v1/users/{id}/forget`; the node destroys the keys, records
//! the events and scrubs its models).

use std::time::Duration;

use anyhow::Context;

use crate::cli::ForgetArgs;

pub async fn run(args: &ForgetArgs) -> anyhow::Result<()> {
    let http = crate::node_client::client(Duration::from_secs(120))?;
    let url = crate::node_client::route(&args.url, &["v1", "users", &args.user, "forget"])?;
    let response = http
        .post(url)
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "the node refused to forget {:?}: {status} {body}",
        args.user
    );
    crate::admin::output_line(&body.to_string());
    Ok(())
}
