//! Input checks, recovery codes, address keys and the login limits, on the in-memory ledger.

#[test]
fn addresses_are_limited_by_ipv4_address_or_ipv6_slash_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(address_key(a), address_key(b));
    assert_ne!(address_key(a), address_key(other));
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(address_key(v4), v4);
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(address_key(mapped), v4);
}

use super::*;

#[test]
fn usernames() {
    assert_eq!(normalize_username("Alice_01").unwrap(), "alice_01");
    for bad in ["ab", "a b c", "álice", "x".repeat(33).as_str(), "bob!", ""] {
        assert!(normalize_username(bad).is_err(), "{bad}");
    }
}

#[test]
fn emails() {
    for ok in ["a@b.co", "first.last+tag@example.org"] {
        assert!(validate_email(ok).is_ok(), "{ok}");
    }
    for bad in [
        "", "a", "a@b", "@b.co", "a@.co", "a@b..co", "a b@c.de", "a@b.c@",
    ] {
        assert!(validate_email(bad).is_err(), "{bad}");
    }
}

#[test]
fn waits_are_said_in_seconds() {
    assert_eq!(seconds(1), "1 second");
    assert_eq!(seconds(2), "2 seconds");
}

#[test]
fn weak_passwords_say_why() {
    let e = check_password_strength("password123", &[]).unwrap_err();
    let InputError::WeakPassword(text) = e else {
        panic!()
    };
    assert!(text.starts_with("password is too easy to guess"), "{text}");
    // zxcvbn's warning ends with a full stop of its own: never "password.. Add".
    for weak in ["password", "password123", "qwertyuiop", "1234567890"] {
        let Err(InputError::WeakPassword(text)) = check_password_strength(weak, &[]) else {
            panic!("{weak} passed")
        };
        assert!(!text.contains(".."), "{text}");
    }
    assert!(check_password_strength("short", &[]).is_err());
    assert!(check_password_strength("alice-alice-alice", &["alice"]).is_err());
    assert!(check_password_strength("correct horse battery staple 7!", &[]).is_ok());
}

#[test]
fn recovery_codes_normalize() {
    let code = new_recovery_code().unwrap();
    assert_eq!(code.len(), 19);
    let h = recovery_hash(7, &code);
    assert_eq!(h, recovery_hash(7, &code.to_uppercase().replace('-', " ")));
    assert_ne!(h, recovery_hash(8, &code));
}

#[test]
fn unknown_user_never_verifies() {
    let auth = Auth::new(1000, Policy::ACCOUNT, Policy::ADDRESS, Policy::REGISTRATION);
    let addr = IpAddr::from([192, 0, 2, 1]);
    assert_eq!(
        smol::block_on(auth.verify(addr, "anything".into(), None)),
        Ok(false)
    );
    let phc = password::hash_password("pw", 1000).unwrap();
    assert_eq!(
        smol::block_on(auth.verify(addr, "pw".into(), Some(phc))),
        Ok(true)
    );
}

#[test]
fn strangers_lock_the_account_for_strangers_only() {
    let strict = Policy {
        max_per_hour: 3,
        free: 3,
        base_delay: 1,
        max_delay: 1,
    };
    let auth = Auth::new(1_000, strict, Policy::ADDRESS, Policy::REGISTRATION);
    let now = 1_000_000;
    let home = IpAddr::from([192, 0, 2, 1]);
    let stranger = |i: u8| IpAddr::from([198, 51, 100, i]);
    let check = |addr| smol::block_on(auth.check_login("alice", addr, now));
    let fail = |addr| smol::block_on(auth.record_failure("alice", addr, now));
    smol::block_on(auth.record_known("alice", home));
    for i in 0..3 {
        assert_eq!(check(stranger(i)), Ok(Gate::Open));
        fail(stranger(i));
    }
    // A new address now gets only the recovery-code path; alice's own address everything.
    assert_eq!(check(stranger(9)), Ok(Gate::RecoveryOnly));
    assert_eq!(check(home), Ok(Gate::Open));
    // Failures from alice's own address count for that address, not for strangers.
    for _ in 0..3 {
        fail(home);
    }
    assert!(check(home).is_err());
    // Other accounts are untouched.
    assert_eq!(
        smol::block_on(auth.check_login("bob", stranger(9), now)),
        Ok(Gate::Open)
    );
    // A login that succeeds from a new address makes it known.
    smol::block_on(auth.record_success("alice", stranger(7)));
    assert_eq!(check(stranger(7)), Ok(Gate::Open));
}
