//! Security for a service on localhost: a bearer token (created at first start in
//! `<home>/token`, mode 0600) on every `/api` route but health and the OpenAPI document; a
//! one-time login code that turns into an HttpOnly, SameSite=Strict session cookie signed with a
//! key kept in the home (so it survives restarts; logout revokes it); loopback-only `Host`
//! (DNS-rebinding defence); no state change from a foreign `Origin`. Secrets never reach logs.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{header, HeaderMap, Method};
use axum_extra::extract::cookie::Key;

/// Name of the session cookie.
pub const COOKIE: &str = "weave_session";

/// Where `weavectl login` leaves one-time login codes for the running daemon: one file per
/// code, named by it, mode 0600, in a 0700 directory of the home.
pub const LOGIN_CODES_DIR: &str = "login-codes";
/// How long a code left by `weavectl login` can be spent.
pub const LOGIN_CODE_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// The file in the home where the daemon writes its HTTP address (`127.0.0.1:8787`).
pub const HTTP_ADDR_FILE: &str = "http.addr";

/// A fresh one-time login code for the daemon of `home`, left in [`LOGIN_CODES_DIR`]; valid for
/// [`LOGIN_CODE_TTL`] or until spent. Only someone who can write the home can make one.
pub fn issue_login_code(home: &Path) -> io::Result<String> {
    let dir = home.join(LOGIN_CODES_DIR);
    match fs::create_dir(&dir) {
        Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let code = random_hex(1);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(&code))?;
    Ok(code)
}

/// Spends a code left by [`issue_login_code`]: a plain file (not a symlink), young enough, and
/// removed by this call (so two redeemers cannot both win).
fn spend_file_code(dir: &Path, code: &str) -> bool {
    if code.len() != 32 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let path = dir.join(code);
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return false;
    };
    let fresh = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age <= LOGIN_CODE_TTL);
    meta.file_type().is_file() && fs::remove_file(&path).is_ok() && fresh
}

/// Hex digits of the token (256 bits).
pub const TOKEN_HEX: usize = 64;

/// Secrets and live sessions of the HTTP facade.
pub struct Auth {
    token: String,
    pub(crate) key: Key,
    sessions_file: PathBuf,
    login_dir: PathBuf,
    sessions: Mutex<HashSet<String>>,
    login_codes: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }") // never print a secret
    }
}

fn random_hex(uuids: usize) -> String {
    (0..uuids)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect()
}

/// Reads a secret file, or creates it (mode 0600) with `make()` (also when it is empty). The
/// file is opened without following a symlink (one planted in the home is refused), and what it
/// holds must be `hex_len` hex digits, as made: a short or hand-written secret is refused at
/// start rather than accepted.
fn secret(path: &Path, hex_len: usize, make: impl FnOnce() -> String) -> io::Result<String> {
    let no_follow = nix::fcntl::OFlag::O_NOFOLLOW.bits();
    let refused = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(no_follow)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(no_follow)
                .open(path)?;
            let value = make();
            writeln!(file, "{value}")?;
            return Ok(value);
        }
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(refused(format!(
                "{} is a symlink; a secret is read only from a plain file of the home (remove it: a new one is made at start)",
                path.display()
            )))
        }
        Err(e) => return Err(e),
    };
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    let mut text = String::new();
    io::Read::read_to_string(&mut file, &mut text)
        .map_err(|_| refused(format!("{} is not text", path.display())))?;
    let value = text.trim();
    if value.is_empty() {
        let value = make();
        file.set_len(0)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(0))?;
        writeln!(file, "{value}")?;
        return Ok(value);
    }
    if value.len() != hex_len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused(format!(
            "{} does not hold a well-formed secret ({hex_len} hex digits); remove it and a new one is made at start",
            path.display()
        )));
    }
    Ok(value.to_owned())
}

impl Auth {
    /// Loads (or creates) the token, the cookie key and the live sessions under `home`.
    pub fn load(home: &Path) -> io::Result<Auth> {
        let token = secret(&home.join("token"), TOKEN_HEX, || random_hex(2))?;
        let key_hex = secret(&home.join("cookie.key"), 128, || random_hex(4))?;
        let key = Key::from(key_hex.as_bytes());
        let sessions_file = home.join("http-sessions");
        let sessions = fs::read_to_string(&sessions_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Auth {
            token,
            key,
            sessions_file,
            login_dir: home.join(LOGIN_CODES_DIR),
            sessions: Mutex::new(sessions),
            login_codes: Mutex::new(HashSet::new()),
        })
    }

    /// Writes the HTTP address where `weavectl login` finds it.
    pub fn publish_addr(home: &Path, addr: std::net::SocketAddr) -> io::Result<()> {
        fs::write(home.join(HTTP_ADDR_FILE), format!("{addr}\n"))
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A fresh one-time login code (valid until used or the daemon stops).
    pub fn new_login_code(&self) -> String {
        let code = random_hex(1);
        self.login_codes.lock().unwrap().insert(code.clone());
        code
    }

    /// Spends a login code (printed at start, or left by `weavectl login`): a new session id,
    /// or `None` if the code is unknown, expired or used.
    pub fn redeem(&self, code: &str) -> Option<String> {
        let known = self.login_codes.lock().unwrap().remove(code);
        if !known && !spend_file_code(&self.login_dir, code) {
            return None;
        }
        let id = random_hex(2);
        let mut sessions = self.sessions.lock().unwrap();
        sessions.insert(id.clone());
        self.save(&sessions);
        Some(id)
    }

    pub fn is_session(&self, id: &str) -> bool {
        self.sessions.lock().unwrap().contains(id)
    }

    pub fn revoke(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap();
        if sessions.remove(id) {
            self.save(&sessions);
        }
    }

    fn save(&self, sessions: &HashSet<String>) {
        let text: String = sessions.iter().map(|s| format!("{s}\n")).collect();
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.sessions_file)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot save HTTP sessions");
        }
    }

    /// Whether `Authorization: Bearer` carries the token (compared in constant time).
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(given.trim().as_bytes(), self.token.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A loopback host name or address, with an optional port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a request may not change state: a browser page of another origin (scheme, host and
/// port: a page on `http://127.0.0.1:3000` is foreign to a daemon on `127.0.0.1:8787`, though
/// SameSite cookies treat them as one site), or a body that is not declared JSON (the content
/// types a cross-origin form or `fetch` may send without a preflight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    ForeignOrigin,
    NotJson,
}

/// The methods that change state; the others are served to any origin.
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a state-changing request: an `Origin` (when present) must be the daemon's own,
/// `http://` + the request's `Host`; a `Sec-Fetch-Site` (when present) must be `same-origin` or
/// `none` (typed by the person); a body must come with `Content-Type: application/json`.
/// Clients that are not browsers send neither header and pass with a JSON body.
pub fn request_ok(method: &Method, headers: &HeaderMap) -> Result<(), Unsafe> {
    if !changes_state(method) {
        return Ok(());
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(SEC_FETCH_SITE) {
        if !matches!(site, "same-origin" | "none") {
            return Err(Unsafe::ForeignOrigin);
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = text(header::HOST.as_str()).unwrap_or_default();
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
        if !own {
            return Err(Unsafe::ForeignOrigin);
        }
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || text(header::CONTENT_LENGTH.as_str()).is_some_and(|n| n.trim() != "0");
    if has_body && !is_json(text(header::CONTENT_TYPE.as_str())) {
        return Err(Unsafe::NotJson);
    }
    Ok(())
}

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_secret_is_made_kept_and_never_taken_from_a_symlink_or_a_short_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("token");
        let made = secret(&path, TOKEN_HEX, || random_hex(2)).unwrap();
        assert_eq!(made.len(), TOKEN_HEX);
        assert_eq!(secret(&path, TOKEN_HEX, || unreachable!()).unwrap(), made);
        fs::write(&path, "").unwrap();
        let remade = secret(&path, TOKEN_HEX, || random_hex(2)).unwrap();
        assert_ne!(remade, made, "an empty file gets a new secret");
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), remade);
        fs::write(&path, "x\n").unwrap();
        let e = secret(&path, TOKEN_HEX, || unreachable!()).unwrap_err();
        assert!(e.to_string().contains("well-formed"), "{e}");
        let planted = dir.path().join("planted");
        fs::write(&planted, format!("{}\n", random_hex(2))).unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&planted, &path).unwrap();
        let e = secret(&path, TOKEN_HEX, || unreachable!()).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(dir.path().join("dangling"), &path).unwrap();
        assert!(
            secret(&path, TOKEN_HEX, || random_hex(2)).is_err(),
            "not created through it"
        );
        assert!(!dir.path().join("dangling").exists());
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:8787",
            "127.0.0.1:1",
            "[::1]:80",
            "LOCALHOST",
            "a.localhost",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8787",
            "127.0.0.1.evil.com",
            "10.0.0.1",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_the_daemons_own_origin_with_a_json_body_changes_state() {
        let post = Method::POST;
        let own = [
            ("host", "127.0.0.1:8787"),
            ("origin", "http://127.0.0.1:8787"),
        ];
        let json = [
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "2"),
        ];
        let ok = |extra: &[(&'static str, &str)]| {
            let all: Vec<_> = own.iter().chain(extra).copied().collect();
            request_ok(&post, &headers(&all))
        };
        assert_eq!(ok(&json), Ok(()));
        assert_eq!(ok(&[]), Ok(()), "no body, no content type needed");
        assert_eq!(ok(&[("content-length", "0")]), Ok(()));
        for (ct, why) in [
            ("text/plain", "a form's type"),
            ("application/x-www-form-urlencoded", "a form's type"),
            ("application/jsonx", "not json"),
        ] {
            let got = ok(&[("content-type", ct), ("content-length", "2")]);
            assert_eq!(got, Err(Unsafe::NotJson), "{ct}: {why}");
        }
        assert_eq!(
            ok(&[("content-length", "2")]),
            Err(Unsafe::NotJson),
            "no type"
        );
        for origin in [
            "http://127.0.0.1:3000",
            "http://localhost:8787",
            "https://127.0.0.1:8787",
            "null",
            "http://127.0.0.1",
        ] {
            let h = headers(&[("host", "127.0.0.1:8787"), ("origin", origin)]);
            assert_eq!(
                request_ok(&post, &h),
                Err(Unsafe::ForeignOrigin),
                "{origin}"
            );
        }
        assert_eq!(
            ok(&[("sec-fetch-site", "same-site")]),
            Err(Unsafe::ForeignOrigin),
            "another port of the same host is the same site, not the same origin"
        );
        assert_eq!(ok(&[("sec-fetch-site", "same-origin")]), Ok(()));
        let no_browser = headers(&[("host", "127.0.0.1:8787")]);
        assert_eq!(request_ok(&post, &no_browser), Ok(()));
        let foreign_get = headers(&[("host", "127.0.0.1:8787"), ("origin", "http://evil")]);
        assert_eq!(request_ok(&Method::GET, &foreign_get), Ok(()));
    }
}
