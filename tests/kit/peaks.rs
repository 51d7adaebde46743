//! Highest values seen while a test runs: a process's resident memory and a file's size,
//! sampled every 50 ms by a task of their own.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

/// Resident memory of process `pid` in KiB (0 once it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples until [`Peaks::stop`].
pub struct Peaks {
    sampling: Arc<AtomicBool>,
    task: JoinHandle<Peak>,
}

/// What [`Peaks`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// Resident memory, MiB.
    pub rss_mb: u64,
    /// The file's size, bytes (0 if it never existed).
    pub file_bytes: u64,
}

impl Peaks {
    /// Samples process `pid`'s resident memory and, if given, the size of `file`.
    pub fn start(pid: u32, file: Option<&Path>) -> Peaks {
        let sampling = Arc::new(AtomicBool::new(true));
        let file: Option<PathBuf> = file.map(Path::to_owned);
        let task = {
            let sampling = sampling.clone();
            tokio::spawn(async move {
                let (mut rss, mut bytes) = (0, 0);
                while sampling.load(Ordering::Relaxed) {
                    rss = rss.max(rss_kb(pid));
                    if let Some(f) = &file {
                        bytes = bytes.max(std::fs::metadata(f).map_or(0, |m| m.len()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Peak {
                    rss_mb: rss / 1024,
                    file_bytes: bytes,
                }
            })
        };
        Peaks { sampling, task }
    }

    pub async fn stop(self) -> Peak {
        self.sampling.store(false, Ordering::Relaxed);
        self.task.await.expect("the sampler")
    }
}
