//! The known-servers file: one line per server, `host:port PIN`, like ssh's known_hosts. PIN is
//! the server's key pin, `sha256/<base64>` (SHA-256 of its SubjectPublicKeyInfo, see
//! `cert_pin`); files written by older versions hold a certificate fingerprint `AA:BB:…`,
//! which is still honoured and replaced by the key pin on the next connection it matches. The
//! first connection to a server pins its key; a later connection that sees another key is
//! refused until the person re-trusts it with `sealroom servers trust HOST --fingerprint PIN`.

use std::path::{Path, PathBuf};

use cert_pin::Pin;

use crate::exit::{Exit, fail};

/// The pins of a home folder.
#[derive(Debug)]
pub(crate) struct KnownServers {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

impl KnownServers {
    /// Reads `path` (a missing file is an empty list).
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
            })
            .collect();
        Ok(Self {
            path: path.to_owned(),
            entries,
        })
    }

    /// The pin kept for `server`; a line that holds no pin is an error naming the file.
    pub(crate) fn get(&self, server: &str) -> anyhow::Result<Option<Pin>> {
        let Some((_, text)) = self.entries.iter().find(|(s, _)| s == server) else {
            return Ok(None);
        };
        match text.parse() {
            Ok(pin) => Ok(Some(pin)),
            Err(e) => fail(
                Exit::CertificateChanged,
                format!(
                    "the line for {server} in {} is damaged ({e}); remove it and connect again, \
                     comparing the pin shown with the one the server printed",
                    self.path.display()
                ),
            ),
        }
    }

    /// Pins `pin` for `server` (replacing its line) and writes the file.
    pub(crate) fn pin(&mut self, server: &str, pin: &Pin) -> anyhow::Result<()> {
        self.entries.retain(|(s, _)| s != server);
        self.entries.push((server.to_owned(), pin.to_string()));
        let mut text = String::from(
            "# sealroom known servers: host:port sha256/<base64 SHA-256 of the server key (SPKI)>\n",
        );
        for (s, f) in &self.entries {
            text.push_str(&format!("{s} {f}\n"));
        }
        crate::keystore::write_atomic(&self.path, text.as_bytes())?;
        Ok(())
    }

    /// Every `(server, pin text)` line, in file order.
    pub(crate) fn all(&self) -> &[(String, String)] {
        &self.entries
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn pins_survive_a_reload_and_replace_per_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        let (a, b, c) = (Pin::Key([1; 32]), Pin::Key([2; 32]), Pin::Key([3; 32]));
        let mut k = KnownServers::load(&path).unwrap();
        assert_eq!(k.get("a:1").unwrap(), None);
        k.pin("a:1", &a).unwrap();
        k.pin("b:2", &b).unwrap();
        k.pin("a:1", &c).unwrap();
        let k = KnownServers::load(&path).unwrap();
        assert_eq!(k.get("a:1").unwrap(), Some(c));
        assert_eq!(k.get("b:2").unwrap(), Some(b));
    }

    #[test]
    fn older_certificate_fingerprints_are_read_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        let fp = Pin::Certificate([0xAB; 32]).to_string();
        std::fs::write(&path, format!("# old\nold:1 {fp}\nbad:2 AA:BB\n")).unwrap();
        let k = KnownServers::load(&path).unwrap();
        assert_eq!(k.get("old:1").unwrap(), Some(Pin::Certificate([0xAB; 32])));
        let e = k.get("bad:2").unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Exit::CertificateChanged as i32);
    }
}
