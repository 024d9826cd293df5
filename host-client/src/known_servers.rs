//! The known-servers file: one line per server, `host:port SHA256-FINGERPRINT`, like ssh's
//! known_hosts. The first connection to a server pins its certificate; a later connection
//! that sees another certificate is refused until the line is removed by hand.

use std::path::{Path, PathBuf};

/// The pinned fingerprints of a home folder.
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

    /// The pinned fingerprint of `server`.
    pub(crate) fn get(&self, server: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(s, _)| s == server)
            .map(|(_, f)| f.as_str())
    }

    /// Pins `fingerprint` for `server` and writes the file.
    pub(crate) fn pin(&mut self, server: &str, fingerprint: &str) -> anyhow::Result<()> {
        self.entries.retain(|(s, _)| s != server);
        self.entries
            .push((server.to_owned(), fingerprint.to_owned()));
        let mut text =
            String::from("# sealroom known servers: host:port SHA-256 certificate fingerprint\n");
        for (s, f) in &self.entries {
            text.push_str(&format!("{s} {f}\n"));
        }
        crate::keystore::write_atomic(&self.path, text.as_bytes())?;
        Ok(())
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
        let mut k = KnownServers::load(&path).unwrap();
        assert_eq!(k.get("a:1"), None);
        k.pin("a:1", "AA:BB").unwrap();
        k.pin("b:2", "CC:DD").unwrap();
        k.pin("a:1", "EE:FF").unwrap();
        let k = KnownServers::load(&path).unwrap();
        assert_eq!(k.get("a:1"), Some("EE:FF"));
        assert_eq!(k.get("b:2"), Some("CC:DD"));
    }
}
