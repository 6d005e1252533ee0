//! The default sandbox image, built here without any registry: a static
//! runnerd plus a static busybox as the userland, written into a rootfs
//! tarball in memory and imported through the Engine API
//! (`POST /images/create?fromSrc=-`). `host/sandbox-image/` has the same
//! recipe as a Containerfile and a script for operators.

use std::io;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::container::{CACHE, HOME, RUNNERD, WORKSPACE};
use super::engine::not_found;
use crate::provider::ProviderError;

/// The uid/gid of `/workspace` and `HOME` in the image.
const SANDBOX_UID: u32 = 10001;

/// What the default image is built from.
#[derive(Debug, Clone)]
pub struct ImageSources {
    /// A statically linked runnerd (`just runnerd-static`).
    pub runnerd: PathBuf,
    /// A statically linked busybox (Debian's `busybox-static`).
    pub busybox: PathBuf,
}

/// Why the image could not be built or found.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listing the applets of {path}: {message}")]
    Applets { path: PathBuf, message: String },
    #[error("the engine refused the image import: {0}")]
    Import(#[source] bollard::errors::Error),
    #[error("inspecting image {image}: {source}")]
    Inspect {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("image name {0:?} has no tag (want name:tag)")]
    Name(String),
}

impl From<ImageError> for ProviderError {
    fn from(err: ImageError) -> Self {
        ProviderError::Unavailable {
            provider: super::KIND,
            message: err.to_string(),
        }
    }
}

/// Whether the engine has `image`.
///
/// # Errors
///
/// The engine failed to answer (other than "no such image").
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, ImageError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(err) if not_found(&err) => Ok(false),
        Err(source) => Err(ImageError::Inspect {
            image: image.to_owned(),
            source,
        }),
    }
}

/// Builds the default image from `sources` and imports it as `image`
/// (`name:tag`), replacing an image of that name.
///
/// # Errors
///
/// A source cannot be read, busybox cannot list its applets, or the engine
/// refuses the import.
pub async fn import_image(
    docker: &Docker,
    image: &str,
    sources: &ImageSources,
) -> Result<(), ImageError> {
    image
        .rsplit_once(':')
        .filter(|(repo, tag)| !repo.is_empty() && !tag.is_empty() && !tag.contains('/'))
        .ok_or_else(|| ImageError::Name(image.to_owned()))?;
    let sources = sources.clone();
    let tarball = tokio::task::spawn_blocking(move || rootfs(&sources))
        .await
        .map_err(|e| ImageError::Applets {
            path: PathBuf::new(),
            message: e.to_string(),
        })??;
    let options = CreateImageOptions {
        from_src: Some("-".to_owned()),
        // The whole `name:tag` as the repo, which Docker and podman both
        // honour for an import (podman ignores a separate tag there).
        repo: Some(image.to_owned()),
        changes: vec![
            format!("ENTRYPOINT [\"{RUNNERD}\"]"),
            format!("CMD [\"--workspace\", \"{WORKSPACE}\", \"--listen\", \"0.0.0.0:7070\"]"),
            format!("USER {SANDBOX_UID}:{SANDBOX_UID}"),
            format!("WORKDIR {WORKSPACE}"),
            format!("ENV HOME={HOME}"),
        ],
        ..Default::default()
    };
    let mut progress = docker.create_image(
        Some(options),
        Some(bollard::body_full(tarball.into())),
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(ImageError::Import)?;
    }
    tracing::info!(image, "sandbox image imported");
    Ok(())
}

/// The rootfs tarball: runnerd, busybox and its applet links, the
/// sandbox user, and the directories the provider mounts over (their owner
/// and mode are what the engine copies into a new, empty volume).
fn rootfs(sources: &ImageSources) -> Result<Vec<u8>, ImageError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let runnerd = read(&sources.runnerd)?;
    let busybox = read(&sources.busybox)?;
    let applets = applets(&sources.busybox)?;

    let mut tar = Tar::default();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/local",
        "usr/local/bin",
        "etc",
        "home",
        "proc",
        "sys",
        "dev",
        "run",
    ] {
        tar.dir(dir, 0o755, 0);
    }
    tar.dir("tmp", 0o1777, 0);
    tar.dir(&CACHE[1..], 0o1777, 0);
    tar.dir(&WORKSPACE[1..], 0o755, SANDBOX_UID);
    tar.dir(&HOME[1..], 0o755, SANDBOX_UID);
    tar.file(&RUNNERD[1..], 0o755, &runnerd);
    tar.file("bin/busybox", 0o755, &busybox);
    for applet in applets.iter().filter(|a| a.as_str() != "bin/busybox") {
        tar.symlink(applet, "/bin/busybox");
    }
    tar.file(
        "etc/passwd",
        0o644,
        format!("root:x:0:0:root:/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{HOME}:/bin/sh\n").as_bytes(),
    );
    tar.file(
        "etc/group",
        0o644,
        format!("root:x:0:\nsandbox:x:{SANDBOX_UID}:\n").as_bytes(),
    );
    Ok(tar.finish())
}

/// The applet paths (`bin/sh`, `usr/bin/env`, ...) busybox provides.
fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let failed = |message: String| ImageError::Applets {
        path: busybox.to_owned(),
        message,
    };
    let output = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!("exited with {}", output.status)));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| failed(e.to_string()))?;
    Ok(text
        .lines()
        .filter(|line| line.contains('/') && !line.contains(".."))
        .map(str::to_owned)
        .collect())
}

/// A minimal ustar writer: directories, regular files and symlinks, all
/// owned by root unless told otherwise.
#[derive(Default)]
struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    fn dir(&mut self, path: &str, mode: u32, uid: u32) {
        self.header(&format!("{path}/"), mode, uid, 0, b'5', "");
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.header(path, mode, 0, data.len() as u64, b'0', "");
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.header(path, 0o777, 0, 0, b'2', target);
    }

    fn header(&mut self, path: &str, mode: u32, uid: u32, size: u64, kind: u8, link: &str) {
        let mut h = [0u8; 512];
        // Every path here is short; a longer one would need a prefix split.
        let name = path.as_bytes();
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], u64::from(uid));
        octal(&mut h[116..124], u64::from(uid));
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        let link = link.as_bytes();
        h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        self.bytes.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.bytes.len() % 512;
        if rem != 0 {
            self.bytes.resize(self.bytes.len() + 512 - rem, 0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes.resize(self.bytes.len() + 1024, 0);
        self.bytes
    }
}

/// Writes `value` as zero-padded octal, NUL-terminated, into `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(text);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarball_is_well_formed_ustar() {
        let mut tar = Tar::default();
        tar.dir("workspace", 0o755, SANDBOX_UID);
        tar.file("etc/passwd", 0o644, b"x\n");
        tar.symlink("bin/sh", "/bin/busybox");
        let bytes = tar.finish();
        assert_eq!(bytes.len() % 512, 0);
        assert_eq!(&bytes[..10], b"workspace/");
        assert_eq!(&bytes[108..115], b"0023421", "uid 10001 in octal");
        // The checksum field matches a recomputation.
        let mut header = bytes[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&header[148..154]).expect("ascii"), 8)
            .expect("octal");
        header[148..156].fill(b' ');
        assert_eq!(stored, header.iter().map(|&b| u32::from(b)).sum::<u32>());
    }
}
