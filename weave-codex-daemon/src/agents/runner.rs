//! `weavectl agent run -- CMD ARGS…`: a headless agent. It joins as a named agent and, for each
//! message delivered to it, runs CMD with the message text on stdin and the message's context in
//! `WEAVE_*` variables; the command's stdout becomes the reply (for a relay step, its
//! `action.result` `completed`), a non-zero exit an error with the tail of stderr. Works with
//! `codex exec`, `claude -p`, `gemini -p` or any script.
//!
//! Nothing is lost: deliveries are acked only once the answer is recorded, so a runner that
//! crashes gets them again when it comes back. While a command runs the agent says it is busy;
//! later messages wait their turn (`--concurrency` runs more at once). An `interrupt` control
//! step, a cancelled relay, a timeout or the runner's own end kills the command's whole process
//! group.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_weave_transport_uds::Delivery;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Semaphore};

use super::inbox::{self, cut, Item};
use super::link::{JoinOptions, Joined, LinkResult};

/// Most bytes of a command's stdout kept for its answer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Characters of stderr an error answer carries (its tail).
pub const STDERR_TAIL_CHARS: usize = 2000;

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub socket: PathBuf,
    pub session: String,
    pub name: String,
    pub create: bool,
    pub timeout: Duration,
    pub concurrency: usize,
    pub command: Vec<String>,
}

/// One message to run the command for.
#[derive(Debug, Clone)]
struct Job {
    item: Item,
    /// What to ack once answered: the message id (a group is acked by its result).
    ack: Option<String>,
}

/// Commands running now: job id → (process group, relay id).
type Running = Arc<Mutex<HashMap<String, (i32, Option<String>)>>>;

/// What a run came to.
#[derive(Debug)]
enum Outcome {
    Done(String),
    Failed(String),
}

pub async fn run(opts: RunnerOptions) -> LinkResult<()> {
    if opts.command.is_empty() {
        return Err(super::link::LinkError::new(
            "bad_request",
            "give the command to run after `--`, e.g. `weavectl agent run --name w -- ./answer.sh`",
        ));
    }
    let mut joined = Joined::join_with(
        &opts.socket,
        &opts.session,
        &opts.name,
        JoinOptions {
            create: opts.create,
            auto_ack: false,
            ..JoinOptions::default()
        },
    )
    .await?;
    eprintln!(
        "weavectl: {} runs `{}` for each message in session {}",
        joined.name,
        opts.command.join(" "),
        joined.session.id
    );
    let mut deliveries = joined.agent.take_deliveries();
    let joined = Arc::new(joined);
    let running: Running = Arc::default();
    let slots = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let busy = Arc::new(Mutex::new(0usize));
    let (jobs_tx, mut jobs_rx) = mpsc::unbounded_channel::<Job>();
    let opts = Arc::new(opts);

    // Jobs start in arrival order, as slots free up.
    let starter = {
        let (joined, running, busy, opts) =
            (joined.clone(), running.clone(), busy.clone(), opts.clone());
        tokio::spawn(async move {
            while let Some(job) = jobs_rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (joined, running, busy, opts) =
                    (joined.clone(), running.clone(), busy.clone(), opts.clone());
                tokio::spawn(async move {
                    work(&joined, &opts, &running, &busy, job).await;
                    drop(slot);
                });
            }
        })
    };

    let mut stop = std::pin::pin!(codex_weave_transport_uds::shutdown_signal());
    loop {
        let d = tokio::select! {
            _ = &mut stop => break,
            d = deliveries.recv() => match d { Some(d) => d, None => break },
        };
        for job in jobs_of(&joined, &d) {
            if job.item.kind == "control" {
                // A headless command keeps no context between runs: only `interrupt` does
                // anything (it kills what runs); every control step is answered at once.
                if job.item.text == "[interrupt]" {
                    kill_all(&running, None);
                }
                answer(&joined, &job, Outcome::Done("ok".into())).await;
                continue;
            }
            let _ = jobs_tx.send(job);
        }
        if d.kind() == "relay.done" {
            let payload = d.0.payload.clone().unwrap_or_default();
            if payload["status"] == "cancelled" {
                kill_all(&running, payload["relay_id"].as_str());
            }
        }
        if d.kind() == "agent.displaced" {
            eprintln!(
                "weavectl: another process took the name {}; stopping",
                joined.name
            );
            break;
        }
    }
    starter.abort();
    kill_all(&running, None);
    Ok(())
}

/// The messages a delivery holds for this agent; a message's delivery is acked once answered.
fn jobs_of(j: &Joined, d: &Delivery) -> Vec<Job> {
    let ack = (d.kind() == "message.send").then(|| d.ack_id().to_owned());
    inbox::items_of(&j.id, d)
        .into_iter()
        .map(|item| Job {
            item,
            ack: ack.clone(),
        })
        .collect()
}

/// Runs the command for one message and answers it; the agent is busy meanwhile.
async fn work(j: &Joined, opts: &RunnerOptions, running: &Running, busy: &Mutex<usize>, job: Job) {
    let _ = j
        .call("message.read", json!({ "ids": [job.item.id] }))
        .await;
    set_busy(j, busy, 1, Some(&job.item.text)).await;
    let outcome = execute(j, opts, running, &job.item).await;
    answer(j, &job, outcome).await;
    set_busy(j, busy, -1, None).await;
}

async fn set_busy(j: &Joined, busy: &Mutex<usize>, delta: isize, doing: Option<&str>) {
    let now = {
        let mut n = busy.lock().unwrap();
        *n = n.saturating_add_signed(delta);
        *n
    };
    let payload = match (delta > 0, now) {
        (true, _) => json!({ "activity": "busy", "doing": cut(doing.unwrap_or("working"), 80) }),
        (false, 0) => json!({ "activity": "idle" }),
        (false, _) => return,
    };
    let _ = j.call("agent.activity", payload).await;
}

/// Runs the command with the message on stdin, in a process group of its own.
async fn execute(j: &Joined, opts: &RunnerOptions, running: &Running, item: &Item) -> Outcome {
    let mut cmd = tokio::process::Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..])
        .env("WEAVE_SESSION", &j.session.id)
        .env("WEAVE_AGENT", &j.name)
        .env("WEAVE_FROM", &item.from_name)
        .env("WEAVE_MESSAGE_ID", &item.id)
        .env("WEAVE_CONTEXT_ID", item.context_id.as_deref().unwrap_or(""))
        .env("WEAVE_RELAY_ID", item.relay_id.as_deref().unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("could not start `{}`: {e}", opts.command[0])),
    };
    let pgid = child.id().map_or(0, |p| p as i32);
    running
        .lock()
        .unwrap()
        .insert(item.id.clone(), (pgid, item.relay_id.clone()));
    if let Some(mut stdin) = child.stdin.take() {
        let text = item.text.clone();
        tokio::spawn(async move {
            let _ = stdin.write_all(text.as_bytes()).await;
        });
    }
    let result = tokio::time::timeout(opts.timeout, child.wait_with_output()).await;
    running.lock().unwrap().remove(&item.id);
    match result {
        Err(_) => {
            kill_group(pgid);
            Outcome::Failed(format!("timed out after {} s", opts.timeout.as_secs()))
        }
        Ok(Err(e)) => Outcome::Failed(format!("the command failed: {e}")),
        Ok(Ok(out)) if out.status.success() => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.len() > MAX_ANSWER_BYTES {
                let mut end = MAX_ANSWER_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push_str("\n… (output cut)");
            }
            Outcome::Done(text.trim_end().to_owned())
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let chars: Vec<char> = stderr.trim_end().chars().collect();
            let tail: String = chars[chars.len().saturating_sub(STDERR_TAIL_CHARS)..]
                .iter()
                .collect();
            let status = match out.status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_owned(),
            };
            Outcome::Failed(format!("{status}: {tail}"))
        }
    }
}

/// Answers the job — a reply, or the relay step's result — and only then acks it.
async fn answer(j: &Joined, job: &Job, outcome: Outcome) {
    let recorded = if job.item.is_relay_step() {
        let (status, detail) = match &outcome {
            Outcome::Done(text) => ("completed", text.as_str()),
            Outcome::Failed(why) => ("error", why.as_str()),
        };
        inbox::task_result(j, &job.item, status, detail).await
    } else {
        let text = match &outcome {
            Outcome::Done(t) if t.is_empty() => "(no output)".to_owned(),
            Outcome::Done(t) => t.clone(),
            Outcome::Failed(why) => format!("error: {why}"),
        };
        inbox::reply(j, &job.item, &text).await
    };
    match recorded {
        Ok(_) => {
            if let Some(ack) = &job.ack {
                j.ack(ack);
            }
        }
        // Not acked: it comes back after a reconnect, or is dead-lettered past the cap.
        Err(e) => eprintln!(
            "weavectl: could not answer {}: {e} ({})",
            job.item.id,
            e.hint()
        ),
    }
}

fn kill_group(pgid: i32) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Kills the commands running (those of `relay` only, when given).
fn kill_all(running: &Running, relay: Option<&str>) {
    for (pgid, r) in running.lock().unwrap().values() {
        if relay.is_none() || r.as_deref() == relay {
            kill_group(*pgid);
        }
    }
}
