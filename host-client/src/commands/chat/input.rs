//! The chat's two ends at the terminal: an input thread sending typed lines through a channel
//! (rustyline on a terminal, plain lines otherwise), and the output that prints above the line
//! being typed.

use crate::terminal;
use crate::terminal::outln;

/// Where chat output goes: above the prompt on a terminal, plain stdout otherwise.
pub(super) enum Out {
    Editor(Box<dyn rustyline::ExternalPrinter + Send>),
    Plain,
}

impl Out {
    pub(super) fn line(&mut self, text: &str) {
        match self {
            Out::Editor(p) => {
                if p.print(format!("{text}\n")).is_err() {
                    outln!("{text}");
                }
            }
            Out::Plain => outln!("{text}"),
        }
    }
}

/// Starts the input thread; returns the line receiver and the output.
pub(super) fn start_input(
    prompt: String,
) -> anyhow::Result<(smol::channel::Receiver<Option<String>>, Out)> {
    let (tx, rx) = smol::channel::unbounded();
    if terminal::stdin_is_tty() {
        let mut editor = rustyline::DefaultEditor::new()?;
        let printer = editor.create_external_printer()?;
        std::thread::spawn(move || {
            loop {
                match editor.readline(&prompt) {
                    Ok(line) => {
                        let _ = editor.add_history_entry(line.as_str());
                        if tx.send_blocking(Some(line)).is_err() {
                            return;
                        }
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => {
                        let _ = tx.send_blocking(Some("/quit".into()));
                        return;
                    }
                    Err(_) => {
                        let _ = tx.send_blocking(None);
                        return;
                    }
                }
            }
        });
        Ok((rx, Out::Editor(Box::new(printer))))
    } else {
        std::thread::spawn(move || {
            loop {
                match terminal::read_line() {
                    Ok(Some(line)) => {
                        if tx.send_blocking(Some(line.to_string())).is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = tx.send_blocking(None);
                        return;
                    }
                }
            }
        });
        Ok((rx, Out::Plain))
    }
}
