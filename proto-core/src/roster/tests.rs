extern crate std;
use std::vec;
use std::vec::Vec;

use super::*;

fn id(n: u8) -> IdentityKeyPair {
    IdentityKeyPair::from_secrets(&[n; 32], &[n.wrapping_add(100); 32])
}

fn member<'a>(name: &'a str, who: &IdentityKeyPair) -> RosterMember<'a> {
    RosterMember {
        username: name,
        identity: who.public().signing,
    }
}

const ROOM: [u8; 16] = [0x52; 16];

/// Admins, members and epoch of a roster someone tries to sign.
type Attempt<'a> = (
    &'a [&'a IdentityKeyPair],
    &'a [(&'a str, &'a IdentityKeyPair)],
    u32,
);

/// Writes a roster; members and admins are sorted here as a client would.
fn write(
    version: u64,
    epoch: u32,
    prev: [u8; 32],
    admins: &[&IdentityKeyPair],
    members: &[(&str, &IdentityKeyPair)],
    signer: &IdentityKeyPair,
) -> Result<Vec<u8>, RosterError> {
    let mut admins: Vec<[u8; 32]> = admins.iter().map(|a| a.public().signing).collect();
    admins.sort();
    let mut members: Vec<RosterMember<'_>> = members.iter().map(|(n, k)| member(n, k)).collect();
    members.sort_by(|a, b| a.username.cmp(b.username));
    let fields = RosterFields {
        room_id: ROOM,
        version,
        epoch,
        prev,
        admins: &admins,
        members: &members,
    };
    let mut out = vec![0u8; ROSTER_MAX_LEN + ROSTER_LABEL.len()];
    let n = write_roster(&fields, signer, &mut out)?;
    out.truncate(n);
    Ok(out)
}

struct People {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    carol: IdentityKeyPair,
    mallory: IdentityKeyPair,
}

fn people() -> People {
    People {
        alice: id(1),
        bob: id(2),
        carol: id(3),
        mallory: id(9),
    }
}

/// Version 0: alice (admin) and bob.
fn first(p: &People) -> Vec<u8> {
    write(
        0,
        0,
        [0; 32],
        &[&p.alice],
        &[("alice", &p.alice), ("bob", &p.bob)],
        &p.alice,
    )
    .unwrap()
}

#[test]
fn a_first_roster_reads_back() {
    let p = people();
    let bytes = first(&p);
    let r = Roster::parse(&bytes).unwrap();
    r.check_first().unwrap();
    assert_eq!(r.version(), 0);
    assert_eq!(r.member_count(), 2);
    assert!(r.is_admin(&p.alice.public().signing));
    assert!(!r.is_admin(&p.bob.public().signing));
    assert!(r.contains("bob", &p.bob.public().signing));
    assert!(!r.contains("bob", &p.mallory.public().signing));
    let names: Vec<&str> = r.members().map(|m| m.username).collect();
    assert_eq!(names, ["alice", "bob"]);

    // Signed by a member who is not an admin, or not version 0: not a first roster.
    let by_bob = write(
        0,
        0,
        [0; 32],
        &[&p.alice],
        &[("alice", &p.alice), ("bob", &p.bob)],
        &p.bob,
    )
    .unwrap();
    assert_eq!(
        Roster::parse(&by_bob).unwrap().check_first(),
        Err(RosterError::SignerNotAdmin)
    );
    let v1 = write(1, 0, [0; 32], &[&p.alice], &[("alice", &p.alice)], &p.alice).unwrap();
    assert_eq!(
        Roster::parse(&v1).unwrap().check_first(),
        Err(RosterError::NotFirst)
    );
}

#[test]
fn an_admin_adds_and_removes_members_and_removal_starts_an_epoch() {
    let p = people();
    let v0b = first(&p);
    let v0 = Roster::parse(&v0b).unwrap();
    let all = [("alice", &p.alice), ("bob", &p.bob), ("carol", &p.carol)];
    // Adding carol: same epoch.
    let v1b = write(1, 0, v0.hash(), &[&p.alice], &all, &p.alice).unwrap();
    let v1 = Roster::parse(&v1b).unwrap();
    v0.check_next(&v1).unwrap();
    assert_eq!(v0.departed(&v1).count(), 0);
    let moved = write(1, 1, v0.hash(), &[&p.alice], &all, &p.alice).unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&moved).unwrap()),
        Err(RosterError::WrongEpoch)
    );

    // Removing bob: the epoch goes up by exactly one.
    let kept = [("alice", &p.alice), ("carol", &p.carol)];
    let v2b = write(2, 1, v1.hash(), &[&p.alice], &kept, &p.alice).unwrap();
    let v2 = Roster::parse(&v2b).unwrap();
    v1.check_next(&v2).unwrap();
    let gone: Vec<&str> = v1.departed(&v2).map(|m| m.username).collect();
    assert_eq!(gone, ["bob"]);
    for epoch in [0, 2, u32::MAX] {
        let bad = write(2, epoch, v1.hash(), &[&p.alice], &kept, &p.alice).unwrap();
        assert_eq!(
            v1.check_next(&Roster::parse(&bad).unwrap()),
            Err(RosterError::WrongEpoch)
        );
    }
}

#[test]
fn a_changed_identity_key_is_a_departure() {
    let p = people();
    let v0b = first(&p);
    let v0 = Roster::parse(&v0b).unwrap();
    let swapped = [("alice", &p.alice), ("bob", &p.mallory)];
    let same_epoch = write(1, 0, v0.hash(), &[&p.alice], &swapped, &p.alice).unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&same_epoch).unwrap()),
        Err(RosterError::WrongEpoch)
    );
    let next_epoch = write(1, 1, v0.hash(), &[&p.alice], &swapped, &p.alice).unwrap();
    v0.check_next(&Roster::parse(&next_epoch).unwrap()).unwrap();
}

#[test]
fn a_member_may_only_leave() {
    let p = people();
    let all = [("alice", &p.alice), ("bob", &p.bob), ("carol", &p.carol)];
    let v0b = write(0, 7, [0; 32], &[&p.alice], &all, &p.alice).unwrap();
    let v0 = Roster::parse(&v0b).unwrap();
    // bob leaves: fine, and a new epoch.
    let left = [("alice", &p.alice), ("carol", &p.carol)];
    let ok = write(1, 8, v0.hash(), &[&p.alice], &left, &p.bob).unwrap();
    v0.check_next(&Roster::parse(&ok).unwrap()).unwrap();
    // bob removes carol, adds mallory, or makes himself admin: not his to do.
    let attempts: [Attempt<'_>; 3] = [
        (&[&p.alice], &[("alice", &p.alice), ("bob", &p.bob)], 8),
        (
            &[&p.alice],
            &[
                ("alice", &p.alice),
                ("bob", &p.bob),
                ("carol", &p.carol),
                ("mallory", &p.mallory),
            ],
            7,
        ),
        (&[&p.alice, &p.bob], &all, 7),
    ];
    for (admins, members, epoch) in attempts {
        let bad = write(1, epoch, v0.hash(), admins, members, &p.bob).unwrap();
        assert_eq!(
            v0.check_next(&Roster::parse(&bad).unwrap()),
            Err(RosterError::NotAuthorized)
        );
    }
    // Someone outside the room (the server, with its own key) can do nothing.
    let bad = write(
        1,
        7,
        v0.hash(),
        &[&p.alice],
        &[
            ("alice", &p.alice),
            ("mallory", &p.mallory),
            ("bob", &p.bob),
            ("carol", &p.carol),
        ],
        &p.mallory,
    )
    .unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&bad).unwrap()),
        Err(RosterError::NotAuthorized)
    );
}

#[test]
fn the_chain_is_checked_link_by_link() {
    let p = people();
    let v0b = first(&p);
    let v0 = Roster::parse(&v0b).unwrap();
    let members = [("alice", &p.alice), ("bob", &p.bob), ("carol", &p.carol)];
    let skip = write(2, 0, v0.hash(), &[&p.alice], &members, &p.alice).unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&skip).unwrap()),
        Err(RosterError::WrongVersion)
    );
    let fork = write(1, 0, [7; 32], &[&p.alice], &members, &p.alice).unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&fork).unwrap()),
        Err(RosterError::WrongPrevious)
    );
    let mut other_room = write(1, 0, v0.hash(), &[&p.alice], &members, &p.alice).unwrap();
    other_room[0] ^= 1; // breaks the signature too: re-sign through the writer instead
    assert_eq!(Roster::parse(&other_room), Err(RosterError::BadSignature));
    let mut admins = [p.alice.public().signing];
    admins.sort();
    let ms = [member("alice", &p.alice), member("bob", &p.bob)];
    let fields = RosterFields {
        room_id: [0x53; 16],
        version: 1,
        epoch: 0,
        prev: v0.hash(),
        admins: &admins,
        members: &ms,
    };
    let mut out = vec![0u8; 1024];
    let n = write_roster(&fields, &p.alice, &mut out).unwrap();
    assert_eq!(
        v0.check_next(&Roster::parse(&out[..n]).unwrap()),
        Err(RosterError::WrongRoom)
    );
}

#[test]
fn epochs_cannot_overflow() {
    let p = people();
    let v0b = write(
        0,
        u32::MAX,
        [0; 32],
        &[&p.alice],
        &[("alice", &p.alice), ("bob", &p.bob)],
        &p.alice,
    )
    .unwrap();
    let v0 = Roster::parse(&v0b).unwrap();
    for epoch in [0, u32::MAX] {
        let removed = write(
            1,
            epoch,
            v0.hash(),
            &[&p.alice],
            &[("alice", &p.alice)],
            &p.alice,
        )
        .unwrap();
        assert_eq!(
            v0.check_next(&Roster::parse(&removed).unwrap()),
            Err(RosterError::EpochOverflow)
        );
    }
    // Adding someone at u32::MAX is still possible (no new epoch).
    let added = write(
        1,
        u32::MAX,
        v0.hash(),
        &[&p.alice],
        &[("alice", &p.alice), ("bob", &p.bob), ("carol", &p.carol)],
        &p.alice,
    )
    .unwrap();
    v0.check_next(&Roster::parse(&added).unwrap()).unwrap();
}

#[test]
fn only_canonical_rosters_are_written_or_read() {
    let p = people();
    let (a, b) = (p.alice.public().signing, p.bob.public().signing);
    let mut buf = vec![0u8; 4096];
    let mut w = |admins: &[[u8; 32]], members: &[RosterMember<'_>]| {
        let fields = RosterFields {
            room_id: ROOM,
            version: 0,
            epoch: 0,
            prev: [0; 32],
            admins,
            members,
        };
        write_roster(&fields, &p.alice, &mut buf).map(|_| ())
    };
    let alice = member("alice", &p.alice);
    let bob = member("bob", &p.bob);
    assert_eq!(w(&[a], &[bob, alice]), Err(RosterError::NotCanonical));
    assert_eq!(w(&[a], &[alice, alice]), Err(RosterError::NotCanonical));
    let mut two = [a, b];
    two.sort();
    two.reverse();
    assert_eq!(w(&two, &[alice, bob]), Err(RosterError::NotCanonical));
    assert_eq!(w(&[], &[alice, bob]), Err(RosterError::NoAdmin));
    assert_eq!(
        w(&[p.carol.public().signing], &[alice, bob]),
        Err(RosterError::AdminNotMember)
    );
    let upper = RosterMember {
        username: "Bob",
        identity: b,
    };
    assert_eq!(w(&[a], &[alice, upper]), Err(RosterError::BadUsername));
    assert_eq!(
        w(
            &[a],
            &[
                alice,
                RosterMember {
                    username: "",
                    identity: b
                }
            ]
        ),
        Err(RosterError::BadUsername)
    );
    assert_eq!(
        write_roster(
            &RosterFields {
                room_id: ROOM,
                version: 0,
                epoch: 0,
                prev: [0; 32],
                admins: &[a],
                members: &[alice]
            },
            &p.alice,
            &mut [0u8; 100]
        ),
        Err(RosterError::Caller(CallerError::BufferTooSmall))
    );
}

#[test]
fn every_prefix_extension_and_bit_flip_is_refused() {
    let p = people();
    let bytes = first(&p);
    for n in 0..bytes.len() {
        assert!(
            Roster::parse(&bytes[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Roster::parse(&longer), Err(RosterError::TrailingBytes));
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            assert!(
                Roster::parse(&bad).is_err(),
                "flip {bit:#x} at {i} accepted"
            );
        }
    }
}

#[test]
fn the_largest_roster_round_trips() {
    let p = people();
    let names: Vec<std::string::String> = (0..ROSTER_MAX_MEMBERS)
        .map(|i| std::format!("{i:0>32}"))
        .collect();
    let members: Vec<RosterMember<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| RosterMember {
            username: n,
            identity: if i == 0 {
                p.alice.public().signing
            } else {
                [u8::try_from(i % 251).unwrap_or(0); 32]
            },
        })
        .collect();
    let admins = [p.alice.public().signing];
    let fields = RosterFields {
        room_id: ROOM,
        version: 0,
        epoch: 0,
        prev: [0; 32],
        admins: &admins,
        members: &members,
    };
    let mut out = vec![0u8; ROSTER_MAX_LEN + ROSTER_LABEL.len()];
    let n = write_roster(&fields, &p.alice, &mut out).unwrap();
    let r = Roster::parse(&out[..n]).unwrap();
    assert_eq!(r.member_count(), ROSTER_MAX_MEMBERS);
    assert!(
        r.members()
            .map(|m| m.username)
            .eq(names.iter().map(std::string::String::as_str))
    );
}
