//! Compiled components on disk, so a restart does not compile again.
//!
//! The key is the SHA-256 of the wasm bytes together with the engine's
//! compatibility hash (wasmtime version, target, settings): a different
//! engine never loads an artifact compiled for another.

use std::hash::Hash;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;

pub struct ComponentCache {
    dir: PathBuf,
    engine_hash: String,
}

/// Whether a load compiled the component or found it cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        // Only `write` is used; the digest is read from the inner state.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir: dir.to_owned(),
            engine_hash: hex::encode(&hasher.0.finalize()[..8]),
        }
    }

    /// The component for `wasm` (whose SHA-256 is `hash`), from the cache or
    /// compiled now and stored. `name` is for error messages.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        wasm: &[u8],
        hash: &str,
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let path = self.dir.join(format!("{hash}-{}.cwasm", self.engine_hash));
        if path.exists() {
            // SAFETY: the file is in the host's own cache directory, written
            // only by `store` below from `Engine::precompile_component` of an
            // engine with the same compatibility hash (part of the name).
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cached component unusable; compiling again")
                }
            }
        }
        let compiled = engine
            .precompile_component(wasm)
            .map_err(|e| PluginError::load(name, format!("{e:#}")))?;
        if let Err(e) = self.store(&path, &compiled) {
            tracing::warn!(%e, "compiled component not cached; the next start compiles it again");
        }
        // SAFETY: `compiled` was produced by this engine just now.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| PluginError::load(name, format!("{e:#}")))?;
        Ok((component, CacheOutcome::Compiled))
    }

    /// Writes atomically: a temporary file with a random name, then rename,
    /// so a concurrent reader never sees half an artifact.
    fn store(&self, path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
        let err = |source| PluginError::Cache {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(err)?;
        tmp.write_all(bytes).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}
