//! Formatting shared by the printed reports, and the facts every report opens with (machine,
//! commit, build), so a number is never read without knowing where it was measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::machine;

/// Milliseconds with two decimals: `3.21 ms`.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// The workspace root (the bench crate's parent folder): where git is asked about the commit.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The first line of what a command prints (stdout, else stderr), or "unknown".
pub fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()
        .and_then(|out| {
            let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
            String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_owned())
        })
        .filter(|line| !line.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether `program` is an executable file somewhere on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// The `machine:`, `commit:` and `build:` lines of a report's header.
pub fn print_machine() {
    let changes = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(workspace_root())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).lines().count())
        .unwrap_or(0);
    let dirty = if changes > 0 {
        format!(" + {changes} uncommitted paths in the work tree (git status)")
    } else {
        String::new()
    };
    println!("machine:  {} CPUs (nproc), {} ({})", machine::cpus(), first_line("uname", &["-m"]), machine::cpu_model());
    println!("commit:   {}{dirty}", first_line("git", &["rev-parse", "--short", "HEAD"]));
    println!(
        "build:    {}",
        if cfg!(debug_assertions) { "DEBUG (numbers are meaningless: use --release)" } else { "release" }
    );
}

/// The `quiet:` line, or a warning when something else already keeps the machine busy.
pub fn print_load_average() {
    match machine::load_average() {
        Some(load) if load > 0.5 => println!(
            "WARNING:  1-minute load average {load:.2} before the start: something else is running on this machine"
        ),
        Some(load) => println!("quiet:    1-minute load average {load:.2} before the start"),
        None => {}
    }
}
