//! Every byte Berth writes to the terminal goes through here: results on stdout, progress bars
//! and warnings on stderr-or-tty, errors as one line without backtraces.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

use crate::template::Template;

/// Prints `Error: cause: cause…` on one line (`--debug` adds the error's debug form).
pub fn error(err: &anyhow::Error, debug: bool) {
    let mut msg = String::new();
    for (i, cause) in err.chain().enumerate() {
        let s = cause.to_string();
        // Library errors often already embed their source; skip a cause the line already says.
        if i > 0 && msg.contains(&s) {
            continue;
        }
        if i > 0 {
            msg.push_str(": ");
        }
        msg.push_str(&s);
    }
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "Error: {msg}");
    if debug {
        let _ = writeln!(e, "{err:?}");
    }
}

/// Output for one command: quiet or not, with progress bars when stdout is a terminal.
pub struct Printer {
    quiet: bool,
    tty: bool,
    multi: MultiProgress,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        let tty = std::io::stdout().is_terminal();
        let target = if tty && !quiet {
            ProgressDrawTarget::stdout_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        Printer {
            quiet,
            tty,
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// A result line on stdout, printed even when quiet.
    pub fn out(&self, s: impl Display) {
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stdout().lock(), "{s}");
        });
    }

    /// Raw text on stdout.
    pub fn raw(&self, s: &str) {
        let _ = std::io::stdout().lock().write_all(s.as_bytes());
    }

    /// A progress line, dropped when quiet.
    pub fn status(&self, s: impl Display) {
        if !self.quiet {
            self.out(s);
        }
    }

    /// A warning on stderr, even when quiet.
    pub fn warn(&self, s: impl Display) {
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "WARNING: {s}");
        });
    }

    /// A progress bar for one item (a layer); without a terminal it prints its final state.
    pub fn bar(&self, id: &str, total: Option<u64>) -> Bar {
        let pb = if self.tty && !self.quiet {
            let pb = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
            let style = ProgressStyle::with_template(
                "{prefix}: {msg:<12} [{bar:30}] {decimal_bytes:>9}/{decimal_total_bytes:<9} {decimal_bytes_per_sec:>10}",
            )
            .expect("static template")
            .progress_chars("=> ");
            pb.set_style(style);
            pb.set_prefix(id.to_string());
            pb.enable_steady_tick(Duration::from_millis(200));
            Some(pb)
        } else {
            None
        };
        Bar {
            pb,
            id: id.to_string(),
            echo: !self.quiet && !self.tty,
        }
    }

    /// Prints rows as a table (`default` template), JSON lines, or a user template.
    pub fn rows(&self, format: Option<&str>, default: &str, rows: &[Value]) -> Result<()> {
        self.rows_headed(format, default, rows, &[])
    }

    /// Like [`Printer::rows`], naming some column headers for this command.
    pub fn rows_headed(
        &self,
        format: Option<&str>,
        default: &str,
        rows: &[Value],
        headers: &[(&str, &str)],
    ) -> Result<()> {
        match format {
            Some("json") => {
                for r in rows {
                    self.out(serde_json::to_string(r)?);
                }
                Ok(())
            }
            Some("table") | None => self.raw_template(default, rows, headers),
            Some(t) => self.raw_template(t, rows, headers),
        }
    }

    fn raw_template(&self, t: &str, rows: &[Value], headers: &[(&str, &str)]) -> Result<()> {
        let out = Template::parse(t)?.with_headers(headers).render_all(rows)?;
        self.raw(&out);
        Ok(())
    }

    /// Pretty JSON, as `inspect` prints it: indented by four spaces, as Docker's client does.
    pub fn json(&self, v: &impl Serialize) -> Result<()> {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        v.serialize(&mut serde_json::Serializer::with_formatter(&mut buf, fmt))?;
        self.out(String::from_utf8(buf)?);
        Ok(())
    }
}

/// One progress bar; hidden bars cost nothing.
#[derive(Clone)]
pub struct Bar {
    pb: Option<ProgressBar>,
    id: String,
    echo: bool,
}

impl Bar {
    pub fn message(&self, msg: &'static str) {
        if let Some(pb) = &self.pb {
            pb.set_message(msg);
        }
    }
    pub fn set_position(&self, pos: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(pos);
        }
    }
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc(n);
        }
    }
    /// Ends the bar with a final word (`Pull complete`, `Already exists`).
    pub fn finish(&self, msg: &'static str) {
        match &self.pb {
            Some(pb) => {
                pb.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("static"));
                pb.finish_with_message(msg);
            }
            None if self.echo => {
                let _ = writeln!(std::io::stdout().lock(), "{}: {msg}", self.id);
            }
            None => {}
        }
    }
}

/// Wraps a reader and advances a bar as bytes pass.
pub struct Counting<R> {
    pub inner: R,
    pub bar: Bar,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
