//! `untar_data`: fetch a dataset archive once, verify it, extract it atomically and reuse it.
//!
//! The cache folder is `$FASTCOLLAB_DATA` when set, else `~/.fastcollab/data` (fastai keeps
//! `~/.fastai/data`). A folder that already holds the extracted dataset is used as it is, so a
//! read-only copy (such as `../shared/datasets`) works offline. Downloads go to a `.part` file and
//! become `NAME.zip` only once their length and checksum are right; extraction goes to a hidden
//! folder renamed into place when complete. An interrupted run therefore never leaves anything
//! that a later run would mistake for a good dataset.
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::progress;

/// GroupLens' address for MovieLens 100k.
pub const ML_100K_URL: &str = "https://files.grouplens.org/datasets/movielens/ml-100k.zip";

/// How a downloaded archive is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// SHA-256 of the whole file, lowercase hex.
    Sha256(String),
    /// fastai's check: file size and MD5 of the first MiB.
    SizeMd5 {
        /// File size in bytes.
        size: u64,
        /// MD5 of the first 2^20 bytes, lowercase hex.
        md5_first_mib: String,
    },
}

/// A downloadable dataset: where it comes from, how to check it, what a complete copy holds.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    /// Folder name of the extracted dataset (and stem of the archive), e.g. `ml-100k`.
    pub name: String,
    /// Where to download the zip archive from.
    pub url: String,
    /// The integrity check of the archive.
    pub check: Check,
    /// Files an extracted copy must contain to be used.
    pub required: Vec<String>,
}

impl DatasetSpec {
    /// MovieLens 100k from GroupLens, checked as fastai checks it.
    pub fn ml_100k() -> Self {
        DatasetSpec {
            name: "ml-100k".into(),
            url: ML_100K_URL.into(),
            check: Check::SizeMd5 { size: 4924029, md5_first_mib: "39f6af2d7ea4e117f8838e4a302fec70".into() },
            required: ["u.data", "u.item", "u.genre", "u.user"].map(String::from).to_vec(),
        }
    }
}

/// The dataset cache folder: `$FASTCOLLAB_DATA`, else `~/.fastcollab/data`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("FASTCOLLAB_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".fastcollab").join("data"),
    }
}

/// The extracted dataset in [`data_dir`], downloading and extracting it first if needed.
pub fn untar_data(spec: &DatasetSpec) -> Result<PathBuf> {
    untar_data_in(spec, &data_dir())
}

/// The extracted dataset in `dir`, downloading and extracting it first if needed.
pub fn untar_data_in(spec: &DatasetSpec, dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(&spec.name);
    if is_complete(spec, &dest) {
        return Ok(dest);
    }
    let archive = dir.join(format!("{}.zip", spec.name));
    if archive.exists() {
        verify(&archive, &expected_check(spec, dir))?;
    } else {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        download(&spec.url, &archive, &spec.check)?;
    }
    extract(&archive, dir, &spec.name)?;
    if !is_complete(spec, &dest) {
        return Err(Error::Download {
            url: spec.url.clone(),
            message: format!("{} lacks {:?}", archive.display(), spec.required),
        });
    }
    Ok(dest)
}

fn is_complete(spec: &DatasetSpec, dest: &Path) -> bool {
    spec.required.iter().all(|f| dest.join(f).is_file())
}

/// The check for an archive found in `dir`: a `SHA256SUMS` file beside it wins (a local re-packed
/// copy lists its own digest there), else the spec's check.
fn expected_check(spec: &DatasetSpec, dir: &Path) -> Check {
    let file = format!("{}.zip", spec.name);
    fs::read_to_string(dir.join("SHA256SUMS"))
        .ok()
        .and_then(|sums| {
            sums.lines().find_map(|l| {
                let (digest, name) = l.split_once(char::is_whitespace)?;
                (name.trim().trim_start_matches('*') == file).then(|| Check::Sha256(digest.to_lowercase()))
            })
        })
        .unwrap_or_else(|| spec.check.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `path` against `check`; on mismatch the file is left alone and an error names it.
pub fn verify(path: &Path, check: &Check) -> Result<()> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let (expected, actual) = match check {
        Check::Sha256(digest) => (digest.clone(), hex(&Sha256::digest(&bytes))),
        Check::SizeMd5 { size, md5_first_mib } => (
            format!("{size} bytes, md5 {md5_first_mib}"),
            format!("{} bytes, md5 {}", bytes.len(), hex(&Md5::digest(&bytes[..bytes.len().min(1 << 20)]))),
        ),
    };
    if expected == actual {
        Ok(())
    } else {
        Err(Error::Checksum { path: path.to_path_buf(), expected, actual })
    }
}

fn download(url: &str, dest: &Path, check: &Check) -> Result<()> {
    let fail = |message: String| Error::Download { url: url.to_string(), message };
    let part = dest.with_extension(format!("zip.part-{}", std::process::id()));
    let result = (|| {
        let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
        let expected_len: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
        let bar = progress::bytes_bar(expected_len, &format!("downloading {url}"));
        let mut reader = response.into_reader();
        let mut file = fs::File::create(&part).map_err(|e| Error::io(&part, e))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut received = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| fail(format!("connection broke after {received} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
            received += n as u64;
            bar.set_position(received);
        }
        bar.finish_and_clear();
        if let Some(len) = expected_len.filter(|&len| len != received) {
            return Err(fail(format!("truncated: received {received} of {len} bytes")));
        }
        file.sync_all().map_err(|e| Error::io(&part, e))?;
        verify(&part, check)?;
        fs::rename(&part, dest).map_err(|e| Error::io(dest, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

fn extract(archive: &Path, dir: &Path, name: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.extract-{}", std::process::id()));
    let result = (|| {
        let file = fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
        let bad =
            |e: zip::result::ZipError| Error::io(archive, std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        zip::ZipArchive::new(file).map_err(bad)?.extract(&tmp).map_err(bad)?;
        let inner = tmp.join(name);
        let src = if inner.is_dir() { inner } else { tmp.clone() };
        fs::rename(&src, dir.join(name)).map_err(|e| Error::io(dir.join(name), e))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}
