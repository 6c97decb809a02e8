//! Files a job leaves at this party — a `train` job's share of the model, a `psi` job's
//! intersection — and when they start to count.
//!
//! A job *stages* its files while it runs: each is written to a temporary file beside its place
//! (`<name>.staged`, mode 0600 on Unix) and synced. Only once every party passed the release
//! barrier does the job *commit* them: each is renamed to its place and the folder synced, so a
//! reader finds either the whole file or none. A job that fails before that drops its staging,
//! which removes the temporary files; a job whose upload fails after the commit revokes it. A
//! node that crashes mid-job leaves at most `.staged` files, removed by [`sweep`] when it
//! starts again: nothing half-written ever counts, and no failed job leaves a share behind.

use std::path::{Path, PathBuf};

use crate::PartyError;
use crate::error::io_err;

/// The suffix of a staged file.
pub const STAGED_SUFFIX: &str = ".staged";

/// Files written but not yet in place; dropping it removes them.
#[derive(Debug, Default)]
pub struct Staged {
    /// `(temporary, final)` paths, in staging order.
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    /// Writes `bytes` to a temporary file beside `path` and syncs it. Refuses a `path` that
    /// exists already (a job never replaces another's file).
    ///
    /// # Errors
    /// [`PartyError::Io`] naming the file.
    pub fn stage(&mut self, path: PathBuf, bytes: &[u8]) -> Result<(), PartyError> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if path.exists() {
            return Err(io_err(&path)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(STAGED_SUFFIX);
        let tmp = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        // Listed before it is written: a failure below still removes what was written.
        self.files.push((tmp.clone(), path));
        let mut file = options.open(&tmp).map_err(io_err(&tmp))?;
        std::io::Write::write_all(&mut file, bytes)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp))
    }

    /// Moves every staged file to its place, in staging order, and syncs their folders.
    ///
    /// # Errors
    /// [`PartyError::Io`]; the files already moved are removed again.
    pub fn commit(mut self) -> Result<Committed, PartyError> {
        let mut committed = Committed::default();
        for (tmp, path) in std::mem::take(&mut self.files) {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                committed.revoke();
                return Err(io_err(&path)(e));
            }
            committed.paths.push(path);
        }
        for dir in committed.paths.iter().filter_map(|p| p.parent()) {
            sync_dir(dir);
        }
        Ok(committed)
    }

    /// Takes over `other`'s staged files (committed and removed with these).
    pub fn absorb(&mut self, mut other: Staged) {
        self.files.append(&mut other.files);
    }

    /// The final paths of the staged files.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(_, p)| p.as_path())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Files a job committed: they count, unless [`Committed::revoke`] removes them.
#[derive(Debug, Default)]
#[must_use = "a commit is kept, or revoked when the job fails after it"]
pub struct Committed {
    paths: Vec<PathBuf>,
}

impl Committed {
    /// Removes the committed files again (the job failed after its commit).
    pub fn revoke(self) {
        for path in &self.paths {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a failed job's file");
            }
        }
        for dir in self.paths.iter().filter_map(|p| p.parent()) {
            sync_dir(dir);
        }
    }
}

/// Removes the staged files a crash left in the folders under `state_dir` where jobs stage
/// (`models`, `psi`). Returns how many were removed.
pub fn sweep(state_dir: &Path) -> usize {
    let mut removed = 0;
    for dir in ["models", "psi"].map(|d| state_dir.join(d)) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let staged = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(STAGED_SUFFIX));
            if staged && std::fs::remove_file(&path).is_ok() {
                tracing::warn!(path = %path.display(), "removed a file a crashed job had staged");
                removed += 1;
            }
        }
    }
    removed
}

/// Syncs a folder (its entries: a rename in it is durable). Best effort: some filesystems
/// refuse to sync a folder.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn staged_files_count_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let psi = dir.path().join("psi");
        let mut staged = Staged::default();
        staged.stage(psi.join("job.analyst"), b"ana").unwrap();
        staged.stage(psi.join("job.ids"), b"a\nb\n").unwrap();
        assert_eq!(listing(&psi), ["job.analyst.staged", "job.ids.staged"]);
        assert!(!psi.join("job.ids").exists());
        let committed = staged.commit().unwrap();
        assert_eq!(listing(&psi), ["job.analyst", "job.ids"]);
        assert_eq!(std::fs::read(psi.join("job.ids")).unwrap(), b"a\nb\n");
        drop(committed);
        assert_eq!(listing(&psi), ["job.analyst", "job.ids"]);
    }

    #[test]
    fn a_job_that_fails_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let mut staged = Staged::default();
        staged.stage(models.join("m.json"), b"{}").unwrap();
        drop(staged);
        assert!(listing(&models).is_empty());

        // Failing after the commit (its upload): revoked.
        let mut staged = Staged::default();
        staged.stage(models.join("m.json"), b"{}").unwrap();
        staged.commit().unwrap().revoke();
        assert!(listing(&models).is_empty());
    }

    #[test]
    fn a_file_in_place_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models").join("m.json");
        let mut staged = Staged::default();
        staged.stage(path.clone(), b"first").unwrap();
        let _kept = staged.commit().unwrap();
        let mut again = Staged::default();
        let got = again.stage(path.clone(), b"second");
        assert!(matches!(got, Err(PartyError::Io { .. })), "{got:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }

    #[test]
    fn a_crash_leaves_only_staged_files_and_the_next_start_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::default();
        staged
            .stage(dir.path().join("psi").join("j.ids"), b"x\n")
            .unwrap();
        staged
            .stage(dir.path().join("models").join("m.json"), b"{}")
            .unwrap();
        std::mem::forget(staged); // the process died here
        std::fs::write(dir.path().join("psi").join("k.ids"), b"kept\n").unwrap();
        assert_eq!(sweep(dir.path()), 2);
        assert_eq!(listing(&dir.path().join("psi")), ["k.ids"]);
        assert!(listing(&dir.path().join("models")).is_empty());
        assert_eq!(sweep(dir.path()), 0);
    }
}
