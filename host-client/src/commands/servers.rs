//! `sealroom servers list` and `sealroom servers trust HOST --fingerprint PIN`: the pins kept in
//! known_servers, and re-trusting a server whose key changed legitimately.
//!
//! Re-trusting never takes whatever answers: the person must give the new pin (read to them by
//! the server's operator, over a channel they trust); the server must present exactly that key
//! or certificate, and only then is its key pin written. The old and new fingerprints are both
//! shown, so a person sees what they replace.

use cert_pin::Pin;

use crate::cli::Global;
use crate::client::Home;
use crate::exit::{Exit, Failure, fail};
use crate::known_servers::KnownServers;
use crate::link::{Link, Trust};
use crate::terminal::outln;
use crate::terminal::{Progress, Style, paint};

/// `servers list`.
pub(super) fn list(g: &Global) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let known = KnownServers::load(&home.known_servers())?;
    let pins = known.all();
    if g.json {
        let list: Vec<_> = pins
            .iter()
            .map(|(s, p)| serde_json::json!({ "server": s, "pin": p }))
            .collect();
        outln!(
            "{}",
            serde_json::json!({ "servers": list, "file": known.path() })
        );
        return Ok(());
    }
    if pins.is_empty() {
        outln!("No server pinned yet ({}).", known.path().display());
    }
    for (s, p) in pins {
        outln!("{s} {p}");
    }
    Ok(())
}

/// `servers trust SERVER --fingerprint PIN`.
pub(super) async fn trust(g: &Global, server: &str) -> anyhow::Result<()> {
    let home = Home::resolve(g.home.as_deref())?;
    let Some(given) = &g.fingerprint else {
        return fail(
            Exit::Usage,
            format!(
                "give the server's new pin: `sealroom servers trust {server} --fingerprint \
                 sha256/…`, as its operator reads it to you (the \"key (SPKI) SHA-256 pin\" line \
                 sealroom-server prints)"
            ),
        );
    };
    let given: Pin = given
        .parse()
        .map_err(|e| Failure::new(Exit::Usage, format!("--fingerprint {given}: {e}")))?;
    let mut known = KnownServers::load(&home.known_servers())?;
    // A damaged line is replaced like a stale one: it is shown as such.
    let old = match known.get(server) {
        Ok(Some(p)) => p.to_string(),
        Ok(None) => "none (never connected)".to_owned(),
        Err(e) => format!("unreadable ({e:#})"),
    };
    let link = {
        let _p = Progress::start(&format!("connecting to {server}"));
        Link::connect(server, &Trust::Pin(Some(given))).await
    };
    let link = match link {
        Ok(l) => l,
        Err(e) => match e.downcast::<crate::link::Changed>() {
            Ok(c) => {
                return fail(
                    Exit::CertificateChanged,
                    format!(
                        "{server} presents the key {}\n(certificate SHA-256 {}),\nnot the \
                         fingerprint you gave ({given}). Nothing was changed in {}.",
                        c.got.key,
                        c.got.certificate,
                        known.path().display()
                    ),
                );
            }
            Err(e) => return Err(e),
        },
    };
    let presented = link.presented;
    link.close().await;
    known.pin(server, &presented.key)?;
    if g.json {
        outln!(
            "{}",
            serde_json::json!({
                "server": server,
                "old_pin": old,
                "new_pin": presented.key.to_string(),
                "certificate": presented.certificate.to_string(),
                "file": known.path(),
            })
        );
    } else {
        outln!("{server}");
        outln!("  old pin: {old}");
        outln!(
            "  new pin: {}",
            paint(Style::Bold, &presented.key.to_string())
        );
        outln!("  (certificate SHA-256 {})", presented.certificate);
        outln!(
            "{} It matches the fingerprint you gave; trusted from now on ({}).",
            paint(Style::Green, "✓"),
            known.path().display()
        );
    }
    Ok(())
}
