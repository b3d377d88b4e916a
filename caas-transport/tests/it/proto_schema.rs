//! `proto/caas.v1.proto` and the hand-written prost messages describe the same
//! wire format (there is no protoc to generate one from the other).
//!
//! Runs `tests/schema/check_proto.py` with `CAAS_TEST_PYTHON`, or `python3` from
//! the path. Without a Python it says so and passes, unless
//! `CAAS_REQUIRE_INTEGRATION=1`, which makes that a failure.

use std::process::Command;

#[test]
fn the_proto_file_matches_the_prost_messages() {
    let python = std::env::var_os("CAAS_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = match Command::new(&python)
        .arg(format!("{dir}/tests/schema/check_proto.py"))
        .arg(format!("{dir}/proto/caas.v1.proto"))
        .arg(format!("{dir}/src/ws/proto.rs"))
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() != Ok("1") => {
            eprintln!("proto schema check skipped: cannot run {python:?}: {e}");
            return;
        }
        Err(e) => panic!("CAAS_REQUIRE_INTEGRATION=1 but {python:?} cannot run: {e}"),
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
