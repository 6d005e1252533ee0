//! A real Docker Engine API for tests: podman's Docker-compatible service,
//! installed (as root, from Debian's packages) when missing and started once
//! per test binary on a socket of its own, with a store of its own.
//!
//! Why a store of its own (images, containers, volumes and locks under
//! `/tmp/paddock-podman-PID`): podman's default store is shared machine
//! state, and its default lock type is a mutex in shared memory that stays
//! taken for good when a podman process dies holding it. One such lock in
//! the default store hung every later run on that machine (each container
//! that mounted the stuck volume "did not start within 30s"). File locks
//! end with their process, and a private store cannot be wedged by
//! anything outside this run.
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
    /// The service's `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF`, for
    /// the CLI calls of the cleanup.
    pub confs: Confs,
}

/// The configuration files that point podman at this run's store.
#[derive(Debug, Clone)]
pub struct Confs {
    containers: PathBuf,
    storage: PathBuf,
}

impl Confs {
    /// The files of the run whose directory is `dir`.
    fn in_dir(dir: &Path) -> Self {
        Self {
            containers: dir.join("containers.conf"),
            storage: dir.join("storage.conf"),
        }
    }

    /// `podman ARGS` against this run's store.
    fn podman(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .args(args)
            .env("CONTAINERS_CONF", &self.containers)
            .env("CONTAINERS_STORAGE_CONF", &self.storage)
            .stdin(Stdio::null());
        command
    }

    /// Removes the volumes matching `filter` (`label=...`).
    fn remove_volumes(&self, filter: &str) {
        for name in self
            .output(&["volume", "ls", "-q", "--filter", filter])
            .split_whitespace()
        {
            self.output(&["volume", "rm", "-f", name]);
        }
    }

    /// The stdout of `podman ARGS`, empty when it fails.
    fn output(&self, args: &[&str]) -> String {
        self.podman(args)
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
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
            let (host, confs) = started.unwrap_or_else(|e| panic!("podman cannot run here: {e}"));
            let image = ensure_image(&host).await;
            Podman { host, image, confs }
        })
        .await
}

fn start() -> Result<(String, Confs), String> {
    install()?;
    // Per test binary (its pid): several binaries may run at once. The
    // directories of binaries that ended are removed on the way.
    remove_stale_dirs();
    let dir = PathBuf::from(format!("/tmp/paddock-podman-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tmp")).map_err(|e| e.to_string())?;
    let confs = Confs::in_dir(&dir);
    let (nofile, nproc) = (
        hard_limit(libc::RLIMIT_NOFILE, 65536),
        hard_limit(libc::RLIMIT_NPROC, 16384),
    );
    let d = dir.display();
    std::fs::write(
        &confs.containers,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             lock_type = \"file\"\ntmp_dir = \"{d}/tmp\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        &confs.storage,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/run\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let socket = dir.join("podman.sock");
    let _ = std::fs::remove_file(&socket);
    let log = std::fs::File::create(dir.join("service.log")).map_err(|e| e.to_string())?;
    let (service_confs, service_socket) = (confs.clone(), socket.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    // The service is spawned from a thread that lives as long as the test
    // binary, since the parent-death signal fires when the spawning
    // *thread* ends.
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let service = format!("unix://{}", service_socket.display());
        let mut command = service_confs.podman(&["system", "service", "--time=0", &service]);
        command.stdout(Stdio::null()).stderr(log);
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
    Ok((format!("unix://{}", socket.display()), confs))
}

/// Removes `/tmp/paddock-podman-PID` directories whose process is gone,
/// with their store: first the containers a test left running (conmon
/// keeps them alive after the service), then what is still mounted there.
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
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let confs = Confs::in_dir(&dir);
        if confs.storage.exists() {
            confs.output(&["rm", "--all", "--force", "--time", "0"]);
        }
        unmount_under(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The mount point is the fifth field (spaces in it are octal-escaped,
    // and our paths have none).
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in points {
        let Ok(point) = std::ffi::CString::new(point) else {
            continue;
        };
        // SAFETY: umount2 with a valid NUL-terminated path.
        unsafe {
            libc::umount2(point.as_ptr(), libc::MNT_DETACH);
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
    let confs = &podman.confs;
    for id in confs
        .output(&["ps", "-aq", "--filter", &filter])
        .split_whitespace()
    {
        confs.output(&["rm", "-f", "-t", "0", id]);
    }
    confs.remove_volumes(&filter);
}

/// Removes the cache volumes of `owner` (they outlive sandboxes on
/// purpose, so a test with owners of its own cleans them up itself).
pub fn remove_owner_caches(podman: &Podman, owner: &str) {
    podman
        .confs
        .remove_volumes(&format!("label=dev.paddock.owner={owner}"));
}

/// Removes a network a test made (networks are machine-wide, not in the
/// run's store).
pub fn remove_network(podman: &Podman, name: &str) {
    podman.confs.output(&["network", "rm", "-f", name]);
}

/// The running containers of host instance `instance`.
pub fn running(podman: &Podman, instance: &str) -> usize {
    let filter = format!("label=dev.paddock.instance={instance}");
    podman
        .confs
        .output(&["ps", "-q", "--filter", &filter])
        .split_whitespace()
        .count()
}
