//! `session create`, `list` and `rm`: one API call each.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::Api;
use super::human;
use super::watch::note;
use super::{CreateArgs, Network};

/// `POST /v1/sessions`.
#[derive(Debug, Serialize)]
struct NewSession {
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network>,
}

/// The fields of a session view the table shows.
#[derive(Debug, Deserialize)]
struct SessionRow {
    id: String,
    state: String,
    #[serde(default)]
    end_reason: Option<String>,
    #[serde(default)]
    provisioned: bool,
    #[serde(default)]
    execs: u64,
    expires_at_ms: u64,
}

pub async fn create(api: &Api, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let body = NewSession {
        ttl_secs: args.ttl,
        idle_timeout_secs: args.idle,
        env: args.env.into_iter().collect(),
        labels: args.labels.into_iter().collect(),
        provider: args.provider,
        network: args.network,
    };
    let view = api
        .create_session(&body)
        .await
        .context("creating a session")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        let id = view
            .get("id")
            .and_then(Value::as_str)
            .context("the host's answer has no session id")?;
        writeln!(out, "{id}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(api: &Api, json: bool) -> anyhow::Result<ExitCode> {
    let answer = api.list_sessions().await.context("listing sessions")?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<SessionRow> = serde_json::from_value(
        answer
            .get("sessions")
            .cloned()
            .context("the host's answer has no `sessions`")?,
    )
    .context("reading the host's session list")?;
    out.write_all(table(&rows, now_ms()).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Ends each session; reports each failure and goes on with the others.
pub async fn remove(api: &Api, ids: &[String]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for id in ids {
        match api.delete_session(id).await {
            Ok(()) => writeln!(std::io::stdout().lock(), "{id}")?,
            Err(err) => {
                failed += 1;
                note(&format!("{id}: {err}"));
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} session(s) not removed", ids.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds since the Unix epoch, as the API's timestamps.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The session list as an aligned table, `now_ms` giving "expires in".
fn table(rows: &[SessionRow], now_ms: u64) -> String {
    if rows.is_empty() {
        return "no sessions\n".to_owned();
    }
    let header = ["ID", "STATE", "PROVISIONED", "EXECS", "EXPIRES IN"].map(str::to_owned);
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            let state = match &row.end_reason {
                Some(reason) => format!("{} ({reason})", row.state),
                None => row.state.clone(),
            };
            let expires = if row.state != "active" {
                "-".to_owned()
            } else if row.expires_at_ms <= now_ms {
                "expired".to_owned()
            } else {
                human::duration(Duration::from_millis(row.expires_at_ms - now_ms))
            };
            [
                row.id.clone(),
                state,
                if row.provisioned { "yes" } else { "no" }.to_owned(),
                row.execs.to_string(),
                expires,
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_and_says_when_sessions_expire() {
        let rows: Vec<SessionRow> = serde_json::from_str(
            r#"[
                {"id":"s-1","state":"active","provisioned":true,"execs":2,"expires_at_ms":3725000,"owner":"a"},
                {"id":"s-long-id","state":"ended","end_reason":"ttl","provisioned":false,"execs":0,"expires_at_ms":0},
                {"id":"s-3","state":"active","provisioned":false,"execs":0,"expires_at_ms":1000}
            ]"#,
        )
        .unwrap();
        assert_eq!(
            table(&rows, 5_000),
            "ID         STATE        PROVISIONED  EXECS  EXPIRES IN\n\
             s-1        active       yes          2      1h 02m\n\
             s-long-id  ended (ttl)  no           0      -\n\
             s-3        active       no           0      expired\n"
        );
        assert_eq!(table(&[], 0), "no sessions\n");
    }

    #[test]
    fn only_given_fields_are_sent() {
        let body = NewSession {
            ttl_secs: Some(60),
            idle_timeout_secs: None,
            env: BTreeMap::new(),
            labels: [("team".to_owned(), "a".to_owned())].into(),
            provider: None,
            network: Some(Network::None),
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"ttl_secs": 60, "labels": {"team": "a"}, "network": "none"})
        );
    }
}
