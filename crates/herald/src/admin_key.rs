//! The admin key: the one configured in `HERALD_ADMIN_KEY`, or one made at a first start and
//! handed to the operator once, in a file only they can read.
//!
//! A generated key is written to its file *before* its hash is stored: if the file cannot be
//! written, start-up fails and nothing is stored, so no key exists that nobody can read. The key
//! never goes to standard error, even on a terminal: a terminal can be recorded too (a container
//! run with `-t` hands it to the log driver), and a file with mode 0600 cannot be.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use herald_core::api_key::{ApiKeyKind, generate_api_key};
use herald_core::clock::Clock;
use herald_core::ids::{ApiKeyId, prefixed_id};
use herald_core::secret::hash_api_key;
use herald_store::Store;
use herald_store::models::{ApiKeyRecord, KeyOwner};

use crate::config::ServeSettings;

/// An admin key made at this start, and where it was written.
#[derive(Debug, Clone)]
pub struct GeneratedAdminKey {
    pub key: String,
    /// Absolute, so the operator finds it whatever the working directory was.
    pub file: PathBuf,
}

/// The configured admin key's hash (empty when none is configured: nothing hashes to it), and
/// the key made at this start, if one was.
///
/// A configured key replaces the one generated at a first start, as an operator who sets a key
/// of their own expects: that one is revoked. Without one, a first start makes a key.
pub async fn set_up_admin_key(
    store: &Arc<dyn Store>,
    settings: &ServeSettings,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(String, Option<GeneratedAdminKey>)> {
    if let Some(key) = &settings.admin_key {
        let n_revoked = store
            .revoke_generated_admin_keys()
            .await
            .context("failed to revoke the generated admin key")?;
        if n_revoked > 0 {
            tracing::warn!(
                n_revoked,
                "HERALD_ADMIN_KEY is set, so the admin key generated at first start no longer \
                 works (it was revoked); use the configured key"
            );
        }
        return Ok((hash_api_key(key), None));
    }
    if store.has_admin_key().await? {
        return Ok((String::new(), None));
    }
    let key = generate_api_key(ApiKeyKind::Admin);
    let file = std::path::absolute(&settings.admin_key_file)
        .unwrap_or_else(|_| settings.admin_key_file.clone());
    write_private_file(&file, &key).with_context(|| {
        format!(
            "failed to write the generated admin key to {} (choose another place with \
             --admin-key-file, or set HERALD_ADMIN_KEY)",
            file.display()
        )
    })?;
    store
        .create_api_key(ApiKeyRecord::for_new_key(
            ApiKeyId::new(),
            &key,
            KeyOwner::Admin,
            Some("generated at first start".to_owned()),
            true,
            clock.now(),
        ))
        .await
        .context("failed to store the admin key")?;
    Ok((String::new(), Some(GeneratedAdminKey { key, file })))
}

/// Writes `key` to `path` with mode 0600 and syncs it: the file is the only copy of the key. It
/// is written to a new file beside `path` (`create_new` refuses to follow a symbolic link planted
/// there) and renamed over `path`, so a symbolic link at `path` is replaced rather than followed,
/// and a crash leaves either the old file or the whole new one.
fn write_private_file(path: &Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut temporary_name = path.file_name().unwrap_or_default().to_owned();
    temporary_name.push(format!(".{}.tmp", prefixed_id("tmp")));
    let temporary = directory.join(temporary_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        writeln!(file, "{key}")?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&temporary, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return renamed;
    }
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_private_replaces_a_symlink_and_leaves_its_target_alone() {
        let directory = tempfile::tempdir().expect("tempdir");
        let target = directory.path().join("precious");
        std::fs::write(&target, "keep me").expect("written");
        let path = directory.path().join("herald-admin-key");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        write_private_file(&path, "herald_ak_test").expect("written");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "herald_ak_test\n"
        );
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "keep me",
            "the symlink's target is untouched"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let metadata = std::fs::symlink_metadata(&path).expect("metadata");
            assert!(metadata.file_type().is_file(), "a file, not a symlink");
            assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .expect("listed")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_key_file_that_cannot_be_written_is_an_error_and_leaves_nothing() {
        let directory = tempfile::tempdir().expect("tempdir");
        // A directory where the file should go: the rename fails.
        let path = directory.path().join("taken");
        std::fs::create_dir(&path).expect("dir");
        std::fs::write(path.join("inside"), "x").expect("written");
        assert!(write_private_file(&path, "herald_ak_test").is_err());
        let names: Vec<String> = std::fs::read_dir(directory.path())
            .expect("listed")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["taken"]);
    }
}
