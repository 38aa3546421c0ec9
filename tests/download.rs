//! `untar_data` against a loopback HTTP server serving a small zip of ml-100k's layout (made by the
//! test, so these always run): a good download, a truncated body and a checksum mismatch, none of
//! which may leave a usable-looking cache entry; and the local MovieLens copy, when present.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use fastcollab::{untar_data_in, Check, DatasetSpec, Error};
use sha2::{Digest, Sha256};

/// Serves `body` to each request, announcing `announced` bytes but sending only `sent` of them.
fn serve(body: Vec<u8>, announced: usize, sent: usize, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..sent]);
        }
    });
    format!("http://{addr}/ml-100k.zip")
}

fn spec(url: String, zip: &[u8]) -> DatasetSpec {
    DatasetSpec { url, check: Check::Sha256(format!("{:x}", Sha256::digest(zip))), ..DatasetSpec::ml_100k() }
}

fn nothing_cached(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn download_verify_extract_and_reuse() {
    let (zip, u_data) = common::tiny_ml100k_zip();
    let dir = common::temp_dir("download-ok");
    let url = serve(zip.clone(), zip.len(), zip.len(), 1);
    let path = untar_data_in(&spec(url.clone(), &zip), &dir).unwrap();
    assert_eq!(path, dir.join("ml-100k"));
    assert_eq!(std::fs::read(path.join("u.data")).unwrap(), u_data);
    assert!(dir.join("ml-100k.zip").is_file());
    // The server answers once only: a second call must use the cache.
    assert_eq!(untar_data_in(&spec(url, &zip), &dir).unwrap(), path);
    // A deleted extraction is redone from the cached, verified archive.
    std::fs::remove_dir_all(&path).unwrap();
    assert_eq!(untar_data_in(&spec("http://127.0.0.1:9/unused".into(), &zip), &dir).unwrap(), path);
}

#[test]
fn truncated_download_leaves_nothing() {
    let (zip, _) = common::tiny_ml100k_zip();
    let dir = common::temp_dir("download-truncated");
    let url = serve(zip.clone(), zip.len(), zip.len() / 2, 1);
    let err = untar_data_in(&spec(url, &zip), &dir).unwrap_err();
    assert!(matches!(err, Error::Download { .. }), "{err}");
    nothing_cached(&dir);
}

#[test]
fn checksum_mismatch_leaves_nothing() {
    let (zip, _) = common::tiny_ml100k_zip();
    let mut corrupt = zip.clone();
    corrupt[zip.len() / 2] ^= 0xff;
    let dir = common::temp_dir("download-corrupt");
    let url = serve(corrupt.clone(), corrupt.len(), corrupt.len(), 1);
    let err = untar_data_in(&spec(url, &zip), &dir).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"));
    nothing_cached(&dir);
}

#[test]
fn local_copy_with_sha256sums_is_used_offline() {
    let Some(shared) = common::ml100k().map(|d| d.parent().unwrap().to_path_buf()) else { return };
    // Extracted folder present: used as is, nothing written, no network.
    let spec = DatasetSpec { url: "http://127.0.0.1:9/never".into(), ..DatasetSpec::ml_100k() };
    assert_eq!(untar_data_in(&spec, &shared).unwrap(), shared.join("ml-100k"));
    // Only the archive and its SHA256SUMS: verified against SHA256SUMS, then extracted.
    let dir = common::temp_dir("download-local");
    std::fs::copy(shared.join("ml-100k.zip"), dir.join("ml-100k.zip")).unwrap();
    std::fs::copy(shared.join("SHA256SUMS"), dir.join("SHA256SUMS")).unwrap();
    assert!(untar_data_in(&spec, &dir).unwrap().join("u.item").is_file());
}
