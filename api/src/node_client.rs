//! The command lines that act through a running node (`herald forget`,
//! `herald webhooks apply`): one HTTP client and one way to name a route
//! under the node's base URL.

use std::time::Duration;

use anyhow::Context;

/// A client that follows no redirects (a token is never sent elsewhere).
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()?)
}

/// `base` with `segments` appended to its path, each percent-encoded.
pub fn route(base: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("{base:?} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
