//! The home remembers that it has a store: `<home>/store.marker` is written once the store has
//! been opened. A store file that is then missing, or truncated to nothing, would otherwise open
//! as a new empty store — every pending message silently gone. The bus refuses to start on it
//! unless told `--new-store`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The marker's file name in the home.
pub const STORE_MARKER: &str = "store.marker";

/// Why the store may not be opened.
#[derive(Debug)]
pub struct LostStore {
    pub store: PathBuf,
    pub marker: PathBuf,
    /// `missing` or `empty (0 bytes)`.
    pub state: &'static str,
}

impl std::fmt::Display for LostStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the store {} is {} but this home had one ({} exists): starting would begin with \
             an empty store and every pending message would be lost. Restore the file from a \
             backup, or start with --new-store to begin with an empty store on purpose",
            self.store.display(),
            self.state,
            self.marker.display()
        )
    }
}

/// Refuses a store that is missing or empty where the marker says one existed.
pub fn check(home: &Path, store: &Path, new_store: bool) -> Result<(), LostStore> {
    let marker = home.join(STORE_MARKER);
    if new_store || !marker.exists() {
        return Ok(());
    }
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).ok();
    let state = match size(store) {
        None => "missing",
        // SQLite in WAL mode may keep a young store's pages in the -wal file only.
        Some(0) if size(&wal_of(store)).unwrap_or(0) == 0 => "empty (0 bytes)",
        Some(_) => return Ok(()),
    };
    Err(LostStore {
        store: store.to_owned(),
        marker,
        state,
    })
}

/// Records that the home has a store (after it opened).
pub fn mark(home: &Path, store: &Path) -> io::Result<()> {
    let marker = home.join(STORE_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let text = format!(
        "This home has a store ({}). If it goes missing, weave-bus and weaved refuse to start \
         without --new-store.\n",
        store.display()
    );
    fs::write(marker, text)
}

fn wal_of(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_that_had_a_store_refuses_a_missing_or_empty_one() {
        let dir = tempfile::TempDir::new().unwrap();
        let (home, store) = (dir.path(), dir.path().join("weave.db"));
        assert!(check(home, &store, false).is_ok(), "a new home");
        fs::write(&store, b"SQLite format 3\0").unwrap();
        mark(home, &store).unwrap();
        assert!(check(home, &store, false).is_ok(), "the store is there");
        fs::write(&store, b"").unwrap();
        let e = check(home, &store, false).unwrap_err();
        assert_eq!(e.state, "empty (0 bytes)");
        assert!(e.to_string().contains("--new-store"), "{e}");
        fs::write(wal_of(&store), b"pages").unwrap();
        assert!(
            check(home, &store, false).is_ok(),
            "its pages are in the WAL"
        );
        fs::remove_file(&store).unwrap();
        assert_eq!(check(home, &store, false).unwrap_err().state, "missing");
        assert!(check(home, &store, true).is_ok(), "--new-store");
    }
}
