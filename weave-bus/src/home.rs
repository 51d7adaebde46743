//! The bus's home directory: where it is, its permissions, the one-bus-per-home lock, and the
//! socket file (never replaced while something answers on it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_weave_transport_uds::home::HomeDirError;
use nix::fcntl::{Flock, FlockArg};

/// Why the bus cannot take a home.
#[derive(Debug)]
pub enum HomeError {
    /// `$WEAVE_HOME` is set but empty.
    EmptyEnv,
    /// Neither a flag, `$WEAVE_HOME` nor a home directory is available.
    NoHomeDir,
    /// Another live bus holds the lock; its pid when it wrote one.
    Locked {
        lock: PathBuf,
        pid: Option<u32>,
    },
    /// Something answers on the socket (another bus, or the old coordinator).
    SocketInUse(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for HomeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HomeError::EmptyEnv => f.write_str("WEAVE_HOME is set but empty"),
            HomeError::NoHomeDir => f.write_str("no home directory: pass --home or set WEAVE_HOME"),
            HomeError::Locked {
                lock,
                pid: Some(pid),
            } => write!(
                f,
                "another bus (pid {pid}) already owns this home (lock {})",
                lock.display()
            ),
            HomeError::Locked { lock, pid: None } => {
                write!(
                    f,
                    "another bus already owns this home (lock {})",
                    lock.display()
                )
            }
            HomeError::SocketInUse(p) => write!(
                f,
                "something is already answering on {}: another bus or the old coordinator; \
                 stop it first",
                p.display()
            ),
            HomeError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for HomeError {}

/// Resolves the home: the flag, else `$WEAVE_HOME`, else `~/.weave` (see
/// [`codex_weave_transport_uds::home::resolve_home`]).
pub fn resolve_home(flag: Option<&Path>) -> Result<PathBuf, HomeError> {
    codex_weave_transport_uds::home::resolve_home(flag).map_err(|e| match e {
        HomeDirError::EmptyEnv => HomeError::EmptyEnv,
        HomeDirError::NoHomeDir => HomeError::NoHomeDir,
    })
}

/// Creates the home with mode 0700 (and tightens an existing one).
pub fn prepare_home(home: &Path) -> Result<(), HomeError> {
    let io = |e| HomeError::Io(home.to_owned(), e);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .map_err(io)?;
    fs::set_permissions(home, fs::Permissions::from_mode(0o700)).map_err(io)
}

/// The exclusive lock that makes a bus the only one in its home, held until dropped.
#[derive(Debug)]
pub struct HomeLock {
    _lock: Flock<File>,
}

impl HomeLock {
    /// Takes the lock without waiting, and writes our pid into the lock file.
    pub fn acquire(path: &Path) -> Result<HomeLock, HomeError> {
        let io = |e| HomeError::Io(path.to_owned(), e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse().ok();
                return Err(HomeError::Locked {
                    lock: path.to_owned(),
                    pid,
                });
            }
        };
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(*lock, "{}", std::process::id()).map_err(io)?;
        Ok(HomeLock { _lock: lock })
    }
}

/// Removes a dead socket file; refuses when anything answers on it.
pub fn clear_stale_socket(path: &Path) -> Result<(), HomeError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if let Ok(stream) = UnixStream::connect(path) {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        return Err(HomeError::SocketInUse(path.to_owned()));
    }
    fs::remove_file(path).map_err(|e| HomeError::Io(path.to_owned(), e))
}

/// Sets the socket file to mode 0600.
pub fn restrict_socket(path: &Path) -> Result<(), HomeError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| HomeError::Io(path.to_owned(), e))
}
