//! A client generated from the daemon's own `/api/openapi.json` (`openapi-python-client` from
//! PyPI, in the virtualenv `scripts/test` makes) builds and drives every JSON operation against
//! the real `weaved`; each real answer, and each example of the document, is validated against
//! the document's schema (`tests/daemon/py/openapi_client.py`).

use std::process::Command;

use serde_json::Value;
use weave_test_kit::*;

#[test]
fn a_generated_client_calls_every_operation_and_every_answer_matches_its_schema() {
    let python = test_python("openapi_python_client", "openapi-python-client");
    let d = Weaved::start();
    let work = tempfile::TempDir::new().unwrap();
    let out = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/daemon/py/openapi_client.py"
        ))
        .arg(&d.base)
        .arg(&d.token)
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(summary["operations"].as_u64() >= Some(24), "{summary}");
}
