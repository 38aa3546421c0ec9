//! Writing files so that a failure never destroys what was there: write beside the target,
//! fsync, rename over it, fsync the folder.
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `path` through `write`, which receives a temporary path in the same folder. The target
/// is replaced only once `write` succeeded and the bytes are on disk; on any failure the temporary
/// file is removed and the previous `path` is untouched. The temporary path has the target's file
/// name (in a fresh hidden folder beside it), since some formats record it: libtorch names a saved
/// archive's root folder after the file, so the same model saved twice gives the same bytes.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| Error::io(path, std::io::ErrorKind::InvalidInput.into()))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".partial")
        .tempdir_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let tmp = scratch.path().join(name);
    write(&tmp)?;
    fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    // The rename itself is durable once the folder is.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// [`write_atomically`] for bytes already in memory.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| fs::write(tmp, bytes).map_err(|e| Error::io(tmp, e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        write_bytes_atomically(&path, b"old").unwrap();
        let err = write_atomically(&path, |tmp| {
            fs::write(tmp, b"half of the new fi").unwrap();
            Err(Error::InvalidConfig("disk full".into()))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file was removed");
        write_bytes_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary folder was removed");
    }

    #[test]
    fn the_writer_sees_the_target_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.pth");
        write_atomically(&path, |tmp| {
            assert_eq!(tmp.file_name(), path.file_name());
            assert_ne!(tmp, path);
            fs::write(tmp, b"x").map_err(|e| Error::io(tmp, e))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }
}
