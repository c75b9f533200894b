//! Printing that never stops the work. `println!` panics when stdout is a pipe whose reader
//! has gone (`mlp-cli --save m.safetensors | head -1`), which would lose the model being
//! trained. Here a closed stdout only silences what is printed after it closed: the run goes
//! on while it has something to save, saves it, and exits 0, as ripgrep exits quietly. Any other failure to
//! write stdout (a full disk behind a redirection) is kept and reported when the run ends.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// Prints a line to stdout; see the module's documentation for what a failure does.
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}

/// Prints a line to stderr, ignoring a failure: there is nowhere left to report it.
macro_rules! note {
    ($($arg:tt)*) => { $crate::console::note_line(format_args!($($arg)*)) };
}

pub(crate) use {note, say};

pub fn print_line(line: fmt::Arguments) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if error.kind() != io::ErrorKind::BrokenPipe {
            STDOUT_ERROR
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(error);
        }
    }
}

pub fn note_line(line: fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Whether stdout has gone: nobody reads what is printed from now on.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// The first failure to write stdout other than a closed pipe, if there was one.
pub fn stdout_error() -> Option<io::Error> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}
