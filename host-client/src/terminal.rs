//! Everything that talks to the person: colours (off under `NO_COLOR` or when not a terminal),
//! progress on slow steps (stderr, terminals only), prompts (hidden for secrets), the
//! environment and stdin fallbacks that make every command scriptable, and QR codes.
//!
//! Input order when stdin is not a terminal: each value not given by a flag or an
//! environment variable is read as the next line of stdin, in the order the command asks.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use crate::exit::{Exit, fail};

/// Environment variable holding the account password.
pub(crate) const ENV_PASSWORD: &str = "SEALROOM_PASSWORD";
/// Environment variable holding the keystore passphrase.
pub(crate) const ENV_PASSPHRASE: &str = "SEALROOM_PASSPHRASE";

/// Whether stdin is a terminal (prompts) or not (lines read in order).
pub(crate) fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether stdout gets colour: a terminal and no `NO_COLOR`.
pub(crate) fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stderr gets colour.
pub(crate) fn color_err() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A style for [`paint`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Style {
    /// Names and headings.
    Bold,
    /// Success, delivered.
    Green,
    /// Warnings.
    Yellow,
    /// Failures and alarms.
    Red,
    /// Secondary text.
    Dim,
    /// Other people's names.
    Cyan,
}

impl Style {
    /// The ANSI style it stands for.
    const fn ansi(self) -> anstyle::Style {
        use anstyle::AnsiColor;
        match self {
            Style::Bold => anstyle::Style::new().bold(),
            Style::Green => AnsiColor::Green.on_default(),
            Style::Yellow => AnsiColor::Yellow.on_default().bold(),
            Style::Red => AnsiColor::Red.on_default().bold(),
            Style::Dim => anstyle::Style::new().dimmed(),
            Style::Cyan => AnsiColor::Cyan.on_default(),
        }
    }
}

/// `text` in `style` if `on`.
pub(crate) fn paint_if(on: bool, style: Style, text: &str) -> String {
    if !on {
        return text.to_owned();
    }
    let ansi = style.ansi();
    // `{:#}` is anstyle's reset.
    format!("{ansi}{text}{ansi:#}")
}

/// `text` in `style` for stdout.
pub(crate) fn paint(style: Style, text: &str) -> String {
    paint_if(color(), style, text)
}

/// `println!` for everything the commands print: a line on stdout through [`write_line`], so
/// a closed stdout ends the program quietly instead of panicking.
macro_rules! outln {
    () => {
        $crate::terminal::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::terminal::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stdout (use [`outln!`]).
///
/// When the reader has gone (`sealroom inbox --json | head -1`: a broken pipe) the program ends
/// at once with exit code 0, printing nothing: whoever reads stdout chose to stop, and there is
/// nobody left to tell. Stopping here is safe because every state change (keystore, known
/// servers) is written atomically and saved before it is shown. Any other write error ends the
/// program with exit code 1 and a line on stderr. `println!` would panic in both cases.
pub(crate) fn write_line(args: core::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "sealroom: cannot write to stdout: {e}");
            std::process::exit(Exit::Failure as i32);
        }
    }
}

/// A failure as one JSON line on stdout (`--json`): `{"error": TEXT, "exit_code": CODE}`.
pub(crate) fn json_error(text: &str, code: i32) {
    let line = serde_json::json!({ "error": text, "exit_code": code });
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere else to say it).
fn write_err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints a notice to stderr.
pub(crate) fn note(text: &str) {
    write_err_line(text);
}

/// Prints a loud warning to stderr.
pub(crate) fn warn(text: &str) {
    // Errors can carry the server's words: shown, never interpreted.
    let text = crate::inert::block(text, "  ");
    write_err_line(&paint_if(color_err(), Style::Red, &text));
}

/// A spinner on stderr while a slow step runs; nothing when stderr is not a terminal.
pub(crate) struct Progress {
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `what…` with a spinner until dropped.
    pub(crate) fn start(what: &str) -> Self {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, thread: None };
        }
        let flag = stop.clone();
        let what = what.to_owned();
        let thread = std::thread::spawn(move || {
            const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
            let mut i = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let f = FRAMES.get(i % FRAMES.len()).copied().unwrap_or("|");
                eprint!("\r{f} {what}…");
                let _ = std::io::stderr().flush();
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static STDIN_LOCK: Mutex<()> = Mutex::new(());

/// The next line of stdin without its line ending, or `None` at end of input.
pub(crate) fn read_line() -> anyhow::Result<Option<Zeroizing<String>>> {
    let _guard = STDIN_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut line = Zeroizing::new(String::new());
    let n = std::io::stdin().lock().read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Everything left on stdin.
pub(crate) fn read_rest() -> anyhow::Result<String> {
    let _guard = STDIN_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s)?;
    Ok(s)
}

/// Asks for a visible value: a prompt on a terminal, else the next stdin line.
pub(crate) fn ask(prompt: &str) -> anyhow::Result<String> {
    if stdin_is_tty() {
        eprint!("{prompt}: ");
        let _ = std::io::stderr().flush();
    }
    match read_line()? {
        Some(l) => Ok(l.trim().to_owned()),
        None => fail(Exit::Failure, format!("{prompt}: no input (stdin ended)")),
    }
}

/// A secret: from `env` if set, else a hidden prompt on a terminal, else the next stdin line.
pub(crate) fn secret(env: &str, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    secret_or(env, prompt, Exit::Failure)
}

/// [`secret`], failing with `missing` when there is none (stdin closed).
fn secret_or(env: &str, prompt: &str, missing: Exit) -> anyhow::Result<Zeroizing<String>> {
    if let Ok(v) = std::env::var(env) {
        return Ok(Zeroizing::new(v));
    }
    if stdin_is_tty() {
        let v = rpassword::prompt_password(format!("{prompt}: "))?;
        return Ok(Zeroizing::new(v));
    }
    match read_line()? {
        Some(l) => Ok(l),
        None => fail(
            missing,
            format!("{prompt}: no input; set {env} or pass it on stdin"),
        ),
    }
}

/// A new secret, asked twice on a terminal.
pub(crate) fn new_secret(env: &str, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    if std::env::var(env).is_ok() || !stdin_is_tty() {
        return secret(env, prompt);
    }
    loop {
        let a = secret(env, prompt)?;
        let b = secret(env, &format!("{prompt} (again)"))?;
        if *a == *b {
            return Ok(a);
        }
        warn("they differ; try again");
    }
}

/// The keystore passphrase; none at all is a keystore failure (exit code 3).
pub(crate) fn passphrase() -> anyhow::Result<Zeroizing<String>> {
    secret_or(ENV_PASSPHRASE, "Keystore passphrase", Exit::Keystore)
}

/// A passphrase for a new keystore, held to the same strength rule as account passwords
/// ([`crate::keystore::check_passphrase`]): asked again on a terminal, refused (exit code 2)
/// otherwise.
pub(crate) fn new_passphrase(prompt: &str, hints: &[&str]) -> anyhow::Result<Zeroizing<String>> {
    let interactive = std::env::var(ENV_PASSPHRASE).is_err() && stdin_is_tty();
    // Bounded: a person who cannot pick one after a few tries is told why and stops.
    for _ in 0..5 {
        let p = new_secret(ENV_PASSPHRASE, prompt)?;
        match crate::keystore::check_passphrase(&p, hints) {
            Ok(()) => return Ok(p),
            Err(reason) if interactive => warn(&reason),
            Err(reason) => return fail(Exit::Usage, format!("keystore passphrase: {reason}")),
        }
    }
    fail(
        Exit::Usage,
        "no strong enough keystore passphrase was given",
    )
}

/// `data` as a QR code in text (two modules per character cell, dark on light).
pub(crate) fn qr(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw a QR code: {e})"),
    }
}
