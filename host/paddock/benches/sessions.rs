//! Sessions benchmark: the real `paddock serve` and `runnerd` binaries on
//! loopback, spoken to over HTTP like a platform would. Prints one table;
//! every number comes with a baseline measured in the same run (the machine
//! is shared, so ratios mean more than absolute times).
//!
//! ```sh
//! cargo bench -p paddock --bench sessions
//! PADDOCK_BENCH_SAMPLES=500 PADDOCK_BENCH_STREAM_MB=60 cargo bench -p paddock --bench sessions
//! ```
//!
//! 1. session create + first exec (`["true"]`, read to its `exit` event),
//!    which provisions the sandbox (spawns a runnerd), broken down by
//!    request; a second exec in the provisioned session (the warm path);
//!    delete. Baselines, interleaved round by round with the API samples: a
//!    bare fork+exec of `true`, an HTTP round trip, a small atomic write +
//!    fsync, and runnerd alone (spawn → healthy → exec `true` → exit frame,
//!    with and without its per-exec cgroup, and after 50 ms idle);
//! 2. stdout → SSE event latency: a process prints its clock
//!    (`date +%s%N`) and the client compares with the arrival time; also the
//!    stdin → stdout round trip through the API; baselines: the stdin POST
//!    alone, the same through runnerd alone, and over local pipes;
//! 3. streaming throughput of one exec (`cat` of a text file, and
//!    `head -c /dev/zero`, whose bytes JSON-escape to six) against `cat` of
//!    the same bytes to /dev/null and into a pipe, and runnerd alone (its
//!    binary frame stream). Nothing holds a fast process back for a slow
//!    reader: output more than a replay ring ahead of its reader is
//!    dropped (an explicit gap), so the rate is delivered bytes / wall time
//!    and the loss is reported; each is also run with runnerd's ring large
//!    enough for the whole stream. CPU seconds per process show where the
//!    cost is. (Below runnerd's 64 MiB output cap, which the host API does
//!    not let a client raise.)
//! 4. memory: one idle runnerd (VmRSS, PSS), and the host's RSS per idle
//!    session (unprovisioned, and provisioned).
//! 5. local-process against local-docker: session create + first exec
//!    `true` on two hosts, one per provider, interleaved round by round;
//!    the docker one on podman's Docker-compatible service (started, and
//!    the sandbox image built, by the tests' fixture), as a ratio.
//!    `PADDOCK_BENCH_PROVIDER_SAMPLES` (default 30) rounds;
//!    `PADDOCK_BENCH_ONLY=providers` runs this part alone.
//! 6. through a link: session create + first exec, and streaming
//!    throughput, in a session on a "desktop" (this machine, through a
//!    `paddock link` process and its WebSocket) against a local-process
//!    session of the same host. `PADDOCK_BENCH_LINK_SAMPLES` (default 30);
//!    `PADDOCK_BENCH_ONLY=links` runs this part alone.
//!
//! `PADDOCK_BENCH_KEEP=1` keeps the work directory (the hosts' logs and
//! data dirs) for a look afterwards.
//!
//! Nothing here runs in CI: `cargo test` does not build `harness = false`
//! benches.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use futures_util::{Stream, StreamExt};
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::{ExecRequest, Frame, Listening};
use serde_json::{Value, json};

/// The podman service of the tests, for part 5.
#[allow(dead_code)]
#[path = "../tests/common/podman.rs"]
mod podman;

const OWNER_TOKEN: &str = "token-bench-0001";
/// Every network wait is bounded so a broken host fails the bench instead
/// of hanging it.
const WAIT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let samples = env_usize("PADDOCK_BENCH_SAMPLES", 200);
    let stream_mb = env_usize("PADDOCK_BENCH_STREAM_MB", 48);
    // The exec's output cap (runnerd's default, 64 MiB) is not settable
    // through the host API: stay below it.
    ensure!(
        stream_mb < 64,
        "PADDOCK_BENCH_STREAM_MB must stay below the 64 MiB output cap"
    );
    // The client is one thread: the host and runnerd get the other core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(samples, stream_mb))
}

async fn run(samples: usize, stream_mb: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("paddock-bench-")
        // Not under /tmp: a sandbox confined by bubblewrap has its own
        // /tmp, and the streaming part has it `cat` a file from here.
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let runnerd = paddock::provider::default_runnerd_path()
        .ok_or_else(|| anyhow!("no runnerd binary (set PADDOCK_RUNNERD)"))?;
    println!(
        "paddock: {}\nrunnerd: {}\nbwrap: {}\n",
        env!("CARGO_BIN_EXE_paddock"),
        runnerd.display(),
        if which("bwrap") {
            "installed (runnerd confined)"
        } else {
            "not installed (runnerd plain)"
        },
    );
    let mut table = Table::default();
    let provider_samples = env_usize("PADDOCK_BENCH_PROVIDER_SAMPLES", 30);
    let link_samples = env_usize("PADDOCK_BENCH_LINK_SAMPLES", 30);
    match std::env::var("PADDOCK_BENCH_ONLY").as_deref() {
        Ok("providers") => {
            providers(work.path(), provider_samples, &mut table).await?;
            println!();
            table.print();
            return Ok(());
        }
        Ok("links") => {
            links(work.path(), link_samples, stream_mb, &mut table).await?;
            println!();
            table.print();
            return Ok(());
        }
        _ => {}
    }

    let host = Host::start(&work.path().join("host-a"), &[]).await?;
    eprintln!(
        "[{:>5.1}s] host up; create + exec latency ({samples} samples)",
        started.elapsed().as_secs_f64()
    );
    latency_of_create_and_exec(&host, &runnerd, samples, &mut table).await?;
    eprintln!(
        "[{:>5.1}s] stdout -> SSE latency",
        started.elapsed().as_secs_f64()
    );
    latency_of_stdout(&host, &runnerd, work.path(), samples.max(100), &mut table).await?;
    eprintln!(
        "[{:>5.1}s] streaming throughput",
        started.elapsed().as_secs_f64()
    );
    throughput(&host, &runnerd, work.path(), stream_mb, &mut table).await?;
    drop(host);

    // A fresh host, so the memory numbers do not carry the earlier parts'
    // allocations.
    eprintln!("[{:>5.1}s] memory", started.elapsed().as_secs_f64());
    let host = Host::start(&work.path().join("host-b"), &[]).await?;
    memory(&host, &mut table).await?;
    drop(host);

    eprintln!(
        "[{:>5.1}s] local-process vs local-docker",
        started.elapsed().as_secs_f64()
    );
    providers(work.path(), provider_samples, &mut table).await?;

    eprintln!("[{:>5.1}s] through a link", started.elapsed().as_secs_f64());
    links(work.path(), link_samples, stream_mb, &mut table).await?;

    println!();
    table.print();
    println!(
        "\n(median / p99 over the samples; ratio = metric / baseline; total {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("PADDOCK_BENCH_KEEP").is_some() {
        // The hosts' logs (`*/paddock.log`) and data dirs, for profiling.
        println!("kept {}", work.keep().display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. through a link

/// A `paddock link` process for the bench's owner. Dropping it kills it and
/// the runnerds it started.
struct Link {
    child: Child,
    data: PathBuf,
}

impl Link {
    async fn start(host: &Host, data: &Path) -> anyhow::Result<Link> {
        std::fs::create_dir_all(data)?;
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plugin-cache");
        std::fs::create_dir_all(&cache)?;
        std::os::unix::fs::symlink(&cache, data.join("cache"))?;
        let log = std::fs::File::create(data.join("link.log"))?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["link", "--host", &host.url, "--token", OWNER_TOKEN])
            .arg("--data-dir")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting paddock link")?;
        let stdout = child.stdout.take().context("link stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        ensure!(line.contains("link_id"), "the link's first line: {line:?}");
        Ok(Link {
            child,
            data: data.to_owned(),
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        for pid in runnerd_pids_in(&self.data) {
            // SAFETY: kill(2) on a pid this link's provider started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Session create + first exec, and streaming throughput, in a session on
/// a linked desktop (this machine, through `paddock link` and its
/// WebSocket) against a local-process session of the same host.
async fn links(
    work: &Path,
    samples: usize,
    stream_mb: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    let host = Host::start(&work.join("host-link"), &[]).await?;
    let link = Link::start(&host, &work.join("link")).await?;
    let desktop = json!({ "preference": "user-desktop" });
    // The control connection comes up right after registration.
    let mut ready = false;
    for _ in 0..100 {
        if create_and_first_exec_in(&host, desktop.clone())
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(ready, "the link never served a session");
    let warmup = 3;
    let (mut local, mut linked) = (Samples::default(), Samples::default());
    for i in 0..warmup + samples {
        let l = create_and_first_exec_in(&host, json!({})).await?;
        let d = create_and_first_exec_in(&host, desktop.clone()).await?;
        if i >= warmup {
            local.push(l);
            linked.push(d);
        }
    }
    table.section("6. through a link (paddock link on this machine, over its WebSocket)");
    table.row("create + first exec, local-process", &local, None, None);
    table.row(
        "create + first exec, user-desktop",
        &linked,
        Some(("local-process", local.median())),
        None,
    );

    let bytes = stream_mb << 20;
    let file = work.join("link-stream.txt");
    write_text_file(&file, bytes)?;
    let file_arg = file.to_str().context("a UTF-8 temp path")?.to_owned();
    let local_session = host.create_session(json!({})).await?;
    let desktop_session = host.create_session(desktop).await?;
    host.exec(&local_session, json!({"argv": ["true"]})).await?;
    let warm = host
        .exec(&desktop_session, json!({"argv": ["true"]}))
        .await?;
    host.run_to_exit(&desktop_session, &warm).await?;
    let local_pid = host.sandbox_pid(&local_session)?;
    let desktop_pid = sandbox_pid_in(&link.data, &desktop_session)?;
    let (mut on_local, mut on_link) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let l = host
            .stream(&local_session, &["cat", &file_arg], bytes, local_pid)
            .await?;
        let d = host
            .stream(&desktop_session, &["cat", &file_arg], bytes, desktop_pid)
            .await?;
        ensure!(
            l.output_gaps + l.ring_gaps + d.output_gaps + d.ring_gaps == 0,
            "a gap while streaming: a slow reader lost output"
        );
        on_local = on_local.min(l.elapsed);
        on_link = on_link.min(d.elapsed);
    }
    table.note(
        &format!("stream {stream_mb} MB (`cat`), local-process"),
        &format!("{:.0} MB/s", mb_per_s(bytes, on_local)),
    );
    table.note(
        &format!("stream {stream_mb} MB (`cat`), user-desktop"),
        &format!(
            "{:.0} MB/s = {:.2}x local-process",
            mb_per_s(bytes, on_link),
            on_local.as_secs_f64() / on_link.as_secs_f64()
        ),
    );
    drop(link);
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. local-process vs local-docker

async fn providers(work: &Path, samples: usize, table: &mut Table) -> anyhow::Result<()> {
    let podman = podman::podman().await;
    let instance = format!("bench-{}", std::process::id());
    let config = format!(
        "[sandbox]\nprovider = \"local-docker\"\n\n[sandbox.docker]\nhost = \"{}\"\n\
         image = \"{}\"\ninstance = \"{instance}\"\n",
        podman.host, podman.image
    );
    let local = Host::start(&work.join("host-local"), &[]).await?;
    let docker = Host::start_with_config(&work.join("host-docker"), &[], &config).await;
    let docker = match docker {
        Ok(docker) => docker,
        Err(err) => {
            podman::remove_instance(podman, &instance);
            return Err(err);
        }
    };
    let warmup = 3;
    let (mut on_local, mut on_docker) = (Samples::default(), Samples::default());
    let mut failed = None;
    for i in 0..warmup + samples {
        let local_took = create_and_first_exec(&local).await;
        let docker_took = create_and_first_exec(&docker).await;
        match (local_took, docker_took) {
            (Ok(l), Ok(d)) if i >= warmup => {
                on_local.push(l);
                on_docker.push(d);
            }
            (Ok(_), Ok(_)) => {}
            (Err(err), _) | (_, Err(err)) => {
                failed = Some(err);
                break;
            }
        }
    }
    drop(docker);
    podman::remove_instance(podman, &instance);
    if let Some(err) = failed {
        return Err(err);
    }
    table.section("5. session create + first exec `true`: local-process vs local-docker (podman)");
    table.row("local-process", &on_local, None, None);
    table.row(
        "local-docker (podman, runc)",
        &on_docker,
        Some(("local-process", on_local.median())),
        None,
    );
    Ok(())
}

/// Create a session, run `true` in it to its `exit` event (which
/// provisions the sandbox), then delete it; the time to the `exit` event.
async fn create_and_first_exec(host: &Host) -> anyhow::Result<Duration> {
    create_and_first_exec_in(host, json!({})).await
}

/// [`create_and_first_exec`] of a session created with `body`.
async fn create_and_first_exec_in(host: &Host, body: Value) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let session = host.create_session(body).await?;
    let exec = host.exec(&session, json!({"argv": ["true"]})).await?;
    let exit = host.run_to_exit(&session, &exec).await?;
    let took = t.elapsed();
    ensure!(
        exit["reason"] == "exited" && exit["code"] == 0,
        "first exec: {exit}"
    );
    let (status, body) = host
        .call("DELETE", &format!("/v1/sessions/{session}"), None)
        .await?;
    ensure!(status / 100 == 2, "delete: {status} {body}");
    Ok(took)
}

// ---------------------------------------------------------------------------
// 1. session create + first exec

async fn latency_of_create_and_exec(
    host: &Host,
    runnerd: &Path,
    samples: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    // Every kind of sample is taken interleaved with the others, round
    // after round, so a neighbour's load on this shared machine hits the
    // API numbers and their baselines alike.
    //
    // - a bare fork+exec of `true` from this process (the floor);
    // - an authenticated HTTP round trip (GET of an idle session);
    // - every `every`-th round: runnerd alone, started as the provider
    //   starts it (with an address file, which runnerd writes atomically
    //   with an fsync before it prints its listening line): spawn →
    //   listening line → health answered → a first exec `true` (create →
    //   exit frame) → a second one; once as configured and once with
    //   `--no-cgroups` (moving the child into its own cgroup is most of an
    //   exec's start here, unless another exec moved one within the last
    //   few ms: hence a third exec after 50 ms idle); and a small atomic write + fsync on the data
    //   dir's disk, as the host persists a session record (on create,
    //   provision, exec start and exec end);
    // - through the API: create, first exec (provisions), its events to
    //   `exit`, a second exec to `exit`, delete.
    let warmup = 10;
    let every = (samples / 50).max(1);
    // (Not `GET /v1/sessions`: ended sessions stay listed, so it grows.)
    let probe = format!("/v1/sessions/{}", host.create_session(json!({})).await?);
    let mut fork_exec = Samples::default();
    let mut http_rtt = Samples::default();
    let mut alone: [[Samples; 5]; 2] = Default::default();
    let mut fsync = Samples::default();
    let records = host.data.join("bench-fsync");
    std::fs::create_dir_all(&records)?;
    let mut create = Samples::default();
    let mut first_post = Samples::default();
    let mut first_stream = Samples::default();
    let mut first_total = Samples::default();
    let mut first_headers = Samples::default();
    let mut warm_total = Samples::default();
    let mut warm_post = Samples::default();
    let mut warm_stream = Samples::default();
    let mut delete = Samples::default();
    for i in 0..warmup + samples {
        let keep = i >= warmup;

        let t = Instant::now();
        let status = Command::new("true").status()?;
        let elapsed = t.elapsed();
        ensure!(status.success());
        if keep {
            fork_exec.push(elapsed);
        }

        let t = Instant::now();
        let (status, _) = host.call("GET", &probe, None).await?;
        let elapsed = t.elapsed();
        ensure!(status == 200, "get session: {status}");
        if keep {
            http_rtt.push(elapsed);
        }

        if keep && i % every == 0 {
            for (times, extra) in alone.iter_mut().zip([&[][..], &["--no-cgroups"][..]]) {
                let dir = host.data.join(format!("bench-runnerd-{i}"));
                std::fs::create_dir_all(&dir)?;
                let addr = dir.join("addr");
                let addr = addr.to_str().context("a UTF-8 temp path")?;
                let mut args = vec!["--addr-file", addr];
                args.extend_from_slice(extra);
                let t = Instant::now();
                let mut daemon = Runnerd::spawn(runnerd, &dir, &args)?;
                times[0].push(t.elapsed());
                tokio::time::timeout(WAIT, daemon.client.health()).await??;
                times[1].push(t.elapsed());
                times[2].push(runnerd_exec_true(&daemon.client).await?);
                times[3].push(runnerd_exec_true(&daemon.client).await?);
                tokio::time::sleep(Duration::from_millis(50)).await;
                times[4].push(runnerd_exec_true(&daemon.client).await?);
                daemon.stop();
                std::fs::remove_dir_all(&dir).ok();
            }
            let t = Instant::now();
            let mut file = tempfile::NamedTempFile::new_in(&records)?;
            file.write_all(&[b'x'; 600])?;
            file.as_file().sync_all()?;
            file.persist(records.join(format!("{i}.json")))?;
            fsync.push(t.elapsed());
        }

        let t0 = Instant::now();
        let session = host.create_session(json!({})).await?;
        let t1 = Instant::now();
        let exec = host.exec(&session, json!({"argv": ["true"]})).await?;
        let t2 = Instant::now();
        let sse = host.events(&session, &exec, None).await?;
        let t2h = Instant::now();
        let exit = sse.read_to_exit().await?;
        let t3 = Instant::now();
        ensure!(
            exit["reason"] == "exited" && exit["code"] == 0,
            "first exec: {exit}"
        );
        let exec = host.exec(&session, json!({"argv": ["true"]})).await?;
        let t3p = Instant::now();
        let exit = host.run_to_exit(&session, &exec).await?;
        let t4 = Instant::now();
        ensure!(
            exit["reason"] == "exited" && exit["code"] == 0,
            "second exec: {exit}"
        );
        let (status, body) = host
            .call("DELETE", &format!("/v1/sessions/{session}"), None)
            .await?;
        ensure!(status / 100 == 2, "delete: {status} {body}");
        let t5 = Instant::now();
        if keep {
            create.push(t1 - t0);
            first_post.push(t2 - t1);
            first_stream.push(t3 - t2);
            first_headers.push(t2h - t2);
            first_total.push(t3 - t0);
            warm_total.push(t4 - t3);
            warm_post.push(t3p - t3);
            warm_stream.push(t4 - t3p);
            delete.push(t5 - t4);
        }
    }
    std::fs::remove_dir_all(&records).ok();
    let [
        runnerd_listening,
        runnerd_healthy,
        runnerd_first,
        runnerd_warm,
        runnerd_idle,
    ] = &alone[0];
    let [
        _,
        _,
        runnerd_first_nocg,
        runnerd_warm_nocg,
        runnerd_idle_nocg,
    ] = &alone[1];
    // The floor of the whole operation without the host: spawn → healthy
    // → exec `true` → exit frame.
    let mut runnerd_floor = Samples::default();
    for (a, b) in runnerd_healthy.0.iter().zip(&runnerd_first.0) {
        runnerd_floor.push(*a + *b);
    }

    table.section("1. session create + first exec `true` (local-process, to the `exit` event)");
    table.row(
        "create + first exec (provisions)",
        &first_total,
        Some(("bare fork+exec `true`", fork_exec.median())),
        Some(Target::Below(Duration::from_millis(25))),
    );
    table.row(
        "  the same against runnerd alone",
        &first_total,
        Some(("runnerd spawn→exit floor", runnerd_floor.median())),
        None,
    );
    table.row(
        "  POST /v1/sessions",
        &create,
        Some(("HTTP round trip", http_rtt.median())),
        None,
    );
    table.row(
        "  POST .../execs (spawn runnerd, wait healthy)",
        &first_post,
        Some(("runnerd spawn→healthy", runnerd_healthy.median())),
        None,
    );
    table.row("  GET .../events to `exit`", &first_stream, None, None);
    table.row("    of which: response headers", &first_headers, None, None);
    table.row(
        "second exec (warm: POST + events to `exit`)",
        &warm_total,
        Some(("bare fork+exec `true`", fork_exec.median())),
        None,
    );
    table.row(
        "  the same against runnerd alone",
        &warm_total,
        Some(("runnerd alone 2nd exec", runnerd_warm.median())),
        None,
    );
    table.row("  POST .../execs", &warm_post, None, None);
    table.row("  GET .../events to `exit`", &warm_stream, None, None);
    table.row(
        "DELETE /v1/sessions/{id} (stops runnerd)",
        &delete,
        None,
        None,
    );
    table.row("baseline: bare fork+exec `true`", &fork_exec, None, None);
    table.row(
        "baseline: HTTP round trip (GET /v1/sessions/{id})",
        &http_rtt,
        None,
        None,
    );
    table.row(
        "baseline: runnerd spawn → listening line",
        runnerd_listening,
        None,
        None,
    );
    table.row(
        "baseline: small atomic write + fsync (data dir)",
        &fsync,
        None,
        None,
    );
    table.row(
        "baseline: runnerd spawn → health answered",
        runnerd_healthy,
        None,
        None,
    );
    table.row(
        "baseline: runnerd alone, first exec `true` (create → exit frame)",
        runnerd_first,
        None,
        None,
    );
    table.row(
        "baseline: runnerd alone, second exec `true`",
        runnerd_warm,
        None,
        None,
    );
    table.row(
        "baseline: runnerd --no-cgroups, first exec `true`",
        runnerd_first_nocg,
        None,
        None,
    );
    table.row(
        "baseline: runnerd --no-cgroups, second exec `true`",
        runnerd_warm_nocg,
        None,
        None,
    );
    table.row(
        "baseline: runnerd alone, exec `true` after 50 ms idle",
        runnerd_idle,
        None,
        None,
    );
    table.row(
        "baseline: runnerd --no-cgroups, exec `true` after 50 ms idle",
        runnerd_idle_nocg,
        None,
        None,
    );
    table.row(
        "floor: runnerd alone spawn → healthy → exec `true` → exit",
        &runnerd_floor,
        None,
        None,
    );
    Ok(())
}

/// `true` in runnerd: create → frames to the exit frame.
async fn runnerd_exec_true(client: &Client) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let created = client
        .create_exec(&ExecRequest {
            argv: vec!["true".into()],
            ..Default::default()
        })
        .await?;
    let mut frames = client.frames(&created.id, 0).await?;
    while let Some(frame) = tokio::time::timeout(WAIT, frames.next()).await? {
        if let Frame::Exit { exit, .. } = frame? {
            ensure!(
                matches!(
                    exit.reason,
                    paddock_runnerd::proto::ExitReason::Exited { code: 0 }
                ),
                "runnerd exec `true`: {exit:?}"
            );
            return Ok(t.elapsed());
        }
    }
    bail!("runnerd's frame stream ended without an exit frame")
}

// ---------------------------------------------------------------------------
// 2. stdout → SSE latency

async fn latency_of_stdout(
    host: &Host,
    runnerd: &Path,
    work: &Path,
    samples: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    const CLOCK: &str = "while read l; do date +%s%N; done";
    const ECHO: &str = r#"while read l; do echo "$l"; done"#;
    let pause = Duration::from_millis(2);

    let session = host.create_session(json!({})).await?;

    // One way: the process prints its clock; compared on arrival.
    let exec = host
        .exec(
            &session,
            json!({"argv": ["sh", "-c", CLOCK], "keep_stdin_open": true}),
        )
        .await?;
    let mut sse = host.events(&session, &exec, None).await?;
    let mut one_way = Samples::default();
    for i in 0..samples + 10 {
        let post = host.stdin(&session, &exec, format!("{i}\n")).send();
        let arrival = async {
            let event = sse.next_of("stdout").await?;
            let now = unix_nanos();
            let text = event.text()?;
            let printed: u128 = text
                .trim()
                .parse()
                .with_context(|| format!("a clock line: {text:?}"))?;
            anyhow::Ok(now.saturating_sub(printed))
        };
        let (posted, latency) = tokio::join!(post, arrival);
        posted?;
        if i >= 10 {
            one_way.push(Duration::from_nanos(latency? as u64));
        }
        tokio::time::sleep(pause).await;
    }
    host.stdin(&session, &exec, String::new())
        .close()
        .send()
        .await?;
    sse.read_to_exit().await?;

    // Round trip: stdin POST → process echoes → stdout event; the POST alone.
    let exec = host
        .exec(
            &session,
            json!({"argv": ["sh", "-c", ECHO], "keep_stdin_open": true}),
        )
        .await?;
    let mut sse = host.events(&session, &exec, None).await?;
    let mut round_trip = Samples::default();
    let mut post_alone = Samples::default();
    for i in 0..samples + 10 {
        let line = format!("line-{i}");
        let t0 = Instant::now();
        let post = async {
            host.stdin(&session, &exec, format!("{line}\n"))
                .send()
                .await?;
            anyhow::Ok(t0.elapsed())
        };
        let arrival = async {
            let event = sse.next_of("stdout").await?;
            let elapsed = t0.elapsed();
            let text = event.text()?;
            ensure!(text.trim() == line, "echo {text:?} for {line:?}");
            anyhow::Ok(elapsed)
        };
        let (posted, arrived) = tokio::join!(post, arrival);
        if i >= 10 {
            post_alone.push(posted?);
            round_trip.push(arrived?);
        }
        tokio::time::sleep(pause).await;
    }
    host.stdin(&session, &exec, String::new())
        .close()
        .send()
        .await?;
    sse.read_to_exit().await?;
    host.call("DELETE", &format!("/v1/sessions/{session}"), None)
        .await?;

    // runnerd alone: the clock script's frames straight from runnerd, and
    // its stdin write on a pooled connection.
    let mut daemon = Runnerd::spawn(runnerd, &work.join("runnerd-latency"), &[])?;
    let created = daemon
        .client
        .create_exec(&ExecRequest {
            argv: vec!["sh".into(), "-c".into(), CLOCK.into()],
            keep_stdin_open: true,
            ..Default::default()
        })
        .await?;
    let mut frames = daemon.client.frames(&created.id, 0).await?;
    let mut runnerd_one_way = Samples::default();
    let mut runnerd_stdin = Samples::default();
    for i in 0..samples + 10 {
        let t0 = Instant::now();
        let post = async {
            daemon
                .client
                .write_stdin(&created.id, format!("{i}\n"), false)
                .await?;
            anyhow::Ok(t0.elapsed())
        };
        let arrival = async {
            loop {
                let frame = tokio::time::timeout(WAIT, frames.next())
                    .await?
                    .ok_or_else(|| anyhow!("runnerd's stream ended"))??;
                if let Frame::Stdout { data, .. } = frame {
                    let now = unix_nanos();
                    let text = String::from_utf8_lossy(&data);
                    let printed: u128 = text
                        .trim()
                        .parse()
                        .with_context(|| format!("a clock line: {text:?}"))?;
                    return anyhow::Ok(Duration::from_nanos(now.saturating_sub(printed) as u64));
                }
            }
        };
        let (posted, latency) = tokio::join!(post, arrival);
        if i >= 10 {
            runnerd_stdin.push(posted?);
            runnerd_one_way.push(latency?);
        }
        tokio::time::sleep(pause).await;
    }
    drop(frames);
    daemon.stop();

    // The same scripts over local pipes, no HTTP: the floor.
    let pipe_one_way = local_pipe(CLOCK, samples, pause, |line, _| {
        let printed: u128 = line.trim().parse()?;
        Ok(Duration::from_nanos(
            unix_nanos().saturating_sub(printed) as u64
        ))
    })?;
    let pipe_round_trip = local_pipe(ECHO, samples, pause, |_, t0| Ok(t0.elapsed()))?;

    table.section("2. stdout → SSE event latency (loopback)");
    table.row(
        "stdout → SSE event (process clock → arrival)",
        &one_way,
        Some(("same over a local pipe", pipe_one_way.median())),
        Some(Target::Below(Duration::from_millis(1))),
    );
    table.row(
        "stdin POST → echoed stdout SSE event",
        &round_trip,
        Some(("stdin POST alone", post_alone.median())),
        None,
    );
    table.row(
        "  the same against runnerd alone",
        &one_way,
        Some(("runnerd frames alone", runnerd_one_way.median())),
        None,
    );
    table.row(
        "  stdin POST against runnerd's own",
        &post_alone,
        Some(("runnerd stdin write alone", runnerd_stdin.median())),
        None,
    );
    table.row(
        "baseline: stdin POST round trip (204)",
        &post_alone,
        None,
        None,
    );
    table.row(
        "baseline: runnerd alone, `date` → stdout frame",
        &runnerd_one_way,
        None,
        None,
    );
    table.row(
        "baseline: runnerd alone, stdin write round trip (pooled)",
        &runnerd_stdin,
        None,
        None,
    );
    table.row(
        "baseline: `date` → local pipe reader",
        &pipe_one_way,
        None,
        None,
    );
    table.row(
        "baseline: write → echo → read, local pipes",
        &pipe_round_trip,
        None,
        None,
    );
    Ok(())
}

/// Runs `sh -c script` with piped stdin and stdout; per sample writes a line
/// and measures the answer line with `measure(line, t_written)`.
fn local_pipe(
    script: &str,
    samples: usize,
    pause: Duration,
    measure: impl Fn(&str, Instant) -> anyhow::Result<Duration>,
) -> anyhow::Result<Samples> {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = Samples::default();
    let mut line = String::new();
    for i in 0..samples + 10 {
        let t0 = Instant::now();
        writeln!(stdin, "line-{i}")?;
        stdin.flush()?;
        line.clear();
        stdout.read_line(&mut line)?;
        let sample = measure(&line, t0)?;
        if i >= 10 {
            out.push(sample);
        }
        std::thread::sleep(pause);
    }
    drop(stdin);
    child.wait()?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// 3. streaming throughput

const ROUNDS: usize = 3;

async fn throughput(
    host: &Host,
    runnerd: &Path,
    work: &Path,
    stream_mb: usize,
    table: &mut Table,
) -> anyhow::Result<()> {
    let bytes = stream_mb << 20;
    let file = work.join("stream.txt");
    write_text_file(&file, bytes)?;
    let file_arg = file.to_str().context("a UTF-8 temp path")?.to_owned();
    let zeros = format!("head -c {stream_mb}M /dev/zero");

    // Baselines: the same bytes to /dev/null, and through one pipe into a
    // reader (this process).
    let cat_null = best_of(|| {
        let t = Instant::now();
        let status = Command::new("cat")
            .arg(&file)
            .stdout(std::fs::File::create("/dev/null")?)
            .status()?;
        ensure!(status.success());
        Ok(t.elapsed())
    })?;
    let cat_pipe = best_of(|| pipe_read(Command::new("cat").arg(&file), bytes))?;
    let zeros_null = best_of(|| {
        let t = Instant::now();
        let status = Command::new("sh")
            .args(["-c", &format!("{zeros} > /dev/null")])
            .status()?;
        ensure!(status.success());
        Ok(t.elapsed())
    })?;
    let zeros_pipe = best_of(|| pipe_read(Command::new("sh").args(["-c", &zeros]), bytes))?;

    // runnerd alone: its binary frame stream, no host. runnerd does not
    // hold the process back for a slow reader: output more than its replay
    // ring (4 MiB by default) ahead of the reader is dropped as a gap. So
    // also with a ring that holds the whole stream, for the lossless rate.
    let ring = format!("{}M", stream_mb * 2);
    let mut alone = Vec::new();
    for (config, extra) in [
        ("", vec![]),
        (" (ring holds all)", vec!["--ring-bytes", ring.as_str()]),
    ] {
        let mut daemon = Runnerd::spawn(
            runnerd,
            &work.join(format!("runnerd-alone{}", alone.len())),
            &extra,
        )?;
        let mut text = Streamed::default();
        let mut zero = Streamed::default();
        for _ in 0..ROUNDS {
            text.keep_best(
                runnerd_stream(&daemon.client, &["cat", &file_arg], bytes, daemon.pid()).await?,
            );
            zero.keep_best(
                runnerd_stream(&daemon.client, &["sh", "-c", &zeros], bytes, daemon.pid()).await?,
            );
        }
        daemon.stop();
        alone.push((config, text, zero));
    }

    // Through the host: POST exec, SSE to the `exit` event; as configured,
    // and on a second host whose runnerds get the big ring (a wrapper
    // script named by PADDOCK_RUNNERD).
    let wrapper = work.join("runnerd-big-ring.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' --ring-bytes {ring} \"$@\"\n",
            runnerd.display()
        ),
    )?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let big_host = Host::start(
        &work.join("host-c"),
        &[("PADDOCK_RUNNERD", wrapper.as_os_str())],
    )
    .await?;
    let mut via_host = Vec::new();
    for (config, host) in [("", host), (" (runnerd ring holds all)", &big_host)] {
        let session = host.create_session(json!({})).await?;
        let warm = host.exec(&session, json!({"argv": ["true"]})).await?;
        host.run_to_exit(&session, &warm).await?;
        let sandbox_pid = host.sandbox_pid(&session)?;
        let mut text = Streamed::default();
        let mut zero = Streamed::default();
        for _ in 0..ROUNDS {
            text.keep_best(
                host.stream(&session, &["cat", &file_arg], bytes, sandbox_pid)
                    .await?,
            );
            zero.keep_best(
                host.stream(&session, &["sh", "-c", &zeros], bytes, sandbox_pid)
                    .await?,
            );
        }
        host.call("DELETE", &format!("/v1/sessions/{session}"), None)
            .await?;
        via_host.push((config, text, zero));
    }
    drop(big_host);

    table.section(&format!(
        "3. streaming throughput of one exec, {stream_mb} MiB; delivered bytes / wall time, best of {ROUNDS} \
         (CPU s: client / host / runnerd / exec'd process)"
    ));
    let rate = |d: Duration| format!("{:.0} MB/s", mb_per_s(bytes, d));
    for (i, (what, null, pipe)) in [
        ("text file (`cat`)", cat_null, cat_pipe),
        ("zeros (`head -c /dev/zero`)", zeros_null, zeros_pipe),
    ]
    .into_iter()
    .enumerate()
    {
        let pick = |t: &(&str, Streamed, Streamed)| if i == 0 { t.1.clone() } else { t.2.clone() };
        for run in &via_host {
            table.throughput(
                &format!("{what} via host SSE{}", run.0),
                &pick(run),
                bytes,
                ("to /dev/null", null),
            );
        }
        for run in &alone {
            table.throughput(
                &format!("{what} via runnerd frames alone{}", run.0),
                &pick(run),
                bytes,
                ("to /dev/null", null),
            );
        }
        table.note(&format!("  baseline {what} to /dev/null"), &rate(null));
        table.note(
            &format!("  baseline {what} into a pipe reader"),
            &rate(pipe),
        );
    }
    Ok(())
}

/// One streamed exec: wall time, bytes of output received, the bytes on the
/// wire, events, and CPU seconds of the client, the host and runnerd.
#[derive(Debug, Default, Clone)]
struct Streamed {
    elapsed: Duration,
    payload: usize,
    wire: usize,
    events: usize,
    /// Output runnerd dropped (its ring moved on before it was read).
    output_gaps: usize,
    /// Events the host dropped (its replay ring moved on).
    ring_gaps: usize,
    /// Client, host, runnerd, the exec'd process.
    cpu: [f64; 4],
}

impl Streamed {
    /// Delivered bytes per second.
    fn rate(&self) -> f64 {
        self.payload as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn keep_best(&mut self, other: Streamed) {
        if self.elapsed.is_zero() || other.rate() > self.rate() {
            *self = other;
        }
    }
}

async fn runnerd_stream(
    client: &Client,
    argv: &[&str],
    expect: usize,
    pid: u32,
) -> anyhow::Result<Streamed> {
    let cpu0 = cpu_split(None, pid);
    let t = Instant::now();
    let created = client
        .create_exec(&ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await?;
    let mut frames = client.frames(&created.id, 0).await?;
    let mut out = Streamed::default();
    let mut exit = None;
    while let Some(frame) = tokio::time::timeout(WAIT, frames.next()).await? {
        out.events += 1;
        match frame? {
            Frame::Stdout { data, .. } => {
                out.payload += data.len();
                out.wire += data.len() + 16;
            }
            Frame::Gap { .. } => out.output_gaps += 1,
            Frame::Exit { exit: e, .. } => exit = Some(e),
            Frame::Stderr { data, .. } => bail!("stderr: {}", String::from_utf8_lossy(&data)),
        }
    }
    out.elapsed = t.elapsed();
    out.cpu = cpu_delta(cpu_split(None, pid), cpu0);
    ensure!(exit.is_some(), "no exit frame");
    ensure!(
        out.payload == expect || out.output_gaps + out.ring_gaps > 0,
        "runnerd streamed {} of {expect} bytes",
        out.payload
    );
    Ok(out)
}

fn pipe_read(command: &mut Command, expect: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0;
    loop {
        let read = stdout.read(&mut buf)?;
        if read == 0 {
            break;
        }
        n += read;
    }
    ensure!(child.wait()?.success());
    ensure!(n == expect, "read {n} of {expect} bytes");
    Ok(t.elapsed())
}

fn write_text_file(path: &Path, bytes: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut written = 0;
    let mut i = 0u64;
    while written < bytes {
        let line =
            format!("{i:08} the quick brown fox jumps over the lazy dog, \"quoted\" and\ttabbed\n");
        let take = line.len().min(bytes - written);
        out.write_all(&line.as_bytes()[..take])?;
        written += take;
        i += 1;
    }
    out.flush()?;
    Ok(())
}

fn best_of(mut f: impl FnMut() -> anyhow::Result<Duration>) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        best = best.min(f()?);
    }
    Ok(best)
}

// ---------------------------------------------------------------------------
// 4. memory

async fn memory(host: &Host, table: &mut Table) -> anyhow::Result<()> {
    const IDLE: usize = 200;
    const PROVISIONED: usize = 50;
    let settle = Duration::from_millis(500);

    // Warm the request path once (first-use allocations are not per session).
    let session = host.create_session(json!({})).await?;
    let exec = host.exec(&session, json!({"argv": ["true"]})).await?;
    host.run_to_exit(&session, &exec).await?;
    let first = host.sandbox_pid(&session)?;
    tokio::time::sleep(settle).await;
    let one_runnerd = Mem::of(first)?;
    host.call("DELETE", &format!("/v1/sessions/{session}"), None)
        .await?;
    tokio::time::sleep(settle).await;

    let before = Mem::of(host.pid)?;
    for _ in 0..IDLE {
        host.create_session(json!({})).await?;
    }
    tokio::time::sleep(settle).await;
    let after_idle = Mem::of(host.pid)?;

    let mut sessions = Vec::new();
    for _ in 0..PROVISIONED {
        let session = host.create_session(json!({})).await?;
        let exec = host.exec(&session, json!({"argv": ["true"]})).await?;
        host.run_to_exit(&session, &exec).await?;
        sessions.push(session);
    }
    tokio::time::sleep(settle * 2).await;
    let after_provisioned = Mem::of(host.pid)?;
    let mut runnerds = Vec::new();
    for session in &sessions {
        runnerds.push(Mem::of(host.sandbox_pid(session)?)?);
    }
    let median = |f: fn(&Mem) -> u64| {
        let mut v: Vec<u64> = runnerds.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };

    table.section("4. memory (KiB; runnerd idle after one exec; host per session = RSS delta / N)");
    let target = 8 * 1024;
    table.memory(
        "one idle runnerd, VmRSS (alone)",
        one_runnerd.rss,
        Some(target),
    );
    table.memory("one idle runnerd, PSS (alone)", one_runnerd.pss, None);
    table.memory(
        "one idle runnerd, private (alone)",
        one_runnerd.private,
        None,
    );
    table.memory(
        &format!("idle runnerd VmRSS, median of {PROVISIONED}"),
        median(|m| m.rss),
        Some(target),
    );
    table.memory(
        &format!("idle runnerd PSS, median of {PROVISIONED}"),
        median(|m| m.pss),
        None,
    );
    table.memory(
        &format!("idle runnerd private, median of {PROVISIONED}"),
        median(|m| m.private),
        None,
    );
    let per_idle = after_idle.rss as f64 - before.rss as f64;
    let per_provisioned = after_provisioned.rss as f64 - after_idle.rss as f64;
    table.memory_f("host RSS with no session", before.rss as f64, None);
    table.memory_f(
        &format!("host RSS per idle session ({IDLE}, unprovisioned)"),
        per_idle / IDLE as f64,
        None,
    );
    table.memory_f(
        &format!("host RSS per provisioned idle session ({PROVISIONED})"),
        per_provisioned / PROVISIONED as f64,
        None,
    );
    table.memory_f(
        "total per provisioned session (host + runnerd PSS)",
        per_provisioned / PROVISIONED as f64 + median(|m| m.pss) as f64,
        None,
    );
    Ok(())
}

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: u64,
    pss: u64,
    private: u64,
}

impl Mem {
    fn of(pid: u32) -> anyhow::Result<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
        let field = |text: &str, name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Mem {
            rss: field(&status, "VmRSS"),
            pss: field(&rollup, "Pss"),
            private: field(&rollup, "Private_Clean") + field(&rollup, "Private_Dirty"),
        })
    }
}

/// User + system CPU seconds of a process, and of its reaped children.
fn cpu(pid: u32) -> [f64; 2] {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return [0.0; 2];
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return [0.0; 2];
    };
    // After the command: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    if f.len() < 4 {
        return [0.0; 2];
    }
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    [(f[0] + f[1]) as f64 / ticks, (f[2] + f[3]) as f64 / ticks]
}

/// CPU seconds of the client (this process), the host, runnerd, and
/// runnerd's reaped children (the exec'd processes).
fn cpu_split(host: Option<u32>, runnerd: u32) -> [f64; 4] {
    let runnerd = cpu(runnerd);
    [
        cpu(std::process::id())[0],
        host.map_or(0.0, |h| cpu(h)[0]),
        runnerd[0],
        runnerd[1],
    ]
}

fn cpu_delta(after: [f64; 4], before: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|i| after[i] - before[i])
}

// ---------------------------------------------------------------------------
// The host and a standalone runnerd

struct Host {
    child: Child,
    pid: u32,
    url: String,
    data: PathBuf,
    http: reqwest::Client,
}

impl Host {
    async fn start(data: &Path, env: &[(&str, &std::ffi::OsStr)]) -> anyhow::Result<Host> {
        Self::start_with_config(data, env, "").await
    }

    /// A host with `config` as its TOML config file.
    async fn start_with_config(
        data: &Path,
        env: &[(&str, &std::ffi::OsStr)],
        config: &str,
    ) -> anyhow::Result<Host> {
        let config_text = config;
        std::fs::create_dir_all(data)?;
        // Compiled plugins persist between runs: compiling them is not what
        // is measured.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plugin-cache");
        std::fs::create_dir_all(&cache)?;
        std::os::unix::fs::symlink(&cache, data.join("cache"))?;
        let config = data.join("paddock.toml");
        std::fs::write(&config, config_text)?;
        let log = std::fs::File::create(data.join("paddock.log"))?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(&config)
            .env("PADDOCK_API_TOKENS", format!("bench={OWNER_TOKEN}"))
            .env_remove("PADDOCK_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting paddock serve")?;
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        let listening: Value = serde_json::from_str(&line).with_context(|| {
            let log = std::fs::read_to_string(data.join("paddock.log")).unwrap_or_default();
            format!("the listening line {line:?}; log:\n{log}")
        })?;
        let url = listening["listening"]
            .as_str()
            .context("listening")?
            .to_owned();
        let pid = listening["pid"].as_u64().context("pid")? as u32;
        Ok(Host {
            child,
            pid,
            url,
            data: data.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(OWNER_TOKEN)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.request(method.parse()?, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = tokio::time::timeout(WAIT, request.send()).await??;
        let status = response.status().as_u16();
        let bytes = tokio::time::timeout(WAIT, response.bytes()).await??;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Ok((status, value))
    }

    async fn create_session(&self, body: Value) -> anyhow::Result<String> {
        let (status, view) = self.call("POST", "/v1/sessions", Some(body)).await?;
        ensure!(status == 201, "create session: {status} {view}");
        Ok(view["id"].as_str().context("session id")?.to_owned())
    }

    async fn exec(&self, session: &str, body: Value) -> anyhow::Result<String> {
        let (status, view) = self
            .call("POST", &format!("/v1/sessions/{session}/execs"), Some(body))
            .await?;
        ensure!(status == 201, "exec: {status} {view}");
        Ok(view["id"].as_str().context("exec id")?.to_owned())
    }

    fn stdin(&self, session: &str, exec: &str, data: String) -> StdinPost {
        StdinPost {
            request: self
                .request(
                    reqwest::Method::POST,
                    &format!("/v1/sessions/{session}/execs/{exec}/stdin"),
                )
                .header("content-type", "application/octet-stream")
                .body(data),
        }
    }

    async fn events(&self, session: &str, exec: &str, since: Option<u64>) -> anyhow::Result<Sse> {
        let mut request = self.request(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/execs/{exec}/events"),
        );
        if let Some(since) = since {
            request = request.header("Last-Event-ID", since.to_string());
        }
        let response = tokio::time::timeout(WAIT, request.send()).await??;
        ensure!(
            response.status().as_u16() == 200,
            "events: {}",
            response.status()
        );
        Ok(Sse::new(Box::pin(response.bytes_stream())))
    }

    /// Reads an exec's events to its `exit` event; returns that event's data.
    async fn run_to_exit(&self, session: &str, exec: &str) -> anyhow::Result<Value> {
        self.events(session, exec, None).await?.read_to_exit().await
    }

    /// Starts `argv` and reads its stream to the end, counting output.
    async fn stream(
        &self,
        session: &str,
        argv: &[&str],
        expect: usize,
        runnerd: u32,
    ) -> anyhow::Result<Streamed> {
        let cpu0 = cpu_split(Some(self.pid), runnerd);
        let t = Instant::now();
        let exec = self.exec(session, json!({ "argv": argv })).await?;
        let mut sse = self.events(session, &exec, None).await?;
        let mut out = Streamed::default();
        let mut exit = Value::Null;
        while let Some(event) = tokio::time::timeout(WAIT, sse.next()).await?? {
            out.events += 1;
            match event.event.as_str() {
                "stdout" => out.payload += event.text()?.len(),
                "output_gap" => out.output_gaps += 1,
                "gap" => out.ring_gaps += 1,
                "exit" => {
                    exit = serde_json::from_slice(&event.data)?;
                    break;
                }
                other => bail!(
                    "unexpected {other} event: {}",
                    String::from_utf8_lossy(&event.data)
                ),
            }
        }
        out.elapsed = t.elapsed();
        out.wire = sse.wire;
        out.cpu = cpu_delta(cpu_split(Some(self.pid), runnerd), cpu0);
        ensure!(
            exit["reason"] == "exited" && exit["code"] == 0,
            "stream exec: {exit}"
        );
        ensure!(
            out.payload == expect || out.output_gaps + out.ring_gaps > 0,
            "streamed {} of {expect} bytes",
            out.payload
        );
        Ok(out)
    }

    /// The pid of the session's runnerd, from its sandbox state file.
    fn sandbox_pid(&self, session: &str) -> anyhow::Result<u32> {
        sandbox_pid_in(&self.data, session)
    }

    fn runnerd_pids(&self) -> Vec<u32> {
        runnerd_pids_in(&self.data)
    }
}

/// The pid of `session`'s runnerd, from its sandbox state file under
/// `data` (a host's or a link's data dir).
fn sandbox_pid_in(data: &Path, session: &str) -> anyhow::Result<u32> {
    for dir in std::fs::read_dir(data.join("sandboxes"))? {
        let Ok(text) = std::fs::read_to_string(dir?.path().join("state.json")) else {
            continue;
        };
        let state: Value = serde_json::from_str(&text)?;
        if state["session_id"] == session {
            return Ok(state["pid"].as_u64().context("pid")? as u32);
        }
    }
    bail!("no sandbox for session {session}")
}

/// The runnerds of the sandboxes under `data`.
fn runnerd_pids_in(data: &Path) -> Vec<u32> {
    let Ok(dirs) = std::fs::read_dir(data.join("sandboxes")) else {
        return Vec::new();
    };
    dirs.filter_map(|d| {
        let text = std::fs::read_to_string(d.ok()?.path().join("state.json")).ok()?;
        let state: Value = serde_json::from_str(&text).ok()?;
        state["pid"].as_u64().map(|p| p as u32)
    })
    .collect()
}

impl Drop for Host {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        for pid in self.runnerd_pids() {
            // SAFETY: kill(2) on a pid this host's provider started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

struct StdinPost {
    request: reqwest::RequestBuilder,
}

impl StdinPost {
    fn close(self) -> Self {
        Self {
            request: self.request.query(&[("close", "true")]),
        }
    }

    async fn send(self) -> anyhow::Result<()> {
        let response = tokio::time::timeout(WAIT, self.request.send()).await??;
        let status = response.status().as_u16();
        ensure!(
            status == 204,
            "stdin: {status} {}",
            response.text().await.unwrap_or_default()
        );
        Ok(())
    }
}

/// A runnerd started by the bench itself, without the host.
struct Runnerd {
    child: Child,
    client: Client,
    _stdout: BufReader<ChildStdout>,
}

impl Runnerd {
    fn spawn(binary: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<Runnerd> {
        let workspace = dir.join("workspace");
        std::fs::create_dir_all(&workspace)?;
        let token = "bench-runnerd-token-0001";
        let mut child = Command::new(binary)
            .arg("--workspace")
            .arg(&workspace)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--home")
            .arg(dir)
            .args(extra)
            .env("RUNNERD_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning runnerd")?;
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let listening: Listening = serde_json::from_str(&line)
            .with_context(|| format!("runnerd's listening line {line:?}"))?;
        Ok(Runnerd {
            child,
            client: Client::new(format!("http://{}", listening.listening), token),
            _stdout: stdout,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().ok();
    }
}

impl Drop for Runnerd {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

// ---------------------------------------------------------------------------
// SSE

struct SseEvent {
    event: String,
    data: Vec<u8>,
}

impl SseEvent {
    fn text(&self) -> anyhow::Result<String> {
        #[derive(serde::Deserialize)]
        struct Text {
            text: String,
        }
        Ok(serde_json::from_slice::<Text>(&self.data)?.text)
    }
}

/// A byte-level SSE reader that scans each byte once (large streams).
struct Sse {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>>>>,
    buf: Vec<u8>,
    /// Start of the first unparsed event.
    pos: usize,
    /// Where the search for the next blank line resumes.
    scan: usize,
    /// Bytes received.
    wire: usize,
}

impl Sse {
    fn new(body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>>>>) -> Sse {
        Sse {
            body,
            buf: Vec::new(),
            pos: 0,
            scan: 0,
            wire: 0,
        }
    }

    async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.parse() {
                return Ok(Some(event));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.scan -= self.pos;
                self.pos = 0;
            }
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    self.wire += chunk.len();
                    self.buf.extend_from_slice(&chunk);
                }
                None => return Ok(None),
            }
        }
    }

    fn parse(&mut self) -> Option<SseEvent> {
        loop {
            let found = self.buf[self.scan..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| self.scan + i);
            let Some(newline) = found else {
                self.scan = self.buf.len();
                return None;
            };
            // A blank line ends the event: "\n\n".
            if newline == self.pos || self.buf.get(newline.wrapping_sub(1)) != Some(&b'\n') {
                self.scan = newline + 1;
                if newline == self.pos {
                    // A lone newline at the start: skip it.
                    self.pos = newline + 1;
                }
                continue;
            }
            let block = &self.buf[self.pos..newline - 1];
            let mut event = SseEvent {
                event: "message".into(),
                data: Vec::new(),
            };
            let mut has_data = false;
            for line in block.split(|&b| b == b'\n') {
                if let Some(v) = line.strip_prefix(b"event:") {
                    event.event = String::from_utf8_lossy(v.trim_ascii()).into_owned();
                } else if let Some(v) = line.strip_prefix(b"data:") {
                    event
                        .data
                        .extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
                    has_data = true;
                }
            }
            self.pos = newline + 1;
            self.scan = self.pos;
            if has_data {
                return Some(event);
            }
            // A keep-alive comment.
        }
    }

    /// The next event named `kind`, skipping others (but not the end).
    async fn next_of(&mut self, kind: &str) -> anyhow::Result<SseEvent> {
        loop {
            let event = tokio::time::timeout(WAIT, self.next())
                .await??
                .ok_or_else(|| anyhow!("the stream ended before a {kind} event"))?;
            if event.event == kind {
                return Ok(event);
            }
            ensure!(event.event != "exit", "exit before a {kind} event");
        }
    }

    /// Reads to the `exit` event; its data.
    async fn read_to_exit(mut self) -> anyhow::Result<Value> {
        let event = self.next_of("exit").await?;
        Ok(serde_json::from_slice(&event.data)?)
    }
}

// ---------------------------------------------------------------------------
// Numbers and the table

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    }

    fn median(&self) -> Duration {
        self.percentile(0.5)
    }
}

enum Target {
    Below(Duration),
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 7]>,
}

impl Table {
    fn section(&mut self, title: &str) {
        self.rows.push([
            title.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    fn row(
        &mut self,
        metric: &str,
        s: &Samples,
        baseline: Option<(&str, Duration)>,
        target: Option<Target>,
    ) {
        let median = s.median();
        let (base, ratio) = match baseline {
            Some((name, d)) => (
                format!("{name} {}", fmt_d(d)),
                format!("{:.1}x", median.as_secs_f64() / d.as_secs_f64()),
            ),
            None => (String::new(), String::new()),
        };
        let (target, result) = match target {
            Some(Target::Below(limit)) => (
                format!("median < {}", fmt_d(limit)),
                if median < limit { "PASS" } else { "MISS" }.to_owned(),
            ),
            None => (String::new(), String::new()),
        };
        self.rows.push([
            format!("  {metric}"),
            fmt_d(median),
            fmt_d(s.percentile(0.99)),
            base,
            ratio,
            target,
            result,
        ]);
    }

    fn throughput(&mut self, metric: &str, s: &Streamed, bytes: usize, baseline: (&str, Duration)) {
        let rate = s.rate();
        let base = mb_per_s(bytes, baseline.1);
        let mut extra = format!(
            "{:.0} ms, {} events, {:.0} MB wire, CPU s {:.2}/{:.2}/{:.2}/{:.2}",
            s.elapsed.as_secs_f64() * 1e3,
            s.events,
            s.wire as f64 / 1e6,
            s.cpu[0],
            s.cpu[1],
            s.cpu[2],
            s.cpu[3]
        );
        if s.payload != bytes {
            extra += &format!(
                "; LOST {:.0}% (runnerd gaps {}, host ring gaps {})",
                100.0 * (1.0 - s.payload as f64 / bytes as f64),
                s.output_gaps,
                s.ring_gaps
            );
        }
        self.rows.push([
            format!("  {metric}"),
            format!("{rate:.0} MB/s"),
            String::new(),
            format!("{} {base:.0} MB/s", baseline.0),
            format!("{:.3}x", rate / base),
            extra,
            String::new(),
        ]);
    }

    fn note(&mut self, metric: &str, value: &str) {
        self.rows.push([
            metric.to_owned(),
            value.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    fn memory(&mut self, metric: &str, kib: u64, target_kib: Option<u64>) {
        self.memory_f(metric, kib as f64, target_kib.map(|t| t as f64));
    }

    fn memory_f(&mut self, metric: &str, kib: f64, target_kib: Option<f64>) {
        let (target, result) = match target_kib {
            Some(t) => (
                format!("<= {} KiB", t),
                if kib <= t { "PASS" } else { "MISS" }.to_owned(),
            ),
            None => (String::new(), String::new()),
        };
        self.rows.push([
            format!("  {metric}"),
            if kib.abs() < 100.0 {
                format!("{kib:.1} KiB")
            } else {
                format!("{kib:.0} KiB")
            },
            String::new(),
            String::new(),
            String::new(),
            target,
            result,
        ]);
    }

    fn print(&self) {
        let header = [
            "metric",
            "median",
            "p99",
            "baseline",
            "ratio",
            "target / notes",
            "result",
        ];
        let mut widths = header.map(str::len);
        for row in &self.rows {
            if row[1..].iter().all(String::is_empty) {
                continue;
            }
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String; 7]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                if (1..=2).contains(&i) || i == 4 {
                    out += &" ".repeat(pad);
                    out += cell;
                } else {
                    out += cell;
                    out += &" ".repeat(pad);
                }
                out += " | ";
            }
            out.trim_end_matches(" | ").trim_end().to_owned()
        };
        println!("{}", line(&header.map(str::to_owned)));
        println!("{}", widths.map(|w| "-".repeat(w)).join("-|-"));
        for row in &self.rows {
            if row[1..].iter().all(String::is_empty) {
                println!("{}", row[0]);
            } else {
                println!("{}", line(row));
            }
        }
    }
}

fn fmt_d(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}
