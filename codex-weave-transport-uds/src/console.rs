//! Console lines that can never hurt the process that writes them: `println!`/`eprintln!`
//! panic on a closed pipe (`weavectl tail | head`, `weaved 2>&1 | head -1`); these ignore every
//! write error.

use std::io::Write;

/// One line on stdout; a closed or broken stdout is ignored.
pub fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// One line on stderr; a closed or broken stderr is ignored.
pub fn complain(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}
