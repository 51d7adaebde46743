//! `weavectl install` / `uninstall` on sample configuration files that already hold the user's
//! own MCP servers and hooks: `--dry-run` prints the diff and writes nothing; install is
//! idempotent and keeps a backup; uninstall removes exactly what install added.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use weave_test_kit::program;

fn weavectl(dir: &Path, args: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(program("weavectl"))
        .args(args)
        .arg("--project")
        .arg(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The user's own hooks: a formatter after edits, and a notifier at Stop.
fn own_hooks() -> Value {
    json!({ "hooks": {
        "PostToolUse": [{ "matcher": "Edit|Write", "hooks": [{ "type": "command", "command": "prettier --write" }] }],
        "Stop": [{ "hooks": [{ "type": "command", "command": "notify-send done" }] }]
    }, "model": "opus" })
}

#[test]
fn claude_install_dry_run_idempotence_and_uninstall_keep_the_users_entries() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join(".claude")).unwrap();
    let mcp = json!({ "mcpServers": { "github": { "command": "gh-mcp", "args": [] } } });
    std::fs::write(
        dir.join(".mcp.json"),
        serde_json::to_string_pretty(&mcp).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(".claude/settings.json"), own_hooks().to_string()).unwrap();
    let args = [
        "install",
        "claude",
        "--session",
        "demo",
        "--name",
        "Code Reviewer",
    ];

    let (diff, _, code) = weavectl(dir, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, Some(0));
    assert!(
        diff.contains("+    \"weave\": {") && diff.contains("hook claude Stop"),
        "{diff}"
    );
    assert_eq!(
        json_of(&dir.join(".mcp.json")),
        mcp,
        "a dry run writes nothing"
    );

    let (out, err, code) = weavectl(dir, &args);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(".mcp.json") && out.contains("settings.json"),
        "{out}"
    );
    let servers = json_of(&dir.join(".mcp.json"))["mcpServers"].clone();
    assert_eq!(servers["github"], mcp["mcpServers"]["github"]);
    assert_eq!(
        servers["weave"]["args"],
        json!(["mcp", "--session", "demo", "--name", "Code Reviewer"])
    );
    assert!(servers["weave"]["command"]
        .as_str()
        .unwrap()
        .ends_with("weavectl"));
    let settings = json_of(&dir.join(".claude/settings.json"));
    assert_eq!(settings["model"], "opus");
    for event in ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"] {
        let groups = settings["hooks"][event].as_array().unwrap();
        let ours = groups
            .iter()
            .flat_map(|g| g["hooks"].as_array().unwrap())
            .filter(|h| h["command"].as_str().unwrap().contains("weavectl"))
            .count();
        assert_eq!(ours, 1, "{event}");
        let cmd = groups.last().unwrap()["hooks"][0]["command"]
            .as_str()
            .unwrap();
        assert!(
            cmd.ends_with(&format!(
                "hook claude {event} --session demo --name 'Code Reviewer'"
            )),
            "{cmd}"
        );
    }
    assert_eq!(
        settings["hooks"]["PostToolUse"][0],
        own_hooks()["hooks"]["PostToolUse"][0]
    );
    assert!(dir.join(".mcp.json.weave-backup").exists());
    assert_eq!(json_of(&dir.join(".mcp.json.weave-backup")), mcp);

    // Again: nothing changes.
    let (out, _, _) = weavectl(dir, &args);
    assert!(out.contains("already connected"), "{out}");
    let (_, err, _) = weavectl(dir, &[&args[..], &["--dry-run"]].concat());
    assert!(err.contains("nothing to change"));

    // Uninstall: the user's own configuration, as it was.
    let (_, err, code) = weavectl(dir, &["uninstall", "claude"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_of(&dir.join(".mcp.json")), mcp);
    assert_eq!(json_of(&dir.join(".claude/settings.json")), own_hooks());
}

#[test]
fn codex_install_keeps_config_toml_as_written_and_uninstall_restores_it() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join(".codex")).unwrap();
    let toml = "# my Codex settings\nmodel = \"gpt-5.1-codex\"  # the default\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\nargs = [\"--port\", \"0\"]\n";
    std::fs::write(dir.join(".codex/config.toml"), toml).unwrap();
    let (_, err, code) = weavectl(
        dir,
        &["install", "codex", "--session", "demo", "--name", "Coder"],
    );
    assert_eq!(code, Some(0), "{err}");
    let after = std::fs::read_to_string(dir.join(".codex/config.toml")).unwrap();
    assert!(
        after.starts_with(toml),
        "the user's lines stay as written:\n{after}"
    );
    let parsed: toml::Table = after.parse().unwrap();
    assert_eq!(
        parsed["mcp_servers"]["weave"]["args"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        parsed["mcp_servers"]["docs"]["command"].as_str(),
        Some("docs-mcp")
    );
    let hooks = json_of(&dir.join(".codex/hooks.json"));
    assert!(hooks["hooks"]["Stop"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .contains("hook codex Stop"));
    let (_, err, code) = weavectl(dir, &["uninstall", "codex"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".codex/config.toml")).unwrap(),
        toml
    );
    assert_eq!(json_of(&dir.join(".codex/hooks.json")), json!({}));
}

#[test]
fn gemini_gets_both_in_its_settings_and_a_foreign_weave_server_is_left_alone() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join(".gemini")).unwrap();
    let settings = json!({ "theme": "Dracula", "mcpServers": { "weave": { "command": "someone-elses-weave" } } });
    std::fs::write(dir.join(".gemini/settings.json"), settings.to_string()).unwrap();
    let (_, err, code) = weavectl(dir, &["install", "gemini", "--name", "Gem"]);
    assert_eq!(code, Some(0), "{err}");
    let after = json_of(&dir.join(".gemini/settings.json"));
    assert_eq!(
        after["mcpServers"]["weave"], settings["mcpServers"]["weave"],
        "not ours: kept"
    );
    assert_eq!(
        after["hooks"]["AfterAgent"][0]["hooks"][0]["timeout"], 5000,
        "Gemini counts milliseconds"
    );
    assert_eq!(after["theme"], "Dracula");
    let (_, _, code) = weavectl(dir, &["uninstall", "gemini"]);
    assert_eq!(code, Some(0));
    assert_eq!(json_of(&dir.join(".gemini/settings.json")), settings);
    // A file that is not JSON is refused, untouched.
    std::fs::write(dir.join(".gemini/settings.json"), "{ not json").unwrap();
    let (_, err, code) = weavectl(dir, &["install", "gemini"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not valid JSON"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join(".gemini/settings.json")).unwrap(),
        "{ not json"
    );
}
