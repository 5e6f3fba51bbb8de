//! `herald bench --callgrind DIR`: runs each server under `valgrind --tool=callgrind` and counts
//! the instructions it executes during the measured part of a run only (setup and history fill
//! left out). Instruction counts do not depend on what else the machine is doing, so a change can
//! be judged on this shared, noisy machine where a timing cannot.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The program and arguments that start `herald serve` under callgrind, its profile written to
/// `DIR/callgrind.<pid>` (and `.<n>` for each dump).
pub fn wrapper(directory: &Path) -> (String, Vec<String>) {
    (
        "valgrind".to_owned(),
        vec![
            "--tool=callgrind".to_owned(),
            format!(
                "--callgrind-out-file={}",
                directory.join("callgrind.%p").display()
            ),
        ],
    )
}

/// Sets the counters of the running server to zero (the start of the measured part).
pub fn zero(pid: u32) -> anyhow::Result<()> {
    control(pid, "-z")
}

/// Dumps the counters of the running server and returns the instructions counted since the last
/// [`zero`].
pub fn dump_instructions(directory: &Path, pid: u32) -> anyhow::Result<u64> {
    let before = dumps(directory, pid)?;
    control(pid, "-d")?;
    let after = dumps(directory, pid)?;
    let newest = after
        .into_iter()
        .filter(|path| !before.contains(path))
        .max()
        .context("callgrind wrote no dump")?;
    let text = std::fs::read_to_string(&newest)
        .with_context(|| format!("failed to read {}", newest.display()))?;
    // The dump's header carries the event totals: `summary: <Ir>` (older) or `totals: <Ir>`.
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|count| count.parse().ok())
        })
        .with_context(|| format!("no instruction total in {}", newest.display()))
}

/// The dump files of one process so far.
fn dumps(directory: &Path, pid: u32) -> anyhow::Result<Vec<PathBuf>> {
    let prefix = format!("callgrind.{pid}.");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        let is_dump = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with(&prefix));
        if is_dump {
            found.push(path);
        }
    }
    Ok(found)
}

fn control(pid: u32, action: &str) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .context("failed to run callgrind_control (is valgrind installed?)")?;
    if !status.success() {
        bail!("callgrind_control {action} {pid} failed: {status}");
    }
    Ok(())
}
