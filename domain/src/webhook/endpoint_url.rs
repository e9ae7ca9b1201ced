//! Where an endpoint's messages go: an absolute `http(s)` URL, whose path
//! and query may hold `{{placeholder}}`s (the same names as payload
//! templates). Each message's URL is rendered from its event, every value
//! percent-encoded, so a value can never change the host, add a path
//! segment or start another query parameter. The scheme, host and port are
//! fixed when the endpoint is configured, and the address guard checks
//! them then.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{PLACEHOLDERS, Piece, as_text, pieces};
use crate::error::DomainError;

pub const MAX_URL_BYTES: usize = 2048;

/// An absolute `http` or `https` URL with a host and no credentials in it
/// (those go in `auth`, which is kept out of the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = |m: String| Err(DomainError::invalid("url", m));
        if raw.len() > MAX_URL_BYTES {
            return invalid(format!("must be at most {MAX_URL_BYTES} bytes"));
        }
        let mut names = Vec::new();
        for piece in pieces(raw) {
            if let Piece::Placeholder(name) = piece {
                if !PLACEHOLDERS.contains(&name) || name == "event.data" {
                    return invalid(format!("unknown placeholder {{{{{name}}}}} in the URL"));
                }
                names.push(name);
            }
        }
        // Checked with every placeholder standing for a plain value.
        let sample = render_with(raw, &|_| Value::String("x".into()));
        let Ok(url) = url::Url::parse(&sample) else {
            return invalid("must be an absolute http(s) URL".into());
        };
        if !matches!(url.scheme(), "http" | "https") {
            return invalid("must use http or https".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return invalid("must name a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return invalid("must not carry credentials; use auth instead".into());
        }
        if url.fragment().is_some() {
            return invalid("must not have a fragment".into());
        }
        if names.is_empty() {
            return Ok(Self(url.to_string()));
        }
        if let Some(open) = raw.find("{{")
            && open < authority_end(raw)
        {
            return invalid(
                "placeholders may stand in the path and query only, not in the scheme, host or port"
                    .into(),
            );
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn has_placeholders(&self) -> bool {
        pieces(&self.0)
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(_)))
    }

    /// Whether the URL holds the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        pieces(&self.0)
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(n) if *n == name))
    }

    /// The URL of one message: each placeholder's value (as text, `null`
    /// as nothing) percent-encoded in place.
    pub fn render(&self, lookup: &dyn Fn(&str) -> Value) -> String {
        render_with(&self.0, lookup)
    }
}

/// Where the authority (`host:port`) of an absolute URL ends.
fn authority_end(raw: &str) -> usize {
    let start = raw.find("://").map_or(0, |i| i + 3);
    raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i)
}

fn render_with(raw: &str, lookup: &dyn Fn(&str) -> Value) -> String {
    pieces(raw)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(t) => t.to_owned(),
            Piece::Placeholder(name) => encode(&as_text(&lookup(name))),
        })
        .collect()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn url(raw: &str) -> EndpointUrl {
        EndpointUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn placeholders_render_percent_encoded_in_path_and_query() {
        let u = url("https://crm.example/users/{{user.id}}?status={{user.status}}&n={{user.name}}");
        assert!(u.has_placeholders());
        let rendered = u.render(&|name| match name {
            "user.id" => json!("a/b?c"),
            "user.status" => json!("active"),
            _ => Value::Null,
        });
        assert_eq!(
            rendered,
            "https://crm.example/users/a%2Fb%3Fc?status=active&n="
        );
        assert_eq!(
            url::Url::parse(&rendered).map(|u| u.host_str().map(str::to_owned)),
            Ok(Some("crm.example".to_owned()))
        );
    }

    #[test]
    fn a_value_cannot_escape_its_place() {
        let u = url("https://h.example/x?u={{user.id}}");
        let rendered = u.render(&|_| json!("1&admin=true#frag @evil.example/"));
        let parsed = url::Url::parse(&rendered).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.host_str(), Some("h.example"));
        assert_eq!(parsed.query_pairs().count(), 1);
        assert_eq!(parsed.fragment(), None);
        assert_eq!(
            parsed.query_pairs().next().map(|(_, v)| v.into_owned()),
            Some("1&admin=true#frag @evil.example/".to_owned())
        );
    }

    #[test]
    fn placeholders_are_refused_outside_path_and_query_and_when_unknown() {
        for raw in [
            "https://{{user.id}}.example/",
            "https://h.example:{{user.id}}/",
            "https://h.example/{{user.nope}}",
            "https://h.example/{{event.data}}",
        ] {
            assert!(EndpointUrl::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn a_url_without_placeholders_is_normalised_as_before() {
        assert_eq!(url("HTTPS://H.example").as_str(), "https://h.example/");
        assert!(!url("https://h.example/a").has_placeholders());
    }
}
