//! Command-line configuration. Hand-parsed (no clap) to keep the binary that
//! ships into every sandbox small; every default is a named constant.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::proto::TOKEN_ENV;

/// Default listen address: loopback, any free port (the real one is
/// published on stdout and in `--addr-file`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Default replay ring per exec. Small enough that 64 retained execs stay
/// within a sandbox's memory, large enough to replay minutes of agent output.
pub const DEFAULT_RING_BYTES: usize = 4 * 1024 * 1024;

/// Default number of ended execs kept for re-attaching hosts.
pub const DEFAULT_KEEP_ENDED: usize = 64;

/// Default maximum number of execs running at once.
pub const DEFAULT_MAX_RUNNING: usize = 256;

/// Default wait, after the process exited, for the pipes to reach EOF
/// (background children may still hold them) before the exec ends anyway.
pub const DEFAULT_DRAIN: Duration = Duration::from_millis(1_000);

/// Default grace given to running execs when runnerd itself is stopped; below
/// Docker's 10 s stop timeout so the terminal frames still get out.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_millis(3_000);

const USAGE: &str = "\
usage: runnerd --workspace DIR [options]

  --workspace DIR         workspace root: files API and exec cwd are confined to it
  --listen ADDR           listen address (default 127.0.0.1:0)
  --addr-file PATH        write the actual listen address here (atomically)
  --token-file PATH       bearer token file (else the RUNNERD_TOKEN variable)
  --env-file PATH         JSON object seeding the env store
  --ring-bytes N          replay ring per exec, bytes, K/M/G suffix allowed (default 4M)
  --keep-ended N          ended execs kept for re-attach (default 64)
  --max-execs N           execs running at once (default 256)
  --drain-ms N            wait for pipe EOF after the process exited (default 1000)
  --stall-ms N            an attached client that reads nothing holds output
                          back this long, then gets a gap (default 2000)
  --shutdown-grace-ms N   SIGTERM->SIGKILL grace for execs on shutdown (default 3000)
  --home DIR              HOME of execs (default: runnerd's HOME, else the workspace)
  --no-cgroups            never put execs into their own cgroup v2

The log level comes from RUNNERD_LOG (error, warn, info, debug, trace; default info).";

/// The bearer token; its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything runnerd is started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub addr_file: Option<PathBuf>,
    pub workspace: PathBuf,
    pub token: Token,
    pub env_file: Option<PathBuf>,
    pub ring_bytes: usize,
    /// How long an attached client that reads nothing may hold a process's
    /// output back before it gets a gap (`--stall-ms`, default 2000). The
    /// host sets it above its own stall, so that it decides first.
    pub stall: Duration,
    pub keep_ended: usize,
    pub max_running: usize,
    pub drain: Duration,
    pub shutdown_grace: Duration,
    pub home: PathBuf,
    /// Put each exec in its own cgroup where cgroup v2 is writable.
    pub cgroups: bool,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Usage(String),
    #[error("--help")]
    Help,
    #[error("--version")]
    Version,
    #[error("no token: set {TOKEN_ENV} or pass --token-file (there is no default)")]
    NoToken,
    #[error("the token is empty (from {0})")]
    EmptyToken(String),
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// The usage text printed for `--help` and on errors.
    pub fn usage() -> &'static str {
        USAGE
    }

    /// Parses `args` (without the program name). `env` looks up environment
    /// variables, so tests need not touch the process environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the flag or value that was refused.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let mut listen = None;
        let mut addr_file = None;
        let mut workspace = None;
        let mut token_file: Option<PathBuf> = None;
        let mut env_file = None;
        let mut ring_bytes = DEFAULT_RING_BYTES;
        let mut keep_ended = DEFAULT_KEEP_ENDED;
        let mut max_running = DEFAULT_MAX_RUNNING;
        let mut drain = DEFAULT_DRAIN;
        let mut stall = super::exec::BACKPRESSURE_STALL;
        let mut shutdown_grace = DEFAULT_SHUTDOWN_GRACE;
        let mut home = None;
        let mut cgroups = true;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg
                .into_string()
                .map_err(|arg| ConfigError::Usage(format!("argument is not UTF-8: {arg:?}")))?;
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(OsString::from(value)))
                }
                _ => (arg.clone(), None),
            };
            match flag.as_str() {
                "-h" | "--help" => return Err(ConfigError::Help),
                "-V" | "--version" => return Err(ConfigError::Version),
                "--no-cgroups" if inline.is_none() => {
                    cgroups = false;
                    continue;
                }
                _ => {}
            }
            let mut value = || -> Result<OsString, ConfigError> {
                match inline.clone() {
                    Some(value) => Ok(value),
                    None => args
                        .next()
                        .ok_or_else(|| ConfigError::Usage(format!("{flag} needs a value"))),
                }
            };
            match flag.as_str() {
                "--listen" => {
                    let text = utf8(&flag, value()?)?;
                    listen = Some(text.parse::<SocketAddr>().map_err(|err| {
                        ConfigError::Usage(format!("--listen {text:?}: {err} (want IP:PORT)"))
                    })?);
                }
                "--addr-file" => addr_file = Some(PathBuf::from(value()?)),
                "--workspace" => workspace = Some(PathBuf::from(value()?)),
                "--token-file" => token_file = Some(PathBuf::from(value()?)),
                "--env-file" => env_file = Some(PathBuf::from(value()?)),
                "--home" => home = Some(PathBuf::from(value()?)),
                "--ring-bytes" => ring_bytes = size(&flag, &utf8(&flag, value()?)?)?,
                "--keep-ended" => keep_ended = number(&flag, &utf8(&flag, value()?)?)?,
                "--max-execs" => max_running = number(&flag, &utf8(&flag, value()?)?)?.max(1),
                "--stall-ms" => {
                    stall = Duration::from_millis(number(&flag, &utf8(&flag, value()?)?)? as u64);
                }
                "--drain-ms" => {
                    drain = Duration::from_millis(number(&flag, &utf8(&flag, value()?)?)? as u64);
                }
                "--shutdown-grace-ms" => {
                    shutdown_grace =
                        Duration::from_millis(number(&flag, &utf8(&flag, value()?)?)? as u64);
                }
                _ => return Err(ConfigError::Usage(format!("unknown argument {flag:?}"))),
            }
        }

        let workspace =
            workspace.ok_or_else(|| ConfigError::Usage("--workspace DIR is required".into()))?;
        let token = match token_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(ConfigError::EmptyToken(path.display().to_string()));
                }
                Token(token.to_owned())
            }
            None => {
                let raw = env(TOKEN_ENV).ok_or(ConfigError::NoToken)?;
                let text = raw
                    .into_string()
                    .map_err(|_| ConfigError::Usage(format!("{TOKEN_ENV} is not UTF-8")))?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(ConfigError::EmptyToken(TOKEN_ENV.to_owned()));
                }
                Token(token.to_owned())
            }
        };
        let home = home
            .or_else(|| env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| workspace.clone());
        let listen = match listen {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Usage("bad built-in listen address".into()))?,
        };
        Ok(Self {
            listen,
            addr_file,
            workspace,
            token,
            env_file,
            ring_bytes: ring_bytes.max(1),
            keep_ended,
            max_running,
            drain,
            stall,
            shutdown_grace,
            home,
            cgroups,
        })
    }
}

fn utf8(flag: &str, value: OsString) -> Result<String, ConfigError> {
    value
        .into_string()
        .map_err(|value| ConfigError::Usage(format!("{flag} {value:?}: not UTF-8")))
}

fn number(flag: &str, text: &str) -> Result<usize, ConfigError> {
    text.trim()
        .parse::<usize>()
        .map_err(|err| ConfigError::Usage(format!("{flag} {text:?}: {err}")))
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `4M`, `1G`.
fn size(flag: &str, text: &str) -> Result<usize, ConfigError> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&text[..at], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let multiplier: usize = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => {
            return Err(ConfigError::Usage(format!(
                "{flag} {text:?}: unknown unit (use K, M or G)"
            )));
        }
    };
    number(flag, digits)?
        .checked_mul(multiplier)
        .ok_or_else(|| ConfigError::Usage(format!("{flag} {text:?}: too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], token: Option<&str>) -> Result<Config, ConfigError> {
        let token = token.map(OsString::from);
        Config::parse(args.iter().map(OsString::from), move |name| {
            (name == TOKEN_ENV).then(|| token.clone()).flatten()
        })
    }

    #[test]
    fn refuses_to_start_without_a_token() {
        assert!(matches!(
            parse(&["--workspace", "/tmp"], None),
            Err(ConfigError::NoToken)
        ));
        assert!(matches!(
            parse(&["--workspace", "/tmp"], Some("  \n")),
            Err(ConfigError::EmptyToken(_))
        ));
    }

    #[test]
    fn parses_flags_and_sizes() {
        let config = parse(
            &[
                "--workspace=/w",
                "--listen",
                "127.0.0.1:7",
                "--ring-bytes",
                "64K",
                "--drain-ms",
                "5",
                "--stall-ms",
                "30000",
            ],
            Some("secret\n"),
        )
        .expect("valid flags");
        assert_eq!(config.ring_bytes, 64 * 1024);
        assert_eq!(config.stall, Duration::from_secs(30));
        assert_eq!(config.listen.port(), 7);
        assert_eq!(config.drain, Duration::from_millis(5));
        assert_eq!(config.token.as_bytes(), b"secret");
        assert!(!format!("{config:?}").contains("secret"));
        assert!(matches!(
            parse(&["--workspace", "/w", "--bogus"], Some("t")),
            Err(ConfigError::Usage(_))
        ));
        assert!(matches!(
            parse(&["--workspace", "/w", "--ring-bytes", "3X"], Some("t")),
            Err(ConfigError::Usage(_))
        ));
    }
}
