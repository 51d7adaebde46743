use std::path::PathBuf;
use std::process::Command;

/// The tests' Python (`WEAVE_TEST_PYTHON`, else the virtualenv `scripts/test` makes in
/// `target/py`), which must have `module` (what it is: `what`).
pub fn test_python(module: &str, what: &str) -> PathBuf {
    let python = std::env::var_os("WEAVE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/py/bin/python"
            ))
        });
    let has = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{} has no `{module}` package: run scripts/test (it installs {what} into target/py)",
        python.display()
    );
    python
}
