//! `herald forget --user ID`: an erasure request, as a client of a running
//! node (`POST /v1/users/{id}/forget`; the node destroys the keys, records
//! the events and scrubs its models).

#![allow(clippy::print_stdout)] // a command line: its output is the point

use std::time::Duration;

use anyhow::Context;

use crate::cli::ForgetArgs;

pub async fn run(args: &ForgetArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut url =
        reqwest::Url::parse(&args.url).with_context(|| format!("{:?} is not a URL", args.url))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{:?} cannot be a base URL", args.url))?
        .pop_if_empty()
        .extend(["v1", "users", args.user.as_str(), "forget"]);
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
    println!("{body}");
    Ok(())
}
