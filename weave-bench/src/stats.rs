//! Latency samples and their quantiles.

use std::time::Duration;

#[derive(Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The `q` quantile in microseconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_unstable();
        if v.is_empty() {
            return f64::NAN;
        }
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i].as_secs_f64() * 1e6
    }
}

pub struct Throughput {
    pub rate: f64,
    pub check: String,
    /// CPU time per message of each of the process's threads (by name), in µs, when measured.
    pub cpu: Vec<(String, f64)>,
}

/// Time on CPU of each thread of process `pid`, summed by thread name (from the kernel's
/// per-thread scheduler statistics).
pub fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, Duration> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let nanos: u64 = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        *by_name.entry(name.trim().to_owned()).or_default() += Duration::from_nanos(nanos);
    }
    by_name
}
