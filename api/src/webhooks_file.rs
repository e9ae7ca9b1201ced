//! `herald webhooks apply --file webhooks.yaml`: the file's endpoints sent to
//! a running node (`POST /v1/webhooks/apply`), which checks them all and
//! makes the app's endpoints match; the plan is printed.
//!
//! The file is YAML (JSON is YAML too):
//!
//! ```yaml
//! webhooks:
//!   - url: https://crm.example.com/hooks/herald
//!     event_types: [user.*]
//!     auth: {bearer: "${CRM_TOKEN}"}
//!   - id: 0192f0c4-…            # this endpoint, whatever its URL
//!     url: https://audit.example.com/in
//!     enabled: false
//! ```
//!
//! `${NAME}` in a string is replaced by the environment variable `NAME` (an
//! unset one is an error), so credentials need not be written in the file.

#![allow(clippy::print_stdout)] // a command line: its output is the point

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::ApplyArgs;

pub async fn run(args: &ApplyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let declared = parse(&text, &|name| std::env::var(name).ok())
        .with_context(|| format!("{} is not a webhooks file", args.file.display()))?;
    let http = crate::node_client::client(Duration::from_secs(300))?;
    let url = crate::node_client::route(&args.url, &["v1", "webhooks", "apply"])?;
    let response = http
        .post(url)
        .bearer_auth(&args.token)
        .json(&json!({"webhooks": declared, "dry_run": args.dry_run}))
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let mut why = format!(
            "nothing was changed: {status} {}",
            body["detail"].as_str().unwrap_or_default()
        );
        for e in body["errors"].as_array().into_iter().flatten() {
            why.push_str(&format!(
                "\n  {}: {}",
                e["field"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            ));
        }
        anyhow::bail!(why);
    }
    print!("{}", describe(&body));
    Ok(())
}

/// The file's entries, `${NAME}`s replaced.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Vec<Value>> {
    let mut file: Value = serde_norway::from_str(text)?;
    let entries = file
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
        .context("the file must hold `webhooks:`, a list of endpoints")?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries.drain(..) {
        out.push(substitute(entry, env)?);
    }
    Ok(out)
}

fn substitute(value: Value, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Value> {
    Ok(match value {
        Value::String(s) => Value::String(expand(&s, env)?),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| substitute(v, env))
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, substitute(v, env)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => other,
    })
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let value =
            env(name).with_context(|| format!("the environment variable {name} is not set"))?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The plan, one line per endpoint.
pub fn describe(plan: &Value) -> String {
    let mut out = String::new();
    let applied = plan["applied"].as_bool().unwrap_or(false);
    for step in plan["steps"].as_array().into_iter().flatten() {
        let action = step["action"].as_str().unwrap_or_default();
        let sign = match action {
            "create" => '+',
            "update" => '~',
            "delete" => '-',
            _ => '=',
        };
        let id = step["id"].as_str().unwrap_or("(new)");
        let url = step["url"].as_str().unwrap_or_default();
        out.push_str(&format!("{sign} {action:<9} {id} {url}"));
        let changes: Vec<&str> = step["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !changes.is_empty() {
            out.push_str(&format!(" ({})", changes.join(", ")));
        }
        if let Some(secret) = step["secret"].as_str() {
            out.push_str(&format!("\n    signing secret (shown once): {secret}"));
        }
        out.push('\n');
    }
    out.push_str(if applied {
        "applied\n"
    } else {
        "dry run: nothing was changed\n"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_entries_with_environment_values() {
        let text = "webhooks:\n  - url: https://h.example/in\n    auth: {bearer: \"tok-${T}\"}\n    ordered: true\n";
        let env = |name: &str| (name == "T").then(|| "42".to_owned());
        let entries = parse(text, &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            entries,
            vec![
                json!({"url": "https://h.example/in", "auth": {"bearer": "tok-42"}, "ordered": true})
            ]
        );
        let unset = parse("webhooks:\n  - url: \"${NOPE}\"\n", &env);
        assert!(unset.is_err_and(|e| format!("{e:#}").contains("NOPE")));
        assert!(parse("hooks: []", &env).is_err());
    }

    #[test]
    fn the_plan_reads_one_line_per_endpoint() {
        let plan = json!({"applied": false, "steps": [
            {"action": "create", "id": null, "url": "https://a/", "changes": []},
            {"action": "update", "id": "x", "url": "https://b/", "changes": ["url", "auth"]},
        ]});
        assert_eq!(
            describe(&plan),
            "+ create    (new) https://a/\n~ update    x https://b/ (url, auth)\ndry run: nothing was changed\n"
        );
    }
}
