//! Exit codes, and the error type that carries one up to `main`.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | bad input: the command line (clap), a malformed name, a weak password or passphrase |
//! | 3 | keystore: missing, wrong or no passphrase (stdin closed), or damaged |
//! | 4 | not logged in: the session expired or was revoked, or login failed |
//! | 5 | network or TLS failure (server unreachable, connection lost) |
//! | 6 | the server's certificate does not match the pinned one |
//! | 7 | a contact's identity key changed: sending is blocked until `verify --confirm`; or the number given to `verify --confirm` is no longer the current one |
//! | 8 | the server refused the request (no such user or room, not allowed, taken, …) |

use core::fmt;

/// Why the program stops, as a documented exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Any other failure.
    Failure = 1,
    /// Bad input: a malformed name, a weak password or passphrase (said why).
    Usage = 2,
    /// Keystore missing, wrong passphrase, or damaged.
    Keystore = 3,
    /// Not logged in, or login failed.
    Auth = 4,
    /// Network or TLS failure.
    Network = 5,
    /// The server certificate changed.
    CertificateChanged = 6,
    /// A contact's identity key changed; sending is blocked (or a number confirmed is stale).
    IdentityChanged = 7,
    /// The server refused the request.
    Refused = 8,
}

/// An error with the exit code it should end the program with.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The exit code.
    pub(crate) exit: Exit,
    /// What happened and what to do, for a person.
    pub(crate) message: String,
}

impl Failure {
    /// A failure with this code and message.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for Failure {}

/// `Err(Failure)` as an `anyhow` result.
pub(crate) fn fail<T>(exit: Exit, message: impl Into<String>) -> anyhow::Result<T> {
    Err(Failure::new(exit, message).into())
}

/// The exit code for an error chain: the first [`Failure`] or keystore error in it, else 1.
pub(crate) fn code_of(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit as i32;
        }
        if cause.downcast_ref::<crate::link::Changed>().is_some() {
            return Exit::CertificateChanged as i32;
        }
        if cause
            .downcast_ref::<crate::keystore::KeystoreError>()
            .is_some()
        {
            return Exit::Keystore as i32;
        }
    }
    Exit::Failure as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_the_first_failure_in_the_chain() {
        let e: anyhow::Error = Failure::new(Exit::CertificateChanged, "x").into();
        assert_eq!(code_of(&e.context("while connecting")), 6);
        let e: anyhow::Error = crate::keystore::KeystoreError::WrongPassphrase.into();
        assert_eq!(code_of(&e), 3);
        assert_eq!(code_of(&anyhow::anyhow!("other")), 1);
    }
}
