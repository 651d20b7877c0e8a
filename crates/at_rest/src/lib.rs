//! What the supervisor and the fax servers keep on disk: directories only their owner may enter (0700),
//! files only their owner may read (0600, written through a temporary file and a rename so a crash never
//! leaves half a file), random keys, and secrets sealed with AES-256-GCM.
//!
//! Both sides keep secrets this way: the supervisor seals SIP passwords in its database under a key derived
//! from its server key; a fax server seals them in its `settings.json` under a key of its own.

use base64::Engine;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every directory kept: only the owner may list or enter it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file kept: only the owner may read or write it.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and its missing parents) as owner-only. A directory that already exists and lets others in
/// is tightened when it is ours and not a shared one (sticky, like `/tmp`); otherwise a warning says so.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let sticky = mode & 0o1000 != 0;
    if !sticky && owned_by_us(&meta) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        tracing::warn!(
            "{} was open to other users (mode {:o}); it is now {DIR_MODE:o}",
            dir.display(),
            mode & 0o7777
        );
    } else {
        tracing::warn!(
            "{} is open to other users (mode {:o}) and not ours to change; make it {DIR_MODE:o}",
            dir.display(),
            mode & 0o7777
        );
    }
    Ok(())
}

/// The process's user owns the file (Linux: `/proc/self` belongs to it). Unknown elsewhere: false.
fn owned_by_us(meta: &std::fs::Metadata) -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == meta.uid())
}

/// Makes an existing file owner-only (a file written by an earlier version); a missing one is fine.
pub fn tighten_file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a new owner-only file for writing (truncating one that exists).
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    // An existing file keeps its mode through open(2); make it ours alone.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes an owner-only file durably: a temporary file beside it, synced, then renamed over it. The
/// temporary file is the writer's own, so writers of one file at once each succeed (the last rename wins).
pub fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{n}.part", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = create_file(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Why a key or a secret could not be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path} is not a 32-byte key")]
    BadKey { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the system has no randomness to give")]
    NoRandomness,
    #[error("sealing failed")]
    Seal,
}

/// 32 random bytes.
pub fn random_key() -> Result<[u8; 32], Error> {
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::NoRandomness)?;
    Ok(key)
}

/// Reads a 32-byte key, or makes one (owner-only) if the file does not exist yet.
pub fn load_or_make_key(path: &Path) -> Result<[u8; 32], Error> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            tighten_file(path).map_err(io)?;
            bytes.try_into().map_err(|_| Error::BadKey {
                path: path.display().to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key()?;
            write_file(path, &key).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Seals and opens short secrets (passwords) with AES-256-GCM: base64 of a random 96-bit nonce followed by
/// the ciphertext and its tag.
#[derive(Clone)]
pub struct SecretBox {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox")
    }
}

impl SecretBox {
    /// A box under a key derived from `key` for one purpose (`label`), so one key serves several boxes.
    pub fn derived(key: &[u8; 32], label: &[u8]) -> Self {
        let derived = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), label);
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC-SHA256 gives 32 bytes"));
        Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        }
    }

    pub fn seal(&self, plain: &str) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::NoRandomness)?;
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| Error::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The secret, or `None` when the text was not sealed by this box (another key, or damaged).
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        let (nonce, data) = bytes.split_at_checked(NONCE_LEN)?;
        let mut data = data.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fax server's attempts of one document offered together fetch it at once: every writer must
    /// succeed (they once shared one temporary file, and all but the first rename failed).
    #[test]
    fn concurrent_writes_of_one_file_all_succeed() {
        let dir = std::env::temp_dir().join(format!("at-rest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("doc");
        let start = std::sync::Barrier::new(16);
        let results: Vec<std::io::Result<()>> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        write_file(&path, &[7u8; 4096])
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().expect("writer"))
                .collect()
        });
        for r in results {
            r.expect("every writer keeps the file");
        }
        assert_eq!(std::fs::read(&path).expect("read"), vec![7u8; 4096]);
        let left: Vec<_> = std::fs::read_dir(&dir).expect("list").flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
    }

    #[test]
    fn directories_and_files_are_owner_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        private_dir(&dir).expect("dir");
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        write_file(&file, b"x").expect("write");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).expect("read"), b"x");
        // An older file, readable by all, is tightened when written again or on request.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        create_file(&file).expect("create");
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        tighten_file(&file).expect("tighten");
        assert_eq!(mode(&file), 0o600);
        tighten_file(&dir.join("missing")).expect("a missing file is fine");
        // A directory of ours that others could enter is tightened.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir).expect("again");
        assert_eq!(mode(&dir), 0o700);
        // A shared (sticky) directory is left alone.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        private_dir(&shared).expect("shared");
        assert_eq!(mode(&shared), 0o1777);
    }

    #[test]
    fn keys_are_made_once_and_kept_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("k");
        let a = load_or_make_key(&path).expect("make");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load_or_make_key(&path).expect("load"), a);
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(load_or_make_key(&path), Err(Error::BadKey { .. })));
    }

    #[test]
    fn secrets_open_only_with_their_key_and_label() {
        let a = SecretBox::derived(&[1; 32], b"one");
        let sealed = a.seal("hunter2").expect("seal");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            a.seal("hunter2").expect("seal"),
            sealed,
            "fresh nonce each time"
        );
        assert_eq!(a.open(&sealed).as_deref(), Some("hunter2"));
        assert_eq!(SecretBox::derived(&[1; 32], b"two").open(&sealed), None);
        assert_eq!(SecretBox::derived(&[2; 32], b"one").open(&sealed), None);
        assert_eq!(a.open("not base64!"), None);
        assert_eq!(a.open(""), None);
    }
}
