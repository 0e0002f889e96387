//! `rollbackd evaluate`: replay a trace and print every change of decision.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::Format;
use rollbackd_core::policy::load_file;
use rollbackd_core::replay::{format_json, format_text, read_trace, replay};

/// Replays `trace` through `policy`.
pub fn run(policy: &Path, trace: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let policy = match load_file(policy) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let lines = match read_trace(trace) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = std::io::stdout().lock();
    for change in replay(&policy, &lines) {
        let text = match format {
            Format::Text => format_text(&policy, &change),
            Format::Json => format_json(&policy, &change),
        };
        // a reader that went away (`| head`) ends the output, not the process with a panic
        if writeln!(out, "{text}").is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
