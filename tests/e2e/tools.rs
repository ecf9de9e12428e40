//! Outside tools the end-to-end tests run, installed from the versions pinned in `tools/` on first
//! use (into the target directory, so a clean checkout needs nothing installed by hand).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/tools`, beside the test binaries (they live in `target/<profile>/deps/`).
fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| repo_root().join("target"));
    target.join("tools")
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|err| panic!("{command:?} cannot start: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The Python of a virtual environment holding `tools/<requirements>`, made on first use. Built in a
/// fresh folder and renamed into place, so two test runs starting together cannot see half of one.
fn python_tool(name: &str, requirements: &str) -> PathBuf {
    let venv = tools_dir().join(name);
    let python = venv.join("bin/python");
    if python.exists() {
        return python;
    }
    std::fs::create_dir_all(tools_dir()).expect("target/tools");
    let building = tools_dir().join(format!("{name}.{}", std::process::id()));
    run(Command::new("python3").args(["-m", "venv"]).arg(&building));
    run(Command::new(building.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(repo_root().join("tools").join(requirements)));
    // Only `bin/python -m …` is used, which works from the renamed folder (pip's own scripts name
    // the folder they were made in). Another run that finished first wins; this copy goes.
    if std::fs::rename(&building, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    python
}

/// Validates an OpenAPI document with openapi-spec-validator (the OpenAPI schema plus its checks:
/// unique operation ids, unique tags, declared path parameters). `Err` carries its report.
pub fn validate_openapi(document: &serde_json::Value) -> Result<(), String> {
    let python = python_tool("openapi-validator", "openapi-validator.txt");
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), serde_json::to_vec(document).expect("JSON")).expect("write the document");
    let output = Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("openapi-spec-validator runs");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() && report.contains(": OK") {
        Ok(())
    } else {
        Err(report)
    }
}
