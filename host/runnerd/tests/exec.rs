//! Execs through the real binary: exit codes, streams, stdin, cancel of a
//! whole process tree, timeout, exact output cap, replay and gaps, shutdown.

mod common;

use std::time::Duration;

use common::{Collected, Runnerd, alive, collect, eventually, exec};
use paddock_runnerd::proto::{ExecState, ExitReason, Frame, GapRange, ProcessStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_and_both_streams() {
    let runnerd = Runnerd::start();
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]))
        .await
        .expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(got.stdout, b"out\n");
    assert_eq!(got.stderr, b"err\n");
    let exit = got.exit();
    assert_eq!(exit.reason, ExitReason::Exited { code: 3 });
    assert_eq!(exit.status, Some(ProcessStatus::Exited(3)));
    let seqs = got.seqs();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seqs 1, 2, …"
    );

    let status = runnerd.client.exec(&created.id).await.expect("status");
    assert_eq!(status.state, ExecState::Ended);
    assert_eq!(status.exit, Some(exit));
    assert_eq!((status.stdout_bytes, status.stderr_bytes), (4, 4));
    assert_eq!(status.last_seq, *seqs.last().expect("frames"));
    let all = runnerd.client.execs().await.expect("list");
    assert!(all.iter().any(|e| e.id == created.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killing_signal_is_reported_as_such() {
    let runnerd = Runnerd::start();
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", "kill -9 $$"]))
        .await
        .expect("create");
    let exit = collect(&runnerd.client, &created.id, 0).await.exit();
    assert_eq!(exit.reason, ExitReason::Signaled { signal: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_kept_open_written_twice_then_closed() {
    let runnerd = Runnerd::start();
    let mut request = exec(&["cat"]);
    request.stdin = Some("first\n".into());
    request.keep_stdin_open = true;
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let client = &runnerd.client;
    client
        .write_stdin(&created.id, &b"second\n"[..], false)
        .await
        .expect("write 1");
    assert!(client.exec(&created.id).await.expect("status").stdin_open);
    client
        .write_stdin(&created.id, &b"third\n"[..], true)
        .await
        .expect("write 2 and close");
    let got = collect(client, &created.id, 0).await;
    assert_eq!(got.stdout_text(), "first\nsecond\nthird\n");
    assert_eq!(got.exit().reason, ExitReason::Exited { code: 0 });

    let late = client.write_stdin(&created.id, &b"x"[..], false).await;
    assert_eq!(
        late.err().and_then(|e| e.status()).map(|s| s.as_u16()),
        Some(409)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_closed_by_default_and_writes_refused() {
    let runnerd = Runnerd::start();
    let mut request = exec(&["sh", "-c", "cat; echo done"]);
    request.stdin = Some("only\n".into());
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(
        got.stdout_text(),
        "only\ndone\n",
        "stdin was closed after the initial text"
    );

    let mut request = exec(&["sleep", "5"]);
    request.keep_stdin_open = false;
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let err = runnerd
        .client
        .write_stdin(&created.id, &b"x"[..], false)
        .await
        .expect_err("no stdin pipe");
    assert_eq!(err.code(), Some("stdin_closed"));
    runnerd
        .client
        .cancel(&created.id, Some(0))
        .await
        .expect("cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_failure_is_a_clear_error_not_an_exit_127() {
    let runnerd = Runnerd::start();
    let err = runnerd
        .client
        .create_exec(&exec(&["no-such-program-for-runnerd"]))
        .await
        .expect_err("refused");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.code(), Some("command_not_found"));
    assert!(err.to_string().contains("no-such-program-for-runnerd"));

    let err = runnerd
        .client
        .create_exec(&exec(&["./missing.sh"]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("command_not_found"));

    std::fs::write(runnerd.workspace().join("plain.txt"), "x").expect("file");
    let err = runnerd
        .client
        .create_exec(&exec(&["./plain.txt"]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("not_executable"));

    let err = runnerd
        .client
        .create_exec(&exec(&[]))
        .await
        .expect_err("empty argv");
    assert_eq!(err.code(), Some("invalid_argv"));
    assert!(
        runnerd.client.execs().await.expect("list").is_empty(),
        "nothing was started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cwd_is_confined_to_the_workspace() {
    let runnerd = Runnerd::start();
    std::fs::create_dir(runnerd.workspace().join("sub")).expect("mkdir");
    let mut request = exec(&["pwd"]);
    request.cwd = Some("sub".into());
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    let expected = runnerd
        .workspace()
        .join("sub")
        .canonicalize()
        .expect("canonical");
    assert_eq!(got.stdout_text().trim(), expected.to_string_lossy());

    for (cwd, code) in [
        ("..", "path_escape"),
        ("/tmp", "absolute_path"),
        ("nope", "file_not_found"),
    ] {
        let mut request = exec(&["pwd"]);
        request.cwd = Some(cwd.into());
        let err = runnerd.client.create_exec(&request).await.expect_err(cwd);
        assert_eq!(err.code(), Some(code), "{cwd}: {err}");
    }
}

/// Reads frames until `lines` complete stdout lines arrived; returns them
/// and the seq of the last frame read.
async fn read_lines(
    stream: &mut paddock_runnerd::client::FrameStream,
    lines: usize,
) -> (Vec<String>, u64) {
    let mut text = String::new();
    let mut last = 0;
    while text.lines().count() < lines || !text.ends_with('\n') {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("output in time")
            .expect("stream open")
            .expect("frame");
        last = frame.seq();
        match frame {
            Frame::Stdout { data, .. } => text.push_str(&String::from_utf8_lossy(&data)),
            Frame::Stderr { .. } => {}
            other => panic!("unexpected frame before the pids: {other:?}"),
        }
    }
    (text.lines().map(str::to_owned).collect(), last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_whole_tree() {
    cancel_kills_tree(&[]).await;
}

/// Without cgroups, the process group and the /proc parent links still
/// reach a child that called setsid while its parent lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_whole_tree_without_cgroups() {
    cancel_kills_tree(&["--no-cgroups"]).await;
}

async fn cancel_kills_tree(args: &[&str]) {
    let runnerd = Runnerd::start_with(args, None);
    let cgroups = runnerd.client.health().await.expect("health").cgroups;
    // A background child in the exec's process group, and one that left it
    // with setsid (it prints its own pid, then becomes sleep).
    let script = r#"sleep 300 & echo $!; setsid sh -c 'echo $$; exec sleep 300' & wait"#;
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", script]))
        .await
        .expect("create");
    let mut stream = runnerd.client.frames(&created.id, 0).await.expect("attach");
    let (lines, last) = read_lines(&mut stream, 2).await;
    let pids: Vec<u32> = lines
        .iter()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || pids.iter().all(|p| alive(*p))).await,
        "both sleeps run"
    );
    let session = |pid: u32| unsafe { libc::getsid(pid as i32) };
    assert_ne!(
        session(pids[0]),
        session(pids[1]),
        "the second sleep left the session"
    );

    let status = runnerd
        .client
        .cancel(&created.id, Some(500))
        .await
        .expect("cancel");
    assert_eq!(status.id, created.id);
    runnerd
        .client
        .cancel(&created.id, Some(500))
        .await
        .expect("cancel is idempotent");

    let mut rest = Vec::new();
    while let Some(frame) = stream.next().await {
        rest.push(frame.expect("frame"));
    }
    let got = Collected::from_frames(rest);
    assert_eq!(got.exit().reason, ExitReason::Cancelled);
    assert!(got.seqs().iter().all(|s| *s > last));

    let gone = eventually(Duration::from_secs(5), || pids.iter().all(|p| !alive(*p))).await;
    eprintln!(
        "cgroups {}: killed by process group + /proc tree{}",
        if cgroups {
            "on"
        } else {
            "off (not writable, or --no-cgroups)"
        },
        if cgroups { " + cgroup.kill" } else { "" }
    );
    assert!(gone, "both sleeps are dead: {pids:?}");

    // A re-attach after the end sees the same single terminal frame.
    let again = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(again.exit().reason, ExitReason::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_an_orphan_that_left_the_tree_when_cgroups_work() {
    cancel_reaches_orphan(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_without_cgroups_reports_the_orphan_limit() {
    cancel_reaches_orphan(&["--no-cgroups"]).await;
}

async fn cancel_reaches_orphan(args: &[&str]) {
    let runnerd = Runnerd::start_with(args, None);
    let cgroups = runnerd.client.health().await.expect("health").cgroups;
    // The subshell exits at once: the setsid sleep is orphaned (no parent
    // link to the exec) and in another session. Only the cgroup holds it.
    let script = r#"(setsid sh -c 'echo $$; exec sleep 300' &); sleep 300"#;
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", script]))
        .await
        .expect("create");
    let mut stream = runnerd.client.frames(&created.id, 0).await.expect("attach");
    let (lines, _) = read_lines(&mut stream, 1).await;
    let orphan: u32 = lines[0].trim().parse().expect("pid");
    assert!(eventually(Duration::from_secs(5), || alive(orphan)).await);
    runnerd
        .client
        .cancel(&created.id, Some(200))
        .await
        .expect("cancel");
    let mut frames = Vec::new();
    while let Some(frame) = stream.next().await {
        frames.push(frame.expect("frame"));
    }
    assert_eq!(
        Collected::from_frames(frames).exit().reason,
        ExitReason::Cancelled
    );
    let wait = Duration::from_secs(if cgroups { 5 } else { 1 });
    let gone = eventually(wait, || !alive(orphan)).await;
    if cgroups {
        assert!(gone, "cgroup.kill reached the orphan");
    } else {
        eprintln!(
            "NOTE: cgroups are off (not writable, or --no-cgroups): the orphaned setsid \
             process (pid {orphan}, survived: {}) is out of reach of process-group and \
             /proc-tree kills",
            !gone
        );
        unsafe { libc::kill(orphan as i32, libc::SIGKILL) };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_timed_out() {
    let runnerd = Runnerd::start();
    let mut request = exec(&["sleep", "30"]);
    request.timeout_ms = Some(300);
    request.kill_grace_ms = Some(200);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let exit = collect(&runnerd.client, &created.id, 0).await.exit();
    assert_eq!(exit.reason, ExitReason::TimedOut);
    assert_eq!(exit.status, Some(ProcessStatus::Signaled(libc::SIGTERM)));
    assert!(exit.duration_ms < 5_000, "{exit:?}");

    // A process that ignores SIGTERM gets SIGKILL after the grace.
    let mut request = exec(&["sh", "-c", "trap '' TERM; sleep 30 & wait; wait"]);
    request.timeout_ms = Some(200);
    request.kill_grace_ms = Some(300);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let exit = collect(&runnerd.client, &created.id, 0).await.exit();
    assert_eq!(exit.reason, ExitReason::TimedOut);
    assert_eq!(exit.status, Some(ProcessStatus::Signaled(libc::SIGKILL)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_can_be_moved() {
    let runnerd = Runnerd::start();
    let mut request = exec(&["sleep", "1.5"]);
    request.timeout_ms = Some(700);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let status = runnerd
        .client
        .set_deadline(&created.id, 10_000)
        .await
        .expect("extend");
    assert!(status.deadline_at_ms.is_some());
    let exit = collect(&runnerd.client, &created.id, 0).await.exit();
    assert_eq!(exit.reason, ExitReason::Exited { code: 0 });
    let err = runnerd
        .client
        .set_deadline(&created.id, 10)
        .await
        .expect_err("ended");
    assert_eq!(err.code(), Some("exec_ended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_is_exact() {
    let runnerd = Runnerd::start();
    let mut request = exec(&["head", "-c", "5000", "/dev/zero"]);
    request.output_cap_bytes = Some(1000);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(got.stdout.len(), 1000);
    assert_eq!(got.exit().reason, ExitReason::OutputCapped);
    let status = runnerd.client.exec(&created.id).await.expect("status");
    assert!(status.output_capped);
    assert_eq!(status.stdout_bytes + status.stderr_bytes, 1000);

    // The cap counts stdout and stderr together, chunk by chunk.
    let mut request = exec(&[
        "sh",
        "-c",
        "printf 0123456789; sleep 0.2; printf abcdefghij >&2; sleep 30",
    ]);
    request.output_cap_bytes = Some(15);
    request.kill_grace_ms = Some(100);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(got.stdout, b"0123456789");
    assert_eq!(got.stderr, b"abcde");
    assert_eq!(got.exit().reason, ExitReason::OutputCapped);

    // Output below the cap is untouched.
    let mut request = exec(&["head", "-c", "5000", "/dev/zero"]);
    request.output_cap_bytes = Some(5001);
    let created = runnerd.client.create_exec(&request).await.expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    assert_eq!(got.stdout.len(), 5000);
    assert_eq!(got.exit().reason, ExitReason::Exited { code: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_twice_and_reattach_without_gap_or_duplicate() {
    let runnerd = Runnerd::start();
    let script = "for i in $(seq 1 30); do echo line$i; sleep 0.01; done";
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", script]))
        .await
        .expect("create");
    let first = runnerd
        .client
        .frames(&created.id, 0)
        .await
        .expect("attach 1");
    let second = runnerd
        .client
        .frames(&created.id, 0)
        .await
        .expect("attach 2");
    let (first, second) = tokio::join!(first.collect(), second.collect());
    let first = Collected::from_frames(first.expect("stream 1"));
    let second = Collected::from_frames(second.expect("stream 2"));
    let expected: String = (1..=30).map(|i| format!("line{i}\n")).collect();
    assert_eq!(first.stdout_text(), expected);
    assert_eq!(
        first.frames, second.frames,
        "both attachments saw the same frames"
    );
    let seqs = first.seqs();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // Re-attach from the middle: exactly the frames after it.
    let middle = seqs.len() as u64 / 2;
    let tail = collect(&runnerd.client, &created.id, middle).await;
    assert_eq!(tail.frames.as_slice(), &first.frames[middle as usize..]);
    assert!(!tail.frames.iter().any(|f| matches!(f, Frame::Gap { .. })));

    // From the terminal frame's seq: nothing is left to send.
    let last = *seqs.last().expect("frames");
    let none = collect(&runnerd.client, &created.id, last).await;
    assert!(none.frames.is_empty());
    let err = runnerd
        .client
        .frames(&created.id, last + 1)
        .await
        .expect_err("beyond the end");
    assert_eq!(err.code(), Some("bad_since"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_ring_reports_a_gap_then_the_tail() {
    let runnerd = Runnerd::start_with(&["--ring-bytes", "64"], None);
    // Many small frames (one per line, spaced so each read sees one), and
    // nobody attached while they are produced.
    let script = "for i in $(seq 1 40); do echo line$i; sleep 0.005; done";
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", script]))
        .await
        .expect("create");
    let client = runnerd.client.clone();
    let id = created.id.clone();
    let mut ended = false;
    for _ in 0..500 {
        if client.exec(&id).await.expect("status").state == ExecState::Ended {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended);
    let status = client.exec(&id).await.expect("status");
    assert!(status.first_seq > 1, "the ring evicted frames: {status:?}");

    let got = collect(&client, &id, 0).await;
    let Some(Frame::Gap { seq, range }) = got.frames.first() else {
        panic!("first frame is a gap: {:?}", got.frames);
    };
    assert_eq!(
        *range,
        GapRange {
            from: 1,
            to: status.first_seq - 1
        }
    );
    assert_eq!(*seq, range.to, "a gap's seq is the last seq it stands for");
    let after: Vec<u64> = got.frames[1..].iter().map(Frame::seq).collect();
    assert_eq!(
        after,
        (status.first_seq..=status.last_seq).collect::<Vec<_>>()
    );
    assert!(
        got.stdout_text().ends_with("line40\n"),
        "the tail is intact"
    );
    assert_eq!(got.exit().reason, ExitReason::Exited { code: 0 });

    // A client already past the evicted part gets no gap.
    let tail = collect(&client, &id, status.first_seq - 1).await;
    assert!(!tail.frames.iter().any(|f| matches!(f, Frame::Gap { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_drained_without_any_client() {
    let runnerd = Runnerd::start();
    // 4 MiB through a 64 KiB pipe: it only finishes if runnerd drains it.
    let created = runnerd
        .client
        .create_exec(&exec(&["head", "-c", "4194304", "/dev/zero"]))
        .await
        .expect("create");
    let client = &runnerd.client;
    let mut ended = false;
    for _ in 0..500 {
        if client.exec(&created.id).await.expect("status").state == ExecState::Ended {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended, "finished with nobody attached");
    let status = client.exec(&created.id).await.expect("status");
    assert_eq!(status.stdout_bytes, 4 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_neither_blocks_the_process_nor_misses_frames_silently() {
    let runnerd = Runnerd::start_with(&["--ring-bytes", "64K"], None);
    let client = &runnerd.client;
    let total = 8 * 1024 * 1024;
    let created = client
        .create_exec(&exec(&["head", "-c", &total.to_string(), "/dev/zero"]))
        .await
        .expect("create");
    // Attached from the start, but reads nothing until the process is done.
    let stalled = client.frames(&created.id, 0).await.expect("attach");
    let mut ended = false;
    for _ in 0..1000 {
        if client.exec(&created.id).await.expect("status").state == ExecState::Ended {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended, "the process finished while a client stalled");
    let got = Collected::from_frames(
        tokio::time::timeout(Duration::from_secs(30), stalled.collect())
            .await
            .expect("in time")
            .expect("stream"),
    );
    let gaps: Vec<GapRange> = got
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Gap { range, .. } => Some(*range),
            _ => None,
        })
        .collect();
    // How often it falls behind depends on how much the socket buffers took
    // while it stalled; what matters is that every miss is a gap frame.
    assert!(
        !gaps.is_empty(),
        "the client fell behind: a gap frame says so"
    );
    let mut expected = 1;
    for frame in &got.frames {
        match frame {
            Frame::Gap { range, seq } => {
                assert_eq!(range.from, expected);
                expected = seq + 1;
            }
            other => {
                assert_eq!(other.seq(), expected, "no hole, no duplicate");
                expected += 1;
            }
        }
    }
    assert!(got.stdout.len() < total);
    assert_eq!(got.exit().reason, ExitReason::Exited { code: 0 });
    let status = client.exec(&created.id).await.expect("status");
    assert_eq!(status.stdout_bytes, total as u64, "everything was drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_reaped() {
    let runnerd = Runnerd::start();
    // The background sleep outlives its shell and is re-parented to runnerd
    // (the subreaper), which must collect it rather than leave a zombie.
    let created = runnerd
        .client
        .create_exec(&exec(&["sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"]))
        .await
        .expect("create");
    let got = collect(&runnerd.client, &created.id, 0).await;
    let pid: u32 = got.stdout_text().trim().parse().expect("pid");
    assert!(
        eventually(Duration::from_secs(5), || !common::exists(pid)).await,
        "pid {pid} was reaped, not left a zombie"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_running_execs_then_exits() {
    let mut runnerd = Runnerd::start();
    let created = runnerd
        .client
        .create_exec(&exec(&["sleep", "300"]))
        .await
        .expect("create");
    let stream = runnerd.client.frames(&created.id, 0).await.expect("attach");
    runnerd.signal(libc::SIGTERM);
    let frames = tokio::time::timeout(Duration::from_secs(15), stream.collect())
        .await
        .expect("in time")
        .expect("stream");
    let got = Collected::from_frames(frames);
    assert_eq!(got.exit().reason, ExitReason::Cancelled);
    assert!(!alive(created.pid));
    assert_eq!(runnerd.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid_1_reaps_every_orphan() {
    // runnerd as PID 1 of a new pid namespace, as in a container. Needs
    // privileges for unshare; skipped (and said so) without them.
    let wrapper = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child=SIGTERM",
    ];
    let runnerd = match Runnerd::try_start_wrapped(&wrapper, &[], None) {
        Ok(runnerd) => runnerd,
        Err(why) => {
            eprintln!("SKIPPED: cannot start runnerd as PID 1 here: {why}");
            return;
        }
    };
    assert_eq!(runnerd.listening.pid, 1);
    let client = &runnerd.client;
    // Orphans of every kind: double-forked, backgrounded and left behind.
    let created = client
        .create_exec(&exec(&[
            "sh",
            "-c",
            "(sleep 0.1 &); sleep 0.2 >/dev/null & echo ok",
        ]))
        .await
        .expect("create");
    assert_eq!(collect(client, &created.id, 0).await.stdout_text(), "ok\n");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Inside the namespace, list every process that is a zombie.
    let created = client
        .create_exec(&exec(&[
            "sh",
            "-c",
            "for s in /proc/[0-9]*/stat; do read -r line < $s && echo \"$line\"; done 2>/dev/null",
        ]))
        .await
        .expect("create");
    let listing = collect(client, &created.id, 0).await.stdout_text();
    let zombies: Vec<&str> = listing
        .lines()
        .filter(|line| {
            line.rfind(')')
                .and_then(|at| line[at + 1..].split_whitespace().next())
                == Some("Z")
        })
        .collect();
    assert!(
        zombies.is_empty(),
        "zombies left under PID 1: {zombies:?}\n{listing}"
    );
    assert!(
        listing.lines().count() >= 2,
        "saw the namespace's processes: {listing}"
    );

    // Stop runnerd itself (unshare does not forward SIGTERM).
    let mut runnerd = runnerd;
    let unshare = runnerd.child.id();
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
        .expect("unshare's children");
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: kill(2) on runnerd, a child of our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    assert_eq!(runnerd.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_client_slows_the_process_instead_of_missing_output() {
    // A ring far smaller than the output (but larger than the 1 MiB pipe
    // buffer, which is drained at full speed once the process exited):
    // without back-pressure most of it would be evicted before this client
    // read it.
    let runnerd = Runnerd::start_with(&["--ring-bytes", "2M"], None);
    let client = &runnerd.client;
    let total = 12 * 1024 * 1024;
    let created = client
        .create_exec(&exec(&["head", "-c", &total.to_string(), "/dev/zero"]))
        .await
        .expect("create");
    let mut stream = client.frames(&created.id, 0).await.expect("attach");
    let (mut bytes, mut gaps, mut exited) = (0, 0, false);
    while let Some(frame) = stream.next().await {
        match frame.expect("frame") {
            Frame::Stdout { data, .. } => {
                bytes += data.len();
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            Frame::Gap { .. } => gaps += 1,
            Frame::Exit { exit, .. } => {
                assert_eq!(exit.reason, ExitReason::Exited { code: 0 });
                exited = true;
            }
            Frame::Stderr { .. } => {}
        }
    }
    assert!(exited);
    assert_eq!(gaps, 0, "a client that keeps reading misses nothing");
    assert_eq!(bytes, total);
}
