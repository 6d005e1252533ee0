//! A real Docker Engine API for tests: podman's Docker-compatible service,
//! installed (as root, from Debian's packages) when missing and started once
//! per test binary on a socket of its own.
//!
//! Why these settings: on this machine kind crun fails on the hybrid cgroup
//! layout, so the service runs runc with the cgroupfs manager; containers'
//! nofile/nproc ulimits are set at or below the machine's hard limits
//! (podman's defaults are above them, and runc refuses to raise them);
//! events go to a file as there is no journald.
//!
//! The service dies with the test binary (parent-death signal); containers
//! a test leaves behind are removed by [`remove_instance`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paddock::provider::docker::{ImageSources, image_exists, import_image};
use tokio::sync::OnceCell;

/// A running podman service and the sandbox image in it.
#[derive(Debug)]
pub struct Podman {
    /// The engine address (`unix:///.../podman.sock`).
    pub host: String,
    /// The sandbox image, built from this tree's static runnerd.
    pub image: String,
    /// `CONTAINERS_CONF` of the service, for the CLI calls of the cleanup.
    pub conf: PathBuf,
}

static PODMAN: OnceCell<Podman> = OnceCell::const_new();

/// The shared service, started (and podman installed) on first use.
/// Panics with the reason when podman cannot run here.
pub async fn podman() -> &'static Podman {
    PODMAN
        .get_or_init(|| async {
            let started = tokio::task::spawn_blocking(start)
                .await
                .expect("start task");
            let (host, conf) = started.unwrap_or_else(|e| panic!("podman cannot run here: {e}"));
            let image = ensure_image(&host).await;
            Podman { host, image, conf }
        })
        .await
}

fn start() -> Result<(String, PathBuf), String> {
    install()?;
    // Per test binary (its pid): several binaries may run at once. The
    // directories of binaries that ended are removed on the way.
    remove_stale_dirs();
    let dir = PathBuf::from(format!("/tmp/paddock-podman-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let conf = dir.join("containers.conf");
    let (nofile, nproc) = (
        hard_limit(libc::RLIMIT_NOFILE, 65536),
        hard_limit(libc::RLIMIT_NPROC, 16384),
    );
    std::fs::write(
        &conf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let socket = dir.join("podman.sock");
    let _ = std::fs::remove_file(&socket);
    let log = std::fs::File::create(dir.join("service.log")).map_err(|e| e.to_string())?;
    let (conf2, socket2) = (conf.clone(), socket.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    // The service is spawned from a thread that lives as long as the test
    // binary, since the parent-death signal fires when the spawning
    // *thread* ends.
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("podman");
        command
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket2.display()))
            .env("CONTAINERS_CONF", &conf2)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl on plain integers between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let spawned = command.spawn().map(|_child| ()).map_err(|e| e.to_string());
        let _ = tx.send(spawned);
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("service.log")).unwrap_or_default();
            return Err(format!(
                "the podman service did not create its socket: {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((format!("unix://{}", socket.display()), conf))
}

/// Removes `/tmp/paddock-podman-PID` directories whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("paddock-podman-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Installs podman, runc and busybox-static when podman is missing.
fn install() -> Result<(), String> {
    let have = |bin: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("podman") && have("runc") && Path::new("/bin/busybox").exists() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("podman is not installed and the tests do not run as root to install it (apt-get install podman runc busybox-static)".into());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let packages = ["install", "-y", "-q", "podman", "runc", "busybox-static"];
    if apt(&packages) || (apt(&["update", "-q"]) && apt(&packages)) {
        Ok(())
    } else {
        Err("apt-get install podman runc busybox-static failed".into())
    }
}

fn hard_limit(resource: libc::__rlimit_resource_t, cap: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_max.min(cap)
}

/// Builds the static runnerd (once; cargo skips it when fresh) and imports
/// the sandbox image, tagged by runnerd's digest so a changed runnerd gets
/// a new image.
async fn ensure_image(host: &str) -> String {
    let runnerd = tokio::task::spawn_blocking(static_runnerd)
        .await
        .expect("build task")
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(&runnerd).expect("read the static runnerd");
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        h.finish()
    };
    let image = format!("localhost/paddock-sandbox:test-{digest:016x}");
    let docker = bollard::Docker::connect_with_unix(
        host.trim_start_matches("unix://"),
        120,
        &bollard::ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
    .expect("connect to podman");
    if !image_exists(&docker, &image).await.expect("inspect image") {
        let sources = ImageSources {
            runnerd,
            busybox: PathBuf::from("/bin/busybox"),
        };
        import_image(&docker, &image, &sources)
            .await
            .expect("import the sandbox image");
    }
    image
}

/// A static runnerd of this tree, built (or found fresh) by a nested cargo
/// in a target directory of its own: one on the outer target directory
/// could wait for the outer cargo's lock forever.
pub fn static_runnerd() -> Result<PathBuf, String> {
    const TRIPLE: &str = "x86_64-unknown-linux-musl";
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("no target dir")?
        .to_owned();
    let own = target.join("paddock-sandbox-runnerd");
    let binary = own.join(TRIPLE).join("sandbox/runnerd");
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    ok(Command::new("rustup").args(["target", "add", TRIPLE]));
    // Always run: cargo rebuilds only when runnerd changed.
    let built = ok(Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "paddock-runnerd",
            "--profile",
            "sandbox",
            "--target",
            TRIPLE,
        ])
        .env("CARGO_TARGET_DIR", &own)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    if built && binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "cannot build the static runnerd (cargo build -p paddock-runnerd --profile sandbox --target {TRIPLE})"
        ))
    }
}

/// Removes every container and workspace volume of host instance
/// `instance`, whatever state a test left them in.
pub fn remove_instance(podman: &Podman, instance: &str) {
    let filter = format!("label=dev.paddock.instance={instance}");
    let run = |args: &[&str]| {
        Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &podman.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for id in run(&["ps", "-aq", "--filter", &filter]).split_whitespace() {
        run(&["rm", "-f", "-t", "0", id]);
    }
    for name in run(&["volume", "ls", "-q", "--filter", &filter]).split_whitespace() {
        run(&["volume", "rm", "-f", name]);
    }
}

/// Removes the cache volumes of `owner` (they outlive sandboxes on
/// purpose, so a test with owners of its own cleans them up itself).
pub fn remove_owner_caches(podman: &Podman, owner: &str) {
    let output = Command::new("podman")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=dev.paddock.owner={owner}"))
        .env("CONTAINERS_CONF", &podman.conf)
        .stderr(Stdio::null())
        .output();
    let names = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for name in names.split_whitespace() {
        let _ = Command::new("podman")
            .args(["volume", "rm", "-f", name])
            .env("CONTAINERS_CONF", &podman.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The running containers of host instance `instance`.
pub fn running(podman: &Podman, instance: &str) -> usize {
    let output = Command::new("podman")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=dev.paddock.instance={instance}"))
        .env("CONTAINERS_CONF", &podman.conf)
        .stderr(Stdio::null())
        .output();
    output
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .count()
        })
        .unwrap_or(0)
}
