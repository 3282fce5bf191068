//! File endpoint: files appearing in a folder become messages (file in), and the atomic
//! writer the `to: file` step uses (file out).
//!
//! File in, per scan of `dir` (every `interval`, default 2s), oldest file first, of the
//! files unchanged for `settle` (default 2s; a file still being written is left for a later
//! scan, so a half-written CSV is never read with rows missing):
//! 1. claim: rename `dir/<name>` to `dir/.claimed/<name>` — atomic, so of several instances
//!    scanning the same folder exactly one gets the file (a failed rename means another took it);
//! 2. read it and accept it for the route (header `knut-file-name`);
//! 3. move it to `dir/processed/<name>` (a timestamp is added when that name is taken),
//!    its modification time set to the moment it was read.
//!
//! With `keep`, each scan first deletes the files of `processed/` read longer ago than that
//! (files with personal data are not kept for ever); `failed/` is never emptied.
//!
//! When the broker is unavailable (a transient error) the file is put back and tried at the
//! next scan. A file that cannot be read or accepted otherwise goes to `dir/failed/<name>`,
//! next to `<name>.error.txt` saying why. At start, files left in `.claimed/` by a crash go
//! back to `dir` (so a crash between accept and move can publish a file twice: delivery is
//! at-least-once, as everywhere).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::Ingress;
use crate::core::envelope::{Body, Envelope};
use crate::route::model::FileFrom;

/// Header holding the name of the file a message came from.
pub const FILE_NAME: &str = "knut-file-name";

const CLAIMED: &str = ".claimed";
const PROCESSED: &str = "processed";
const FAILED: &str = "failed";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// The content type of a file: from its extension (`.xml`, `.json`, `.csv`), else
/// `application/octet-stream`.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("xml") => crate::core::envelope::XML,
        Some("json") => crate::core::envelope::JSON,
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    }
}

/// Run the file endpoint of `route` on `root/spec.dir` until `shutdown`.
pub async fn run(
    route: String,
    spec: FileFrom,
    root: PathBuf,
    ingress: Ingress,
    shutdown: CancellationToken,
) {
    let pattern = match glob::Pattern::new(&spec.pattern) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(route, pattern = %spec.pattern, error = %e, "file endpoint not started: invalid glob pattern");
            return;
        }
    };
    let dir = root.join(&spec.dir);
    let interval = spec.interval.unwrap_or(DEFAULT_INTERVAL);
    let mut prepared = false;
    loop {
        if !prepared {
            match prepare(&dir).await {
                Ok(()) => prepared = true,
                Err(e) => {
                    tracing::error!(route, dir = %dir.display(), error = %e, "file endpoint cannot prepare its folder; retrying at the next scan");
                }
            }
        }
        if prepared {
            scan(&route, &spec, &dir, &pattern, &ingress, &shutdown).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Create the subfolders and return files a crash left in `.claimed/` to the folder.
async fn prepare(dir: &Path) -> io::Result<()> {
    for sub in [CLAIMED, PROCESSED, FAILED] {
        tokio::fs::create_dir_all(dir.join(sub)).await?;
    }
    let claimed = dir.join(CLAIMED);
    let mut entries = tokio::fs::read_dir(&claimed).await?;
    while let Some(entry) = entries.next_entry().await? {
        if !entry.file_type().await?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let target = unique_target(dir, &name.to_string_lossy()).await;
        tokio::fs::rename(entry.path(), &target).await?;
        tracing::warn!(dir = %dir.display(), "a file claimed before a restart was put back to be read again");
    }
    Ok(())
}

/// The candidate files of a scan: regular files matching `pattern`, not hidden, unchanged
/// for `settle`, oldest first.
async fn candidates(
    dir: &Path,
    pattern: &glob::Pattern,
    settle: Duration,
) -> io::Result<Vec<String>> {
    let settled_before = SystemTime::now()
        .checked_sub(settle)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut found: Vec<(SystemTime, String)> = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let Ok(file_type) = entry.file_type().await else {
            continue;
        };
        if !file_type.is_file() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(dir = %dir.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if name.starts_with('.') || !pattern.matches(&name) {
            continue;
        }
        let modified = entry
            .metadata()
            .await
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if modified > settled_before {
            // Still being written, or just written: the next scan sees.
            continue;
        }
        found.push((modified, name));
    }
    found.sort();
    Ok(found.into_iter().map(|(_, n)| n).collect())
}

/// Delete the files of `processed` last modified (read, see [`take`]) more than `keep` ago;
/// how many. A file that cannot be deleted does not stop the others (one another instance
/// deleted first is not counted); the first such error is returned after the rest.
async fn purge(processed: &Path, keep: Duration) -> io::Result<usize> {
    let Some(before) = SystemTime::now().checked_sub(keep) else {
        return Ok(0);
    };
    let mut deleted = 0;
    let mut first_error = None;
    let mut entries = tokio::fs::read_dir(processed).await?;
    while let Some(entry) = entries.next_entry().await? {
        let old = match entry
            .metadata()
            .await
            .and_then(|m| Ok((m.is_file(), m.modified()?)))
        {
            Ok((is_file, modified)) => is_file && modified < before,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                first_error.get_or_insert(e);
                false
            }
        };
        if !old {
            continue;
        }
        match tokio::fs::remove_file(entry.path()).await {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(deleted),
    }
}

/// One scan of the folder.
async fn scan(
    route: &str,
    spec: &FileFrom,
    dir: &Path,
    pattern: &glob::Pattern,
    ingress: &Ingress,
    shutdown: &CancellationToken,
) {
    if let Some(keep) = spec.keep {
        match purge(&dir.join(PROCESSED), keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                route,
                deleted = n,
                ?keep,
                "processed files older than `keep` deleted"
            ),
            Err(e) => {
                tracing::error!(route, dir = %dir.display(), error = %e, "some processed files older than `keep` could not be deleted");
            }
        }
    }
    let settle = spec.settle.unwrap_or(DEFAULT_SETTLE);
    let names = match candidates(dir, pattern, settle).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(route, dir = %dir.display(), error = %e, "cannot list the folder");
            return;
        }
    };
    for name in names {
        if shutdown.is_cancelled() {
            return;
        }
        match take(route, spec, dir, &name, ingress).await {
            Outcome::Done | Outcome::Skipped => {}
            Outcome::BrokerUnavailable => return,
        }
    }
}

/// Set a file's modification time to now (opened for writing, never truncated).
async fn mark_read(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(SystemTime::now())
    })
    .await
    .map_err(io::Error::other)?
}

enum Outcome {
    Done,
    Skipped,
    BrokerUnavailable,
}

/// Claim, read, accept and file away one file.
async fn take(route: &str, spec: &FileFrom, dir: &Path, name: &str, ingress: &Ingress) -> Outcome {
    let source = dir.join(name);
    let claimed = dir.join(CLAIMED).join(name);
    if tokio::fs::rename(&source, &claimed).await.is_err() {
        tracing::debug!(route, "a file was taken by another instance; skipping it");
        return Outcome::Skipped;
    }
    let contents = match tokio::fs::read(&claimed).await {
        Ok(c) => c,
        Err(e) => {
            fail(
                route,
                dir,
                name,
                &claimed,
                &format!("the file could not be read: {e}"),
            )
            .await;
            return Outcome::Done;
        }
    };
    let content_type = spec
        .content_type
        .clone()
        .unwrap_or_else(|| content_type_for(name).to_string());
    let mut envelope = Envelope::new(content_type, Body::Bytes(Bytes::from(contents)));
    envelope.headers.insert(FILE_NAME.into(), name.to_string());
    match ingress.accept(route, &envelope).await {
        Ok(()) => {
            // `keep` counts from now, not from when the file was written: stamped before it
            // reaches processed/, where a purge may look at it.
            if spec.keep.is_some()
                && let Err(e) = mark_read(&claimed).await
            {
                tracing::warn!(route, error = %e, "a processed file's time could not be set (knut must own the file); `keep` counts from when it was written");
            }
            let target = unique_target(&dir.join(PROCESSED), name).await;
            if let Err(e) = tokio::fs::rename(&claimed, &target).await {
                tracing::error!(route, dir = %dir.display(), error = %e, "a published file could not be moved to processed/; it stays in .claimed/");
            } else {
                tracing::info!(route, message_id = %envelope.id, "file accepted");
            }
            Outcome::Done
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(route, error = %e, "the broker did not accept a file; it is put back and tried at the next scan");
            if let Err(e) = tokio::fs::rename(&claimed, &source).await {
                tracing::error!(route, dir = %dir.display(), error = %e, "a claimed file could not be put back; it stays in .claimed/ until restart");
            }
            Outcome::BrokerUnavailable
        }
        Err(e) => {
            fail(
                route,
                dir,
                name,
                &claimed,
                &format!("the broker refused the message: {e}"),
            )
            .await;
            Outcome::Done
        }
    }
}

/// Move a claimed file to `failed/` with a `<name>.error.txt` holding `reason`.
async fn fail(route: &str, dir: &Path, name: &str, claimed: &Path, reason: &str) {
    let failed = dir.join(FAILED);
    let target = unique_target(&failed, name).await;
    let target_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    if let Err(e) = tokio::fs::rename(claimed, &target).await {
        tracing::error!(route, dir = %dir.display(), error = %e, "a failed file could not be moved to failed/; it stays in .claimed/");
        return;
    }
    let note = format!("{reason}\n");
    if let Err(e) = write_atomic(
        &failed,
        &format!("{target_name}.error.txt"),
        note.as_bytes(),
    )
    .await
    {
        tracing::error!(route, error = %e, "could not write the .error.txt next to a failed file");
    }
    tracing::error!(route, %reason, "file moved to failed/");
}

/// `dir/name`, or, if that exists, `dir/<stem>-<timestamp>[-n].<ext>`.
async fn unique_target(dir: &Path, name: &str) -> PathBuf {
    let plain = dir.join(name);
    if !exists(&plain).await {
        return plain;
    }
    let path = Path::new(name);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let mut candidate = dir.join(format!("{stem}-{stamp}{ext}"));
    let mut n = 1;
    while exists(&candidate).await {
        candidate = dir.join(format!("{stem}-{stamp}-{n}{ext}"));
        n += 1;
    }
    candidate
}

async fn exists(p: &Path) -> bool {
    tokio::fs::symlink_metadata(p).await.is_ok()
}

/// Write `contents` to `dir/name` atomically: into `dir/.<name>.tmp-<uuid>` first, fsync,
/// then rename into place (replacing an existing file). Creates `dir` when missing. A `name`
/// that is empty, `.`/`..` or holds a path separator is refused (`InvalidInput`): the name
/// may come from message content and must not escape `dir`.
pub async fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a file name must be a plain name: not empty, not `.` or `..`, without `/` or `\\`",
        ));
    }
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = async {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        f.write_all(contents).await?;
        f.sync_all().await?;
        drop(f);
        tokio::fs::rename(&tmp, dir.join(name)).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
        return result;
    }
    // Make the rename itself durable (best effort: not every platform can sync a folder).
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::embedded::EmbeddedBroker;
    use crate::broker::{Broker, RouteQueue, Topology, work_queue};
    use futures::StreamExt;
    use std::sync::Arc;

    async fn broker(route: &str) -> EmbeddedBroker {
        let b = EmbeddedBroker::new();
        b.declare(&Topology {
            exchanges: vec![],
            outlets: Vec::new(),
            routes: vec![RouteQueue {
                route: route.into(),
                bindings: vec![],
                partitions: None,
            }],
        })
        .await
        .unwrap();
        b
    }

    fn spec(pattern: &str) -> FileFrom {
        FileFrom {
            dir: "in".into(),
            pattern: pattern.into(),
            interval: Some(Duration::from_millis(20)),
            content_type: None,
            settle: Some(Duration::ZERO),
            keep: None,
        }
    }

    /// `keep`: a scan deletes the processed files read longer ago than that (a file is
    /// stamped when read, not when written), never a failed one.
    #[tokio::test]
    async fn keep_deletes_processed_files_read_longer_ago() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        prepare(&dir).await.unwrap();
        let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(h * 3600);
        let stamp = |path: PathBuf, at: SystemTime| {
            std::fs::write(&path, b"Personnummer;Timmar\n").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        stamp(dir.join(PROCESSED).join("old.csv"), hours_ago(49));
        stamp(dir.join(PROCESSED).join("recent.csv"), hours_ago(47));
        stamp(dir.join(FAILED).join("broken.csv"), hours_ago(100));
        // Written long ago, read now: kept, counted from now.
        stamp(dir.join("new.csv"), hours_ago(100));
        let b = broker("files").await;
        let mut s = spec("*.csv");
        s.keep = Some(Duration::from_secs(48 * 3600));
        let pattern = glob::Pattern::new(&s.pattern).unwrap();
        let ingress = Ingress::new(Arc::new(b.clone()));
        scan(
            "files",
            &s,
            &dir,
            &pattern,
            &ingress,
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(names(&dir.join(PROCESSED)), vec!["new.csv", "recent.csv"]);
        assert_eq!(names(&dir.join(FAILED)), vec!["broken.csv"]);
        let read = std::fs::metadata(dir.join(PROCESSED).join("new.csv"))
            .and_then(|m| m.modified())
            .unwrap();
        assert!(read > hours_ago(1), "a processed file is stamped when read");
    }

    /// A file written moments ago — perhaps still being written — is left for a later scan;
    /// once unchanged for `settle` it is read.
    #[tokio::test]
    async fn a_file_still_being_written_is_left_until_it_settles() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("half.csv"), b"Personnummer;Namn\n").unwrap();
        let pattern = glob::Pattern::new("*").unwrap();
        prepare(&dir).await.unwrap();
        let settle = Duration::from_millis(400);
        assert!(candidates(&dir, &pattern, settle).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            candidates(&dir, &pattern, settle).await.unwrap(),
            vec!["half.csv"]
        );
        // Written to again: left again.
        std::fs::write(dir.join("half.csv"), b"Personnummer;Namn\nx;y\n").unwrap();
        assert!(candidates(&dir, &pattern, settle).await.unwrap().is_empty());
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type_for("a.XML"), "application/xml");
        assert_eq!(content_type_for("a.json"), "application/json");
        assert_eq!(content_type_for("csn.csv"), "text/csv");
        assert_eq!(content_type_for("x.xlsx"), "application/octet-stream");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }

    #[tokio::test]
    async fn publishes_matching_files_and_moves_them_to_processed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.xml"), b"<a/>").unwrap();
        std::fs::write(dir.join("skip.txt"), b"no").unwrap();
        std::fs::write(dir.join(".hidden.xml"), b"<h/>").unwrap();
        // A previous run already processed a file called a.xml.
        std::fs::create_dir_all(dir.join("processed")).unwrap();
        std::fs::write(dir.join("processed/a.xml"), b"old").unwrap();

        let b = broker("files").await;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            "files".into(),
            spec("*.xml"),
            root.path().to_path_buf(),
            Ingress::new(Arc::new(b.clone())),
            shutdown.clone(),
        ));
        let mut c = b.consume(&work_queue("files"), 10).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), c.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.envelope.header(FILE_NAME), Some("a.xml"));
        assert_eq!(d.envelope.content_type, "application/xml");
        assert_eq!(d.envelope.body.to_bytes(), Bytes::from_static(b"<a/>"));
        // Give the endpoint time to move the file, then stop it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        shutdown.cancel();
        task.await.unwrap();

        assert_eq!(names(&dir), vec![".hidden.xml", "skip.txt"]);
        let processed = names(&dir.join("processed"));
        assert_eq!(processed.len(), 2, "{processed:?}");
        assert!(processed.contains(&"a.xml".to_string()));
        assert!(
            processed
                .iter()
                .any(|n| n.starts_with("a-") && n.ends_with(".xml"))
        );
        assert_eq!(std::fs::read(dir.join("processed/a.xml")).unwrap(), b"old");
        assert!(names(&dir.join(".claimed")).is_empty());
        assert_eq!(b.queue_depth(&work_queue("files")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn oldest_first() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b-newer.json"), b"{}").unwrap();
        std::fs::write(dir.join("a-older.json"), b"{}").unwrap();
        let old = std::fs::File::options()
            .write(true)
            .open(dir.join("a-older.json"))
            .unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .unwrap();
        let pattern = glob::Pattern::new("*").unwrap();
        prepare(&dir).await.unwrap();
        assert_eq!(
            candidates(&dir, &pattern, Duration::ZERO).await.unwrap(),
            vec!["a-older.json", "b-newer.json"]
        );
    }

    #[tokio::test]
    async fn crash_leftovers_go_back_and_transient_failure_puts_file_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(dir.join(CLAIMED)).unwrap();
        std::fs::write(dir.join(CLAIMED).join("left.csv"), b"a;b").unwrap();
        prepare(&dir).await.unwrap();
        assert_eq!(names(&dir), vec!["left.csv"]);

        // A closed broker is a transient failure: the file stays to be tried again.
        let b = broker("files").await;
        b.close().await;
        let ingress = Ingress::new(Arc::new(b));
        let out = take("files", &spec("*"), &dir, "left.csv", &ingress).await;
        assert!(matches!(out, Outcome::BrokerUnavailable));
        assert_eq!(names(&dir), vec!["left.csv"]);
        assert!(names(&dir.join(FAILED)).is_empty());
    }

    #[tokio::test]
    async fn permanent_failure_goes_to_failed_with_reason() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        prepare(&dir).await.unwrap();
        std::fs::write(dir.join("x.json"), b"{}").unwrap();
        // The route is not declared: the broker refuses the message for good.
        let ingress = Ingress::new(Arc::new(broker("other").await));
        let out = take("files", &spec("*"), &dir, "x.json", &ingress).await;
        assert!(matches!(out, Outcome::Done));
        assert_eq!(names(&dir.join(FAILED)), vec!["x.json", "x.json.error.txt"]);
        let reason = std::fs::read_to_string(dir.join("failed/x.json.error.txt")).unwrap();
        assert!(reason.contains("refused"), "{reason}");
        assert!(names(&dir).is_empty());
    }

    #[tokio::test]
    async fn a_file_taken_by_another_instance_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("in");
        std::fs::create_dir_all(&dir).unwrap();
        prepare(&dir).await.unwrap();
        let ingress = Ingress::new(Arc::new(broker("files").await));
        let out = take("files", &spec("*"), &dir, "gone.xml", &ingress).await;
        assert!(matches!(out, Outcome::Skipped));
    }

    #[tokio::test]
    async fn write_atomic_writes_and_replaces_without_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("out/deep");
        write_atomic(&dir, "r.json", b"{\"a\":1}").await.unwrap();
        write_atomic(&dir, "r.json", b"{\"a\":2}").await.unwrap();
        assert_eq!(std::fs::read(dir.join("r.json")).unwrap(), b"{\"a\":2}");
        assert_eq!(names(&dir), vec!["r.json"]);
    }

    #[tokio::test]
    async fn write_atomic_refuses_names_that_escape_the_folder() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["../x", "a/b", "..", ".", "", "a\\b"] {
            let e = write_atomic(root.path(), bad, b"x").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        assert!(names(root.path()).is_empty());
    }
}
