//! The strength rule for secrets people choose, shared by the server (account passwords,
//! PROTOCOL.md §6 "Register") and the CLI (keystore passphrases), so the two can never drift:
//! at least [`MIN_CHARS`] characters and a zxcvbn score of [`MIN_SCORE`] of 4 or more. A refusal
//! says why in words a person understands ("too easy to guess: This is a top-100 common
//! password. Add another word or two…"); callers put their own noun in front.

/// The fewest characters (Unicode scalar values) accepted.
pub const MIN_CHARS: usize = 10;

/// The lowest zxcvbn score (0–4) accepted.
pub const MIN_SCORE: u8 = 3;

/// How many leading characters zxcvbn judges: its cost grows faster than linearly with length,
/// and its authors advise estimating a bounded prefix. A strong prefix makes a strong secret,
/// and judging the prefix alone can only make the verdict stricter.
pub const JUDGED_CHARS: usize = 100;

/// Checks `secret`; `hints` are words the secret should not lean on (the username, the name).
/// The error is the reason, starting lower-case ("too short: …", "too easy to guess: …").
pub fn check(secret: &str, hints: &[&str]) -> Result<(), String> {
    if secret.chars().count() < MIN_CHARS {
        return Err(format!(
            "too short: use at least {MIN_CHARS} characters, ideally a few random words"
        ));
    }
    let head: String = secret.chars().take(JUDGED_CHARS).collect();
    let estimate = zxcvbn::zxcvbn(&head, hints);
    if u8::from(estimate.score()) >= MIN_SCORE {
        return Ok(());
    }
    let mut reason = String::from("too easy to guess");
    if let Some(feedback) = estimate.feedback() {
        if let Some(w) = feedback.warning() {
            reason.push_str(": ");
            // zxcvbn's warnings end with a full stop; the sentence goes on after it.
            reason.push_str(w.to_string().trim_end_matches('.'));
        }
        if let Some(s) = feedback.suggestions().first() {
            reason.push_str(". ");
            reason.push_str(&s.to_string());
        }
    } else {
        reason.push_str(". Add another word or two.");
    }
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_hinted_secrets_are_refused_with_a_reason() {
        assert_eq!(
            check("short", &[]),
            Err("too short: use at least 10 characters, ideally a few random words".to_owned())
        );
        let common = check("password123", &[]).err().unwrap_or_default();
        assert!(common.starts_with("too easy to guess"), "{common}");
        // The same words as the username are no secret.
        let hinted = check("aliceliddell1", &["aliceliddell"])
            .err()
            .unwrap_or_default();
        assert!(hinted.starts_with("too easy to guess"), "{hinted}");
    }

    #[test]
    fn a_few_random_words_pass_and_only_the_prefix_is_judged() {
        assert_eq!(check("correct horse battery staple", &[]), Ok(()));
        // Long inputs cost no more than their first 100 characters.
        let long = format!("violet kestrel harbour 42 lantern {}", "a".repeat(100_000));
        assert_eq!(check(&long, &[]), Ok(()));
    }
}
