//! `weavectl install claude|codex|gemini` and `weavectl uninstall …`: write the `weave` MCP
//! server entry and the doorbell hooks into an agent's own configuration files, for one project
//! (`--project DIR`, the default: the current directory) or for the user (`--user`).
//!
//! - Idempotent: installing again replaces what an earlier install wrote, nothing else.
//! - The user's own entries stay: only the MCP server named `weave` and hook handlers that run
//!   `weavectl hook` are ours; uninstall removes exactly those (and a hook group or event left
//!   empty by that), never a file.
//! - Each file changed is first copied to `FILE.weave-backup`; `--dry-run` prints the diff and
//!   writes nothing.
//!
//! Where each agent reads its configuration (its documentation, see `docs/weave/agents.md`):
//! Claude Code — MCP servers in `.mcp.json` (project) or `~/.claude.json` (user), hooks in
//! `.claude/settings.json` / `~/.claude/settings.json`; Codex CLI — `[mcp_servers.weave]` in
//! `.codex/config.toml` / `~/.codex/config.toml`, hooks in `.codex/hooks.json` /
//! `~/.codex/hooks.json`; Gemini CLI — both in `.gemini/settings.json` / `~/.gemini/settings.json`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::hooks::AgentKind;

/// The MCP server's name in every agent's configuration.
pub const SERVER_NAME: &str = "weave";
/// Seconds an agent gives one hook run (the hook ends itself after 300 ms).
const HOOK_TIMEOUT_S: u64 = 5;

#[derive(Debug, Clone)]
pub enum Scope {
    /// The project at this directory.
    Project(PathBuf),
    /// The user, whose home directory this is.
    User(PathBuf),
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub agent: AgentKind,
    pub scope: Scope,
    pub session: Option<String>,
    pub name: Option<String>,
    /// The `weavectl` the agent runs (an absolute path, so it is found whatever its PATH).
    pub weavectl: String,
}

/// One file's content before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: String,
}

impl Change {
    pub fn changed(&self) -> bool {
        self.before.as_deref() != Some(self.after.as_str())
    }

    /// A unified diff of the change.
    pub fn diff(&self) -> String {
        let before = self.before.as_deref().unwrap_or("");
        similar::TextDiff::from_lines(before, &self.after)
            .unified_diff()
            .header(
                &format!("{} (before)", self.path.display()),
                &format!("{} (after)", self.path.display()),
            )
            .to_string()
    }
}

/// The files an agent's entries live in: (MCP server file, hooks file).
fn files(agent: AgentKind, scope: &Scope) -> (PathBuf, PathBuf) {
    match (agent, scope) {
        (AgentKind::Claude, Scope::Project(d)) => {
            (d.join(".mcp.json"), d.join(".claude/settings.json"))
        }
        (AgentKind::Claude, Scope::User(h)) => {
            (h.join(".claude.json"), h.join(".claude/settings.json"))
        }
        (AgentKind::Codex, Scope::Project(d)) => {
            (d.join(".codex/config.toml"), d.join(".codex/hooks.json"))
        }
        (AgentKind::Codex, Scope::User(h)) => {
            (h.join(".codex/config.toml"), h.join(".codex/hooks.json"))
        }
        (AgentKind::Gemini, Scope::Project(d)) => {
            let f = d.join(".gemini/settings.json");
            (f.clone(), f)
        }
        (AgentKind::Gemini, Scope::User(h)) => {
            let f = h.join(".gemini/settings.json");
            (f.clone(), f)
        }
    }
}

/// A word for a shell command line, quoted when it must be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl InstallOptions {
    fn join_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(s) = &self.session {
            args.extend(["--session".to_owned(), s.clone()]);
        }
        if let Some(n) = &self.name {
            args.extend(["--name".to_owned(), n.clone()]);
        }
        args
    }

    fn mcp_args(&self) -> Vec<String> {
        let mut args = vec!["mcp".to_owned()];
        args.extend(self.join_args());
        args
    }

    fn hook_command(&self, event: &str) -> String {
        let mut words = vec![
            self.weavectl.clone(),
            "hook".into(),
            self.agent.as_str().into(),
            event.into(),
        ];
        words.extend(self.join_args());
        words
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether a hook handler is one of ours.
fn is_ours(handler: &Value, agent: AgentKind) -> bool {
    handler["command"].as_str().is_some_and(|c| {
        c.contains("weavectl") && c.contains(&format!(" hook {} ", agent.as_str()))
    })
}

/// Whether an MCP server entry is ours.
fn is_our_server(entry: &Value) -> bool {
    entry["command"]
        .as_str()
        .is_some_and(|c| c.contains("weavectl"))
        && entry["args"].get(0).and_then(Value::as_str) == Some("mcp")
}

/// A file's new content from its old one (`None`: leave it).
type Edit<'a> = &'a dyn Fn(Option<&str>) -> Result<Option<String>, String>;

/// The changes installing (`remove: false`) or uninstalling would make.
pub fn plan(opts: &InstallOptions, remove: bool) -> Result<Vec<Change>, String> {
    let (mcp_file, hooks_file) = files(opts.agent, &opts.scope);
    let mut changes: Vec<Change> = Vec::new();
    let mut edit = |path: &Path, f: Edit<'_>| -> Result<(), String> {
        let before = match changes.iter().find(|c| c.path == path) {
            Some(c) => Some(c.after.clone()),
            None => read(path)?,
        };
        if let Some(after) = f(before.as_deref())? {
            match changes.iter_mut().find(|c| c.path == path) {
                Some(c) => c.after = after,
                None => changes.push(Change {
                    path: path.to_owned(),
                    before,
                    after,
                }),
            }
        }
        Ok(())
    };
    if opts.agent == AgentKind::Codex {
        edit(&mcp_file, &|text| codex_mcp(text, opts, remove))?;
    } else {
        edit(&mcp_file, &|text| {
            json_edit(text, &mcp_file, |doc| json_mcp(doc, opts, remove))
        })?;
    }
    edit(&hooks_file, &|text| {
        json_edit(text, &hooks_file, |doc| json_hooks(doc, opts, remove))
    })?;
    Ok(changes.into_iter().filter(Change::changed).collect())
}

/// Writes the changes, each file's old content first kept as `FILE.weave-backup`.
pub fn apply(changes: &[Change]) -> Result<(), String> {
    for c in changes {
        if let Some(dir) = c.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        if c.before.is_some() {
            let backup = backup_path(&c.path);
            std::fs::copy(&c.path, &backup).map_err(|e| format!("{}: {e}", backup.display()))?;
        }
        let tmp = c.path.with_extension("weave-tmp");
        std::fs::write(&tmp, &c.after).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &c.path).map_err(|e| format!("{}: {e}", c.path.display()))?;
    }
    Ok(())
}

pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".weave-backup");
    path.with_file_name(name)
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Edits a JSON file's document; `None` when nothing would change (an absent file stays absent
/// when there is nothing to write into it).
fn json_edit(
    text: Option<&str>,
    path: &Path,
    f: impl FnOnce(&mut Map<String, Value>),
) -> Result<Option<String>, String> {
    let mut doc = match text.map(str::trim) {
        None | Some("") => Map::new(),
        Some(t) => match serde_json::from_str::<Value>(t) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(format!(
                    "{}: not a JSON object; left as it is",
                    path.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "{}: not valid JSON ({e}); left as it is",
                    path.display()
                ))
            }
        },
    };
    let was = doc.clone();
    f(&mut doc);
    if doc == was || (text.is_none() && doc.is_empty()) {
        return Ok(None);
    }
    let mut out = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    out.push('\n');
    Ok(Some(out))
}

/// `mcpServers.weave` in a JSON configuration (Claude Code, Gemini CLI).
fn json_mcp(doc: &mut Map<String, Value>, opts: &InstallOptions, remove: bool) {
    let servers = doc.entry("mcpServers").or_insert_with(|| json!({}));
    let Some(servers) = servers.as_object_mut() else {
        return;
    };
    if servers.get(SERVER_NAME).is_some_and(|e| !is_our_server(e)) {
        return; // someone else's server of that name: leave it
    }
    if remove {
        servers.remove(SERVER_NAME);
    } else {
        servers.insert(
            SERVER_NAME.to_owned(),
            json!({ "command": opts.weavectl, "args": opts.mcp_args() }),
        );
    }
    if servers.is_empty() {
        doc.remove("mcpServers");
    }
}

/// The hooks: each event gets one group holding our handler; ours are taken out first.
fn json_hooks(doc: &mut Map<String, Value>, opts: &InstallOptions, remove: bool) {
    let hooks = doc.entry("hooks").or_insert_with(|| json!({}));
    let Some(hooks) = hooks.as_object_mut() else {
        return;
    };
    for groups in hooks.values_mut().filter_map(Value::as_array_mut) {
        for group in groups.iter_mut() {
            if let Some(handlers) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                handlers.retain(|h| !is_ours(h, opts.agent));
            }
        }
        groups.retain(|g| g["hooks"].as_array().is_none_or(|h| !h.is_empty()));
    }
    hooks.retain(|_, groups| groups.as_array().is_none_or(|g| !g.is_empty()));
    if !remove {
        let timeout = match opts.agent {
            AgentKind::Gemini => json!(HOOK_TIMEOUT_S * 1000), // milliseconds
            _ => json!(HOOK_TIMEOUT_S),
        };
        for event in opts.agent.events() {
            let handler = json!({ "type": "command", "command": opts.hook_command(event), "timeout": timeout });
            let groups = hooks.entry(event.to_string()).or_insert_with(|| json!([]));
            if let Some(groups) = groups.as_array_mut() {
                groups.push(json!({ "hooks": [handler] }));
            }
        }
    }
    if hooks.is_empty() {
        doc.remove("hooks");
    }
}

/// `[mcp_servers.weave]` in Codex's `config.toml`, the rest of the file kept as written.
fn codex_mcp(
    text: Option<&str>,
    opts: &InstallOptions,
    remove: bool,
) -> Result<Option<String>, String> {
    let mut doc: toml_edit::DocumentMut = text
        .unwrap_or("")
        .parse()
        .map_err(|e| format!("config.toml is not valid TOML ({e}); left as it is"))?;
    let before = doc.to_string();
    let ours = |t: &toml_edit::Item| {
        t.get("command")
            .and_then(|c| c.as_str())
            .is_some_and(|c| c.contains("weavectl"))
            && t.get("args")
                .and_then(|a| a.as_array())
                .and_then(|a| a.get(0))
                .and_then(|v| v.as_str())
                == Some("mcp")
    };
    let servers = doc.entry("mcp_servers").or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    let Some(servers) = servers.as_table_like_mut() else {
        return Err("config.toml: `mcp_servers` is not a table; left as it is".into());
    };
    match servers.get(SERVER_NAME) {
        Some(item) if !ours(item) => return Ok(None),
        _ => {}
    }
    if remove {
        servers.remove(SERVER_NAME);
    } else {
        let mut t = toml_edit::Table::new();
        t.insert("command", toml_edit::value(opts.weavectl.clone()));
        let mut args = toml_edit::Array::new();
        for a in opts.mcp_args() {
            args.push(a);
        }
        t.insert("args", toml_edit::value(args));
        servers.insert(SERVER_NAME, toml_edit::Item::Table(t));
    }
    if servers.is_empty() {
        doc.remove("mcp_servers");
    }
    let after = doc.to_string();
    Ok((after != before && !(text.is_none() && after.trim().is_empty())).then_some(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell_only_when_they_must_be() {
        assert_eq!(shell_word("/usr/bin/weavectl"), "/usr/bin/weavectl");
        assert_eq!(shell_word("my session"), "'my session'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
