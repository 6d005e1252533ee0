//! `paddock plugin …`: what plugin authors and operators use to see and try
//! plugins without a running host.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use paddock_sdk::agent::{ParseContext, ProcessEnd, RunSpec, UsageTotals};
use wasmtime::component::Component;

use crate::config::Config;
use crate::plugin::{ComponentShape, PluginHost, sha256_hex};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the loaded plugins: name, kind, version, source, hash.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what a `.wasm` file is (world, version, imports, exports,
    /// manifest), or why it cannot load.
    Inspect { file: PathBuf },
    /// Feed a transcript (a file, or `-` for stdin) through an adapter and
    /// print one normalized event per line as JSON.
    Parse {
        #[arg(long)]
        agent: String,
        #[arg(default_value = "-")]
        file: PathBuf,
        /// The CLI's exit code (default 0).
        #[arg(long, conflicts_with = "signal")]
        exit_code: Option<i32>,
        /// The signal that ended the CLI.
        #[arg(long)]
        signal: Option<i32>,
        /// The agent session's usage totals before this run, as JSON.
        #[arg(long)]
        previous_usage: Option<String>,
    },
    /// Read a run spec as JSON on stdin; print the adapter's exec spec as JSON.
    BuildExec {
        #[arg(long)]
        agent: String,
    },
}

pub async fn run(config: Config, command: PluginCommand) -> anyhow::Result<ExitCode> {
    let host = PluginHost::new(
        &config.plugins,
        Some(config.plugins_dir()),
        &config.data_dir().join("cache"),
    )
    .await?;
    match command {
        PluginCommand::List { json } => list(&host, json),
        PluginCommand::Inspect { file } => inspect(&host, &file).await,
        PluginCommand::Parse {
            agent,
            file,
            exit_code,
            signal,
            previous_usage,
        } => {
            let end = match signal {
                Some(signal) => ProcessEnd::Signaled(signal),
                None => ProcessEnd::Exited(exit_code.unwrap_or(0)),
            };
            let previous_usage = previous_usage
                .map(|text| serde_json::from_str::<UsageTotals>(&text))
                .transpose()
                .context("--previous-usage is not a usage totals object")?;
            parse(&host, &agent, &file, end, ParseContext { previous_usage }).await
        }
        PluginCommand::BuildExec { agent } => build_exec(&host, &agent).await,
    }
}

fn list(host: &PluginHost, json: bool) -> anyhow::Result<ExitCode> {
    let plugins = host.list();
    let refused = host.refused();
    let mut out = std::io::stdout().lock();
    if json {
        let refused: Vec<_> = refused
            .iter()
            .map(|(file, reason)| serde_json::json!({"file": file, "reason": reason}))
            .collect();
        let report = serde_json::json!({"plugins": plugins, "refused": refused});
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<16} {:<9} {:<10} {:<14} SOURCE",
        "NAME", "KIND", "VERSION", "HASH"
    )?;
    for p in plugins {
        let hash = &p.hash[..12];
        writeln!(
            out,
            "{:<16} {:<9} {:<10} {hash:<14} {}",
            p.name, p.kind, p.version, p.source
        )?;
    }
    for (file, reason) in refused {
        writeln!(out, "refused: {}: {reason}", file.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn inspect(host: &PluginHost, file: &PathBuf) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let hash = sha256_hex(&wasm);
    let engine = host.engine().engine();
    let component = match Component::new(engine, &wasm) {
        Ok(c) => c,
        Err(e) => bail!(
            "{} cannot load: not a valid WebAssembly component: {e:#}",
            file.display()
        ),
    };
    let shape = ComponentShape::of(&component, engine);
    let mut report = serde_json::json!({
        "file": file,
        "hash": hash,
        "kind": shape.kind,
        "wit_version": shape.wit_version,
        "imports": shape.imports,
        "exports": shape.exports,
    });
    let mut ok = true;
    if let Some(reason) = shape.incompatibility() {
        report["error"] = reason.into();
        ok = false;
    } else if shape.kind.is_some() {
        // Load it as the host would, outside the plugins directory, to show
        // its manifest or the reason it is refused.
        let scratch = tempfile::tempdir()?;
        std::fs::copy(file, scratch.path().join("inspected.wasm"))?;
        let config = crate::config::PluginsConfig::default();
        let probe = PluginHost::new(
            &config,
            Some(scratch.path().to_owned()),
            &scratch.path().join("cache"),
        )
        .await?;
        let loaded = probe
            .list()
            .into_iter()
            .find(|p| matches!(&p.source, crate::plugin::PluginSource::File(_)))
            .and_then(|summary| probe.get(&summary.name));
        match loaded {
            Some(plugin) => {
                report["manifest"] = plugin.manifest();
                // The limits this host's config gives a plugin of that name.
                let limits = host
                    .get(plugin.name())
                    .map_or(*plugin.limits(), |p| *p.limits());
                report["limits"] = serde_json::to_value(limits)?;
            }
            None => {
                report["error"] =
                    "the component does not load as a plugin; see the log above".into();
                ok = false;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Bytes per feed call, as the host reads them from a stream.
const CHUNK: usize = 64 << 10;

async fn parse(
    host: &Arc<PluginHost>,
    agent: &str,
    file: &PathBuf,
    end: ProcessEnd,
    context: ParseContext,
) -> anyhow::Result<ExitCode> {
    let plugin = host.agent(agent)?;
    let mut parser = plugin.parser(&context).await?;
    let mut input: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?)
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the transcript"),
        };
        for event in parser.feed(&buf[..n]).await? {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
        }
    }
    for event in parser.finish(end).await? {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn build_exec(host: &PluginHost, agent: &str) -> anyhow::Result<ExitCode> {
    let plugin = host.agent(agent)?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the run spec from stdin")?;
    let spec: RunSpec =
        serde_json::from_str(&text).context("the run spec on stdin is not valid")?;
    let exec = plugin.build_exec(&spec).await?;
    println!("{}", serde_json::to_string_pretty(&exec)?);
    Ok(ExitCode::SUCCESS)
}
