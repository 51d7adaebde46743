//! Why a bus could not start.

use std::io;
use std::path::PathBuf;

use crate::home::HomeError;
use crate::store::StoreError;
use crate::store_marker::LostStore;

/// Why the bus could not start.
#[derive(Debug)]
pub enum StartError {
    Home(HomeError),
    Store(StoreError),
    LostStore(LostStore),
    Io(PathBuf, io::Error),
    /// The NATS cluster of `--cluster` could not be reached or used.
    Cluster(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Home(e) => write!(f, "{e}"),
            StartError::Store(e) => write!(f, "cannot open the store: {e}"),
            StartError::LostStore(e) => write!(f, "{e}"),
            StartError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            StartError::Cluster(e) => write!(f, "cannot join the cluster: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<HomeError> for StartError {
    fn from(e: HomeError) -> Self {
        StartError::Home(e)
    }
}
