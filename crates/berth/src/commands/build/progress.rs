//! `berth build --progress`: every line (`plain`), or in a terminal (`tty`) each step's line
//! kept and its output shown on one line that is rewritten, so a long build stays readable.

use std::io::Write;
use std::sync::Mutex;

/// The widest an output line is shown in `tty` mode: a wrapped line could not be rewritten.
const TTY_WIDTH: usize = 120;

pub struct Log {
    quiet: bool,
    tty: bool,
    /// The step shown last, and whether a rewritable output line is on screen.
    state: Mutex<(Option<String>, bool)>,
}

impl Log {
    pub fn new(quiet: bool, tty: bool) -> Log {
        Log {
            quiet,
            tty,
            state: Mutex::new((None, false)),
        }
    }

    /// Shows one line of the build log (`#N …` for steps and their output).
    pub fn line(&self, l: &str) {
        if self.quiet {
            return;
        }
        if !self.tty {
            eprintln!("{l}");
            return;
        }
        let mut st = self.state.lock().expect("no panics hold this lock");
        let step = l
            .strip_prefix('#')
            .and_then(|r| r.split_once(' '))
            .map(|(n, _)| n.to_string());
        let mut err = std::io::stderr().lock();
        let clear = if st.1 { "\r\x1b[2K" } else { "" };
        // The first line of a step names it and stays; later ones are its output.
        if step.is_some() && step == st.0 {
            let shown: String = l.chars().take(TTY_WIDTH).collect();
            let _ = write!(err, "{clear}{shown}");
            st.1 = true;
        } else {
            let _ = writeln!(err, "{clear}{l}");
            *st = (step, false);
        }
        let _ = err.flush();
    }

    /// Removes a rewritable line left on screen.
    pub fn finish(&self) {
        let mut st = self.state.lock().expect("no panics hold this lock");
        if std::mem::take(&mut st.1) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
