//! Agents' secrets, kept for weavectl in the home: the bus tells a secret to the `agent.add`
//! that registers an agent, and only a connection that presents it (or the same client
//! instance) may take the agent over while another one holds it. Every weavectl process that
//! joins (the MCP server, the headless runner, `chat`, one-shot commands) saves it in
//! `<home>/agent-secrets/<session id>/<agent id>` (directory 0700, file 0600, the id
//! percent-encoded), so that a later weavectl — an MCP server restarted by its agent, say, or
//! `--force` — can prove it is the same agent. The home is the socket's directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directory of the home that holds the secrets.
pub const SECRETS_DIR: &str = "agent-secrets";

/// The secret kept for agent `id` of `session`, if any.
pub fn load(socket: &Path, session: &str, id: &str) -> Option<String> {
    let text = fs::read_to_string(path(socket, session, id)?).ok()?;
    let secret = text.trim();
    (!secret.is_empty()).then(|| secret.to_owned())
}

/// Keeps agent `id`'s secret (a failure only costs a later takeover its proof: logged).
pub fn save(socket: &Path, session: &str, id: &str, secret: &str) {
    let Some(path) = path(socket, session, id) else {
        return;
    };
    if let Err(e) = write_private(&path, secret) {
        tracing::warn!(error = %e, path = %path.display(), "cannot keep the agent's secret");
    }
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    // Written aside and renamed: a reader never sees half a secret.
    let aside = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)?;
    writeln!(file, "{secret}")?;
    fs::rename(&aside, path)
}

/// Where agent `id`'s secret is kept; `None` when the encoded names would be too long.
fn path(socket: &Path, session: &str, id: &str) -> Option<PathBuf> {
    let (session, id) = (encode(session), encode(id));
    if session.len() > 200 || id.len() > 200 {
        return None;
    }
    Some(socket.parent()?.join(SECRETS_DIR).join(session).join(id))
}

/// A file name for any id: letters, digits, `-` and `_` as they are, every other byte `%XX`
/// (so no `/`, no `.` or `..`).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_kept_privately_per_session_and_agent() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::TempDir::new().unwrap();
        let socket = home.path().join("coord.sock");
        assert_eq!(load(&socket, "s1", "a/../b"), None);
        save(&socket, "s1", "a/../b", "f00d");
        save(&socket, "s2", "a/../b", "beef");
        assert_eq!(load(&socket, "s1", "a/../b").as_deref(), Some("f00d"));
        assert_eq!(load(&socket, "s2", "a/../b").as_deref(), Some("beef"));
        let file = path(&socket, "s1", "a/../b").unwrap();
        assert_eq!(file.file_name().unwrap(), "a%2F%2E%2E%2Fb");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&home.path().join(SECRETS_DIR)), 0o700);
        assert_eq!(
            path(&socket, "s1", &"é".repeat(40)),
            None,
            "too long a name"
        );
    }
}
