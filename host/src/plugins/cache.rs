//! The on-disk cache of compiled plugin artifacts, so restarts skip
//! Cranelift. A cached artifact is native code the host runs without
//! re-checking it, so the cache must not be a way to plant code:
//! - the directory must belong to this process's user and be writable by
//!   nobody else (created 0700; an existing one owned by this user is
//!   tightened, one owned by anyone else disables the cache), and so must
//!   every file read from it;
//! - an entry is named by the component's SHA-256 and the engine's
//!   fingerprint, and starts with that SHA-256: an artifact of another
//!   component copied under the right name is refused and recompiled.
use sha2::{Digest, Sha256};
use std::{
    fs::Metadata,
    hash::{Hash, Hasher},
    io::Read,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};
use wasmtime::Engine;

/// Starts every entry; then the component's SHA-256, then the artifact.
const MAGIC: &[u8; 8] = b"EVHCWASM";
const HEADER: usize = MAGIC.len() + 32;

pub struct ArtifactCache {
    dir: PathBuf,
    /// The engine configuration's compatibility hash: artifacts of another
    /// wasmtime version or configuration get other names.
    engine: u64,
}

impl ArtifactCache {
    /// The cache in `dir`, or `None` (with a warning: plugins are compiled
    /// at every start) when `dir` cannot be made private to this user.
    pub fn open(dir: PathBuf, engine: &Engine) -> Option<Self> {
        if let Err(why) = make_private(&dir) {
            tracing::warn!(dir = %dir.display(), "plugin cache disabled: {why}");
            return None;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Some(Self {
            dir,
            engine: h.finish(),
        })
    }

    fn path(&self, digest: &[u8]) -> PathBuf {
        self.dir.join(format!(
            "{}-{:016x}.cwasm",
            hex::encode(digest),
            self.engine
        ))
    }

    /// The artifact compiled earlier from exactly `component`, if a
    /// trustworthy one is there.
    pub fn load(&self, component: &[u8]) -> Option<Vec<u8>> {
        let digest = Sha256::digest(component);
        let path = self.path(&digest);
        let mut file = std::fs::File::open(&path).ok()?;
        // The opened file's own metadata: no swap between check and read.
        let checked = file
            .metadata()
            .map_err(|e| e.to_string())
            .and_then(|m| private_to_us(&m));
        if let Err(why) = checked {
            tracing::warn!(path = %path.display(), "cached plugin artifact refused: {why}");
            return None;
        }
        // Read into memory rather than map the file: a mapped artifact
        // truncated later (by another replica sharing the volume) would crash
        // the process (SIGBUS).
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
            tracing::warn!(path = %path.display(), "cached plugin artifact refused: not written by this cache");
            return None;
        }
        if bytes[MAGIC.len()..HEADER] != digest[..] {
            tracing::warn!(path = %path.display(), "cached plugin artifact refused: compiled from another component");
            return None;
        }
        bytes.drain(..HEADER);
        Some(bytes)
    }

    /// Stores the artifact of `component`. Write then rename, so a concurrent
    /// reader never sees half a file; the temp name is unique per writer
    /// (replicas sharing the volume may all be pid 1).
    pub fn store(&self, component: &[u8], artifact: &[u8]) {
        let digest = Sha256::digest(component);
        let path = self.path(&digest);
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut bytes = Vec::with_capacity(HEADER + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&digest);
        bytes.extend_from_slice(artifact);
        let written = std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled plugin artifact");
        }
    }
}

/// Creates `dir` (0700) or checks an existing one is this user's, tightening
/// its mode if others may write to it.
fn make_private(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create it: {e}"))?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory (symbolic links are not followed)".into());
    }
    if meta.uid() != euid() {
        return Err(format!(
            "owned by uid {}, not this process's uid {}",
            meta.uid(),
            euid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("others may write to it and its mode cannot be changed: {e}"))?;
        tracing::warn!(dir = %dir.display(), "plugin cache directory was writable by others; its mode is now 0700");
    }
    Ok(())
}

fn private_to_us(meta: &Metadata) -> Result<(), String> {
    if meta.uid() != euid() {
        return Err(format!("owned by uid {}, not {}", meta.uid(), euid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:o})",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
