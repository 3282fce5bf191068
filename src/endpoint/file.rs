//! STUB piece (replaced by the endpoint branch).
#![allow(missing_docs)]
use std::path::Path;
pub async fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, contents).await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}
pub async fn run(
    route: String,
    spec: crate::route::model::FileFrom,
    root: std::path::PathBuf,
    ingress: super::Ingress,
    shutdown: tokio_util::sync::CancellationToken,
) {
}
