//! What every family's suite takes (`--list`, `--only`, `--skip`,
//! `--expect-fail`, the reports) and does with it: listing, selection,
//! progress, the terminal summary and the report files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use specwire_conformance::report::Report;
use specwire_conformance::runner::{ExpectedFailures, Observer, Selection};
use specwire_conformance::verdict::CaseResult;
use specwire_protocol::conformance::{case, cases_of, CaseSpec};

/// Options every family's suite takes.
#[derive(clap::Args)]
pub(super) struct Common {
    /// List the cases (ID, level, title) and exit.
    #[arg(long)]
    pub(super) list: bool,
    /// Run only cases whose ID starts with this prefix (repeatable;
    /// whole segments: `task.cancel` matches `task.cancel.unknown`).
    #[arg(long, value_name = "PREFIX")]
    only: Vec<String>,
    /// Do not run cases whose ID starts with this prefix (repeatable).
    #[arg(long, value_name = "PREFIX")]
    skip: Vec<String>,
    /// Cases known to fail on this target: one ID per line, `#` comments.
    /// They do not fail the run; any that pass are reported as stale.
    #[arg(long, value_name = "FILE")]
    expect_fail: Option<PathBuf>,
    /// Write a report: `json:PATH` (its schema: schema/reports/conformance-report.schema.json),
    /// `junit:PATH` or `html:PATH` (repeatable).
    #[arg(long, value_name = "FORMAT:PATH")]
    report: Vec<String>,
    /// Write a JUnit XML report (same as --report junit:PATH).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,
    /// Write a self-contained HTML report, each failure with its transcript
    /// (same as --report html:PATH).
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
    /// Do not colour the terminal summary.
    #[arg(long)]
    no_color: bool,
}

pub(super) fn list(family: &str) -> ExitCode {
    let cases: Vec<&CaseSpec> = cases_of(family).collect();
    if cases.is_empty() {
        println!("no conformance cases for {family} yet");
    }
    for spec in cases {
        let needs = if spec.needs.is_empty() {
            String::new()
        } else {
            format!("  (needs: {})", spec.needs.join(", "))
        };
        println!(
            "{:<6} {:<45} {}{needs}",
            spec.level.as_str(),
            spec.id,
            spec.title
        );
    }
    ExitCode::SUCCESS
}

pub(super) fn selection(common: &Common) -> Selection {
    Selection {
        only: common.only.clone(),
        skip: common.skip.clone(),
    }
}

pub(super) fn expected(common: &Common, family: &str) -> Result<ExpectedFailures, String> {
    match &common.expect_fail {
        None => Ok(ExpectedFailures::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("--expect-fail {}: {error}", path.display()))?;
            ExpectedFailures::parse(&text, |id| {
                case(id).is_some_and(|spec| spec.family == family)
            })
            .map_err(|error| format!("--expect-fail {}: {error}", path.display()))
        }
    }
}

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReportFormat {
    Json,
    Junit,
    Html,
}

/// Report destinations, checked before the run so a typo does not cost one.
pub(super) fn report_paths(common: &Common) -> Result<Vec<(ReportFormat, PathBuf)>, String> {
    let mut paths: Vec<(ReportFormat, PathBuf)> = common
        .report
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some(("json", path)) if !path.is_empty() => {
                Ok((ReportFormat::Json, PathBuf::from(path)))
            }
            Some(("junit", path)) if !path.is_empty() => {
                Ok((ReportFormat::Junit, PathBuf::from(path)))
            }
            Some(("html", path)) if !path.is_empty() => {
                Ok((ReportFormat::Html, PathBuf::from(path)))
            }
            _ => Err(format!(
                "--report {spec}: expected json:PATH, junit:PATH or html:PATH"
            )),
        })
        .collect::<Result<_, _>>()?;
    paths.extend(
        common
            .junit
            .iter()
            .map(|path| (ReportFormat::Junit, path.clone())),
    );
    paths.extend(
        common
            .html
            .iter()
            .map(|path| (ReportFormat::Html, path.clone())),
    );
    Ok(paths)
}

fn write_reports(report: &Report, paths: &[(ReportFormat, PathBuf)]) -> Result<(), String> {
    for (format, path) in paths {
        let text = match format {
            ReportFormat::Json => report.to_json(),
            ReportFormat::Junit => report.to_junit(),
            ReportFormat::Html => report.to_html(),
        }
        .map_err(|error| format!("{}: {error}", path.display()))?;
        write_file(path, &text)?;
        eprintln!("specwire: wrote {}", path.display());
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("{}: {error}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Progress on stderr: a bar on a terminal, a line per case otherwise.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(super) fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar }
    }
}

impl Observer for Progress {
    fn started(&mut self, spec: &'static CaseSpec, index: usize, total: usize) {
        match &self.bar {
            Some(bar) => bar.set_message(spec.id),
            None => eprintln!("[{}/{total}] {}", index + 1, spec.id),
        }
    }

    fn finished(&mut self, result: &CaseResult) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        } else {
            eprintln!(
                "      {} ({:.0} ms)",
                result.verdict.name(),
                result.duration.as_secs_f64() * 1000.0
            );
        }
    }
}

pub(super) fn finish(
    report: &Report,
    common: &Common,
    paths: &[(ReportFormat, PathBuf)],
) -> Result<ExitCode, String> {
    let colour = !common.no_color
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    print!("{}", report.to_text(colour));
    write_reports(report, paths)?;
    Ok(ExitCode::from(report.exit_code()))
}

/// A duration in whole seconds, rounded up, for announcements.
pub(super) fn whole_seconds(duration: std::time::Duration) -> humantime::FormattedDuration {
    humantime::format_duration(std::time::Duration::from_secs(
        duration.as_secs_f64().ceil() as u64,
    ))
}

/// Says which options were not given (`(flag, missing)`) and that the
/// cases needing them are skipped.
pub(super) fn announce_skips(options: &[(&str, bool)]) {
    let skipped: Vec<&str> = options
        .iter()
        .filter_map(|&(flag, missing)| missing.then_some(flag))
        .collect();
    if !skipped.is_empty() {
        eprintln!(
            "specwire: without {} the cases that need them are skipped",
            skipped.join(", ")
        );
    }
}
