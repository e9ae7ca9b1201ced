//! Where receivers call back: Herald's public URL (`HERALD_PUBLIC_URL`),
//! and the callback URLs issued under it for `{{callback.url}}` — a token
//! of 256 random bits each (`hcb_…`), of which the database keeps only the
//! SHA-256 (`projections::webhooks::callbacks`).

use std::time::Duration;

use projections::webhooks::callbacks::{IssueCallback, Issued};

use crate::secrets::{random_bytes, sha256_hex};

/// The path callback URLs take under the public URL (the route
/// `POST /v1/callbacks/{token}`).
pub const PATH: &str = "/v1/callbacks/";
/// What every callback token starts with.
pub const TOKEN_PREFIX: &str = "hcb_";
/// How long a callback URL stays good after its message was last sent.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The address receivers reach this Herald at: an absolute `http(s)` URL,
/// perhaps with a path (behind a proxy), without query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw.trim())
            .map_err(|e| format!("{raw:?} is not an absolute URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{raw:?} must use http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{raw:?} must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{raw:?} must not carry credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{raw:?} must not have a query or a fragment"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Issues callback URLs under a public URL.
pub struct Links {
    public_url: PublicUrl,
}

impl Links {
    pub fn new(public_url: PublicUrl) -> Self {
        Self { public_url }
    }
}

impl IssueCallback for Links {
    fn issue(&self) -> Issued {
        let token = new_token();
        Issued {
            url: format!("{}{PATH}{token}", self.public_url.as_str()),
            token_sha256: sha256_hex(token.as_bytes()),
        }
    }
}

/// `hcb_` and 256 random bits, base64url.
fn new_token() -> String {
    use base64::Engine;
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

/// Whether `token` could be one Herald issued (prefix and length), so
/// that garbage is turned away without a database read.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_keeps_its_path_without_the_trailing_slash() {
        let url =
            PublicUrl::parse("https://api.example.com/herald/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.as_str(), "https://api.example.com/herald");
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "https://u:p@example.com",
            "https://example.com/?a=1",
            "https://example.com/#x",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issued_urls_are_distinct_and_keep_only_the_hash() {
        let links =
            Links::new(PublicUrl::parse("http://h.example").unwrap_or_else(|e| panic!("{e}")));
        let (a, b) = (links.issue(), links.issue());
        assert_ne!(a.url, b.url);
        let token = a
            .url
            .strip_prefix("http://h.example/v1/callbacks/")
            .unwrap_or_else(|| panic!("{}", a.url));
        assert!(well_formed(token), "{token}");
        assert_eq!(a.token_sha256, sha256_hex(token.as_bytes()));
        assert!(!well_formed("hcb_short") && !well_formed(&token.replace("hcb_", "hk_x")));
    }
}
