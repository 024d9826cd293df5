//! One behavioural test run against both backends: whatever SQLite does, memory does too.

use proto_core::{KEM_PUBLIC_KEY_LEN, KemPrekeyPublic, Key32, OneTimePrekey, Sig64, SignedPrekey};

use super::*;
#[cfg(feature = "postgres")]
use std::io::Write as _;

fn account(name: &str, prekeys: u32, now: u64) -> NewAccount {
    NewAccount {
        username: name.into(),
        name: "N".into(),
        email: "n@example.org".into(),
        password_phc: "$pbkdf2-sha256$i=1,l=32$AA$AA".into(),
        totp_secret: vec![1; 20],
        identity_sig: [1; 32],
        identity_dh: [2; 32],
        spk: SignedPrekey {
            id: 1,
            key: Key32([3; 32]),
            signature: Sig64([4; 64]),
        },
        prekeys: (0..prekeys)
            .map(|i| OneTimePrekey {
                id: 10 + i,
                key: Key32([i as u8; 32]),
            })
            .collect(),
        created_at: now,
    }
}

fn msg(
    recipient: Option<AccountId>,
    room: Option<RoomId>,
    sender: AccountId,
    body: &[u8],
) -> NewMessage {
    NewMessage {
        recipient,
        room,
        sender_id: sender,
        sender: format!("user{sender}"),
        sender_device: 1,
        sent_at: 100,
        expires_at: 1_000,
        body: if recipient.is_some() {
            Vec::new()
        } else {
            body.to_vec()
        },
        copies: if recipient.is_some() {
            vec![(1, body.to_vec())]
        } else {
            Vec::new()
        },
    }
}

fn exercise(s: &mut dyn Store) {
    // Accounts.
    let a = s.create_account(&account("alice", 3, 100)).unwrap();
    let b = s.create_account(&account("bob", 0, 100)).unwrap();
    let c = s.create_account(&account("carol", 0, 100)).unwrap();
    assert!(matches!(
        s.create_account(&account("alice", 0, 100)),
        Err(StoreError::UsernameTaken)
    ));
    assert!(!s.account_by_username("alice").unwrap().unwrap().confirmed);
    for id in [a, b, c] {
        s.confirm_account(id).unwrap();
    }
    let stale = s.create_account(&account("stale", 0, 10)).unwrap();
    assert_eq!(s.delete_unconfirmed(50, None).unwrap(), 1);
    assert!(s.account_by_id(stale).unwrap().is_none());
    assert_eq!(s.account_by_id(a).unwrap().unwrap().username, "alice");

    // TOTP steps only move forward; recovery codes are single use.
    assert!(s.accept_totp_step(a, 5).unwrap());
    assert!(!s.accept_totp_step(a, 5).unwrap());
    assert!(!s.accept_totp_step(a, 4).unwrap());
    assert!(s.accept_totp_step(a, 6).unwrap());
    s.set_recovery_codes(a, &[[7; 32], [8; 32]]).unwrap();
    assert!(s.consume_recovery_code(a, &[7; 32]).unwrap());
    assert!(!s.consume_recovery_code(a, &[7; 32]).unwrap());
    assert!(!s.consume_recovery_code(b, &[8; 32]).unwrap());

    // Sessions expire and revoke.
    s.create_session(a, &[9; 32], 500, Some(1)).unwrap();
    assert_eq!(
        s.session(&[9; 32], 499).unwrap(),
        Some(SessionInfo {
            account: a,
            expires_at: 500,
            device: Some(1),
        })
    );
    assert_eq!(s.session(&[9; 32], 500).unwrap(), None);
    s.revoke_session(&[9; 32]).unwrap();
    assert_eq!(s.session(&[9; 32], 0).unwrap(), None);

    // Bundles hand out the lowest prekey id first, each once.
    let got: Vec<Option<u32>> = (0..4)
        .map(|_| {
            s.take_bundle("alice", None, true)
                .unwrap()
                .unwrap()
                .prekey
                .map(|p| p.id)
        })
        .collect();
    assert_eq!(got, [Some(10), Some(11), Some(12), None]);
    s.add_prekeys(
        a,
        1,
        &[OneTimePrekey {
            id: 50,
            key: Key32([5; 32]),
        }],
    )
    .unwrap();
    assert_eq!(s.count_prekeys(a, 1).unwrap(), 1);
    assert!(s.take_bundle("nobody", None, true).unwrap().is_none());

    // Direct messages: order, ack, receipts.
    let m1 = s.insert_message(&msg(Some(b), None, a, b"one")).unwrap();
    let m2 = s.insert_message(&msg(Some(b), None, a, b"two")).unwrap();
    assert!(m2 > m1);
    assert_eq!(s.pending_direct_count(b).unwrap(), 2);
    let p = s.pending_for(b, 1, 0, 200, 10).unwrap();
    assert_eq!(p.iter().map(|m| m.id).collect::<Vec<_>>(), [m1, m2]);
    assert_eq!(s.pending_for(b, 1, m1, 200, 10).unwrap().len(), 1);
    assert_eq!(s.pending_for(b, 1, 0, 200, 1).unwrap().len(), 1);
    assert!(s.pending_for(a, 1, 0, 200, 10).unwrap().is_empty());
    assert_eq!(s.ack(a, 1, m1).unwrap(), AckOutcome::Unknown);
    assert_eq!(
        s.ack(b, 1, m1).unwrap(),
        AckOutcome::Direct { sender_id: a }
    );
    assert_eq!(s.ack(b, 1, m1).unwrap(), AckOutcome::Unknown);
    s.add_receipt(a, m1, "bob", 2, 2_000).unwrap();
    s.add_receipt(a, m1, "bob", 7, 2_000).unwrap();
    assert_eq!(
        s.take_receipts(a).unwrap(),
        [
            Receipt {
                server_id: m1,
                recipient: "bob".to_string(),
                device: 2,
            },
            Receipt {
                server_id: m1,
                recipient: "bob".to_string(),
                device: 7,
            }
        ]
    );
    assert!(s.take_receipts(a).unwrap().is_empty());

    // Rooms: one stored copy, per-member cursors, new members start after existing messages.
    let r = s.create_room("team", a).unwrap();
    assert!(matches!(
        s.create_room("team", b),
        Err(StoreError::RoomTaken)
    ));
    s.add_member(r, b).unwrap();
    let rm = s.insert_message(&msg(None, Some(r), a, b"room")).unwrap();
    s.add_member(r, c).unwrap();
    let info = s.room("team").unwrap().unwrap();
    assert_eq!(
        info.members
            .iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    assert_eq!(info.admin_name(), "alice");
    let for_bob = s.pending_for(b, 1, m1, 200, 10).unwrap();
    assert_eq!(
        for_bob
            .iter()
            .map(|m| (m.id, m.room.clone()))
            .collect::<Vec<_>>(),
        [(m2, None), (rm, Some("team".into()))]
    );
    assert!(
        s.pending_for(a, 1, 0, 200, 10).unwrap().is_empty(),
        "senders do not receive their own"
    );
    assert!(
        s.pending_for(c, 1, 0, 200, 10).unwrap().is_empty(),
        "joined after the message"
    );
    assert_eq!(s.pending_room_count(r).unwrap(), 1);
    assert_eq!(s.sweep(200).unwrap(), 0, "bob has not acknowledged it yet");
    assert_eq!(s.ack(b, 1, rm).unwrap(), AckOutcome::Room { sender_id: a });
    assert_eq!(s.sweep(200).unwrap(), 1, "every member is past it");
    assert_eq!(s.rooms_of(b).unwrap(), ["team"]);
    s.remove_member(r, b).unwrap();
    assert!(s.rooms_of(b).unwrap().is_empty());
    s.set_admin(r, c).unwrap();
    assert_eq!(s.room("team").unwrap().unwrap().admin, c);
    s.delete_room(r).unwrap();
    assert!(s.room("team").unwrap().is_none());

    // Membership changes kept for offline members.
    let ev = RoomEvent {
        room: "team".into(),
        username: "carol".into(),
        change: proto_core::RoomChange::Removed,
    };
    s.add_room_event(b, &ev, 900).unwrap();
    s.add_room_event(c, &ev, 900).unwrap();
    assert_eq!(s.take_room_events(b).unwrap(), core::slice::from_ref(&ev));
    assert!(s.take_room_events(b).unwrap().is_empty());

    // Expiry.
    assert_eq!(s.sweep(1_000).unwrap(), 1, "m2 expired");
    assert!(s.pending_for(b, 1, 0, 0, 10).unwrap().is_empty());
    assert!(
        s.take_room_events(c).unwrap().is_empty(),
        "room events expire too"
    );

    // A new identity drops the prekeys signed by the old one, and moves the account from
    // device 1 to device 2 (another account's id is untouched).
    assert_eq!(s.account_by_id(a).unwrap().unwrap().device_id, 1);
    let created = s.devices(a, 64).unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].device_id, created[0].revoked_at), (1, None));
    s.name_device(a, 1, "old laptop").unwrap();
    s.touch_device(a, 1, 450).unwrap();
    s.set_identity(a, &[9; 32], &[9; 32], 500).unwrap();
    assert_eq!(s.account_by_id(a).unwrap().unwrap().device_id, 2);
    let listed = s.devices(a, 64).unwrap();
    assert_eq!(
        listed,
        vec![
            DeviceRecord {
                device_id: 2,
                name: String::new(),
                added_at: 500,
                last_seen: 500,
                revoked_at: None,
            },
            DeviceRecord {
                device_id: 1,
                name: "old laptop".into(),
                added_at: created[0].added_at,
                last_seen: 450,
                revoked_at: Some(500),
            },
        ]
    );
    assert_eq!(s.devices(a, 1).unwrap().len(), 1, "the limit holds");
    assert_eq!(
        s.devices(b, 64).unwrap().len(),
        1,
        "another account's devices are its own"
    );
    assert_eq!(s.account_by_username("bob").unwrap().unwrap().device_id, 1);
    assert_eq!(s.count_prekeys(a, 1).unwrap(), 0);
    assert_eq!(s.count_prekeys(a, 2).unwrap(), 0);
    assert!(s.take_bundle("alice", None, true).unwrap().is_none());
}

/// Account recovery: password, sessions, TOTP secret, recovery codes, deletion.
fn exercise_recovery(s: &mut dyn Store) {
    let a = s.create_account(&account("alice", 2, 100)).unwrap();
    let b = s.create_account(&account("bob", 0, 100)).unwrap();
    for id in [a, b] {
        s.confirm_account(id).unwrap();
    }
    s.set_password(a, "$pbkdf2-sha256$i=1,l=32$BB$BB").unwrap();
    assert_eq!(
        s.account_by_id(a).unwrap().unwrap().password_phc,
        "$pbkdf2-sha256$i=1,l=32$BB$BB"
    );

    // Every session but the kept one goes; other accounts' stay.
    for t in [[1u8; 32], [2; 32], [3; 32]] {
        s.create_session(a, &t, 500, Some(1)).unwrap();
    }
    s.create_session(b, &[4; 32], 500, Some(1)).unwrap();
    assert_eq!(s.revoke_sessions(a, Some(&[2; 32])).unwrap(), 2);
    assert!(s.session(&[1; 32], 0).unwrap().is_none());
    assert!(s.session(&[2; 32], 0).unwrap().is_some());
    assert_eq!(s.revoke_sessions(a, None).unwrap(), 1);
    assert!(s.session(&[4; 32], 0).unwrap().is_some());

    // A new TOTP secret, its confirming step already used.
    assert!(s.accept_totp_step(a, 50).unwrap());
    s.set_totp_secret(a, &[9; 20], 40).unwrap();
    let acc = s.account_by_id(a).unwrap().unwrap();
    assert_eq!(
        (acc.totp_secret, acc.totp_last_step),
        (vec![9; 20], Some(40))
    );
    assert!(!s.accept_totp_step(a, 40).unwrap());
    assert!(s.accept_totp_step(a, 41).unwrap());

    // Recovery codes are counted.
    s.set_recovery_codes(a, &[[7; 32], [8; 32], [6; 32]])
        .unwrap();
    assert_eq!(s.count_recovery_codes(a).unwrap(), 3);
    assert!(s.consume_recovery_code(a, &[7; 32]).unwrap());
    assert_eq!(s.count_recovery_codes(a).unwrap(), 2);
    assert_eq!(s.count_recovery_codes(b).unwrap(), 0);

    // Deleting an account takes what is its own, and nothing of bob's.
    let r = s.create_room("team", b).unwrap();
    s.add_member(r, a).unwrap();
    let other = s.create_room("club", b).unwrap();
    assert!(s.add_invitation(other, a, b, 1).unwrap());
    let to_a = s
        .insert_message(&msg(Some(a), None, b, b"to alice"))
        .unwrap();
    let to_b = s.insert_message(&msg(Some(b), None, a, b"to bob")).unwrap();
    s.add_receipt(a, to_b, "bob", 1, 900).unwrap();
    s.create_session(a, &[5; 32], 500, Some(1)).unwrap();
    s.delete_account(a).unwrap();
    assert!(s.account_by_id(a).unwrap().is_none());
    assert!(s.account_by_username("alice").unwrap().is_none());
    assert!(s.session(&[5; 32], 0).unwrap().is_none());
    assert_eq!(s.count_recovery_codes(a).unwrap(), 0);
    assert_eq!(s.count_prekeys(a, 1).unwrap(), 0);
    assert!(s.take_bundle("alice", None, true).unwrap().is_none());
    assert!(s.take_receipts(a).unwrap().is_empty());
    assert!(s.invitations_of(a).unwrap().is_empty());
    assert!(s.rooms_of(a).unwrap().is_empty());
    let team = s.room("team").unwrap().unwrap();
    assert_eq!(team.members.len(), 1, "only bob is left");
    let pending_b = s.pending_for(b, 1, 0, 200, 10).unwrap();
    assert_eq!(pending_b.iter().map(|m| m.id).collect::<Vec<_>>(), [to_b]);
    assert_eq!(s.ack(a, 1, to_a).unwrap(), AckOutcome::Unknown);
    // The name is free again.
    s.create_account(&account("alice", 0, 200)).unwrap();
}

/// Linked devices: ids, per-device keys, one copy of a direct message per device, link
/// messages, revocation and starting over.
fn exercise_linked_devices(s: &mut dyn Store) {
    let a = s.create_account(&account("alice", 2, 100)).unwrap();
    let b = s.create_account(&account("bob", 0, 100)).unwrap();
    s.confirm_account(a).unwrap();
    s.confirm_account(b).unwrap();
    assert_eq!(s.active_devices(a).unwrap(), [1]);

    // A session linking a device is none of them until it is added.
    s.create_session(a, &[1; 32], 500, None).unwrap();
    assert_eq!(s.session(&[1; 32], 0).unwrap().unwrap().device, None);
    let second = s.add_device(a, "phone", 110).unwrap();
    assert_eq!(second, 2);
    s.set_session_device(&[1; 32], second).unwrap();
    assert_eq!(s.session(&[1; 32], 0).unwrap().unwrap().device, Some(2));
    assert_eq!(s.active_devices(a).unwrap(), [1, 2]);
    assert_eq!(s.reachable_devices(a).unwrap(), [1], "no signed prekey yet");
    assert_eq!(s.devices(a, 64).unwrap()[0].name, "phone");

    // Each device has its own signed and one-time prekeys.
    assert!(
        s.take_bundle("alice", Some(2), true).unwrap().is_none(),
        "no signed prekey yet"
    );
    let spk2 = SignedPrekey {
        id: 7,
        key: Key32([2; 32]),
        signature: Sig64([2; 64]),
    };
    s.set_signed_prekey(a, 2, &spk2).unwrap();
    assert_eq!(s.reachable_devices(a).unwrap(), [1, 2]);
    s.add_prekeys(
        a,
        2,
        &[OneTimePrekey {
            id: 10,
            key: Key32([22; 32]),
        }],
    )
    .unwrap();
    let bundle = s.take_bundle("alice", Some(2), true).unwrap().unwrap();
    assert_eq!((bundle.device, bundle.spk, bundle.remaining), (2, spk2, 0));
    assert_eq!(bundle.prekey.map(|p| p.key), Some(Key32([22; 32])));
    let first = s.take_bundle("alice", None, true).unwrap().unwrap();
    assert_eq!(first.device, 1, "FetchBundle is the primary device's");
    assert_eq!(first.prekey.map(|p| p.id), Some(10), "its own prekey 10");
    assert_eq!(s.count_prekeys(a, 1).unwrap(), 1);
    assert!(s.take_bundle("alice", Some(9), true).unwrap().is_none());

    // One copy per device, each acknowledged on its own; the message goes with the last.
    let mut two = msg(Some(a), None, b, b"");
    two.copies = vec![(1, b"for one".to_vec()), (2, b"for two".to_vec())];
    let m = s.insert_message(&two).unwrap();
    let on = |s: &mut dyn Store, d| -> Vec<Vec<u8>> {
        s.pending_for(a, d, 0, 200, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect()
    };
    assert_eq!(on(s, 1), [b"for one".to_vec()]);
    assert_eq!(on(s, 2), [b"for two".to_vec()]);
    assert_eq!(s.pending_for(a, 2, 0, 200, 10).unwrap()[0].sender_device, 1);
    assert_eq!(
        s.pending_direct_count(a).unwrap(),
        1,
        "one message, two copies"
    );
    assert_eq!(s.ack(a, 1, m).unwrap(), AckOutcome::Direct { sender_id: b });
    assert_eq!(s.ack(a, 1, m).unwrap(), AckOutcome::Unknown);
    assert!(on(s, 1).is_empty());
    assert_eq!(
        on(s, 2),
        [b"for two".to_vec()],
        "the other device still has it"
    );
    assert_eq!(s.ack(b, 1, m).unwrap(), AckOutcome::Unknown, "not bob's");
    assert_eq!(s.ack(a, 2, m).unwrap(), AckOutcome::Direct { sender_id: b });
    assert_eq!(s.pending_direct_count(a).unwrap(), 0);

    // Link messages: per account and link id, replaced, taken once, not after expiry.
    s.put_link(a, &[5; 16], b"first", 300).unwrap();
    s.put_link(a, &[5; 16], b"second", 300).unwrap();
    assert_eq!(
        s.take_link(b, &[5; 16], 200).unwrap(),
        None,
        "another account's"
    );
    assert_eq!(s.take_link(a, &[6; 16], 200).unwrap(), None);
    assert_eq!(
        s.take_link(a, &[5; 16], 200).unwrap(),
        Some(b"second".to_vec())
    );
    assert_eq!(
        s.take_link(a, &[5; 16], 200).unwrap(),
        None,
        "handed out once"
    );
    s.put_link(a, &[7; 16], b"late", 300).unwrap();
    assert_eq!(s.take_link(a, &[7; 16], 300).unwrap(), None, "expired");
    s.put_link(a, &[8; 16], b"swept", 300).unwrap();
    s.sweep(300).unwrap();
    assert_eq!(s.take_link(a, &[8; 16], 0).unwrap(), None, "swept");

    // Revoking a device: its sessions, keys and copies go; a message only it held goes too.
    let mut both = msg(Some(a), None, b, b"");
    both.copies = vec![(1, b"both 1".to_vec()), (2, b"both 2".to_vec())];
    let kept = s.insert_message(&both).unwrap();
    let mut only = msg(Some(a), None, b, b"");
    only.copies = vec![(2, b"only 2".to_vec())];
    s.insert_message(&only).unwrap();
    assert!(s.revoke_device(a, 2, 600).unwrap());
    assert!(!s.revoke_device(a, 2, 601).unwrap(), "once");
    assert!(!s.revoke_device(a, 9, 601).unwrap(), "no such device");
    assert_eq!(s.active_devices(a).unwrap(), [1]);
    assert_eq!(s.session(&[1; 32], 0).unwrap(), None);
    assert!(s.take_bundle("alice", Some(2), true).unwrap().is_none());
    assert_eq!(s.count_prekeys(a, 2).unwrap(), 0);
    assert!(on(s, 2).is_empty());
    assert_eq!(on(s, 1), [b"both 1".to_vec()]);
    assert_eq!(s.pending_direct_count(a).unwrap(), 1);
    assert_eq!(s.devices(a, 64).unwrap()[0].revoked_at, Some(600));
    assert_eq!(
        s.ack(a, 1, kept).unwrap(),
        AckOutcome::Direct { sender_id: b }
    );

    // Revoking the primary device makes the lowest active one primary; ids are never reused.
    let third = s.add_device(a, "tablet", 700).unwrap();
    assert_eq!(third, 3);
    assert!(s.revoke_device(a, 1, 710).unwrap());
    assert_eq!(s.account_by_id(a).unwrap().unwrap().device_id, 3);
    assert_eq!(s.active_devices(a).unwrap(), [3]);

    // Starting over revokes every device and makes one new one.
    let fourth = s.add_device(a, "watch", 720).unwrap();
    s.put_link(a, &[9; 16], b"pending", 2_000).unwrap();
    s.create_session(a, &[3; 32], 5_000, Some(fourth)).unwrap();
    let fresh = s.set_identity(a, &[4; 32], &[4; 32], 800).unwrap();
    assert_eq!(fresh, 5);
    assert_eq!(s.active_devices(a).unwrap(), [5]);
    assert!(
        s.reachable_devices(a).unwrap().is_empty(),
        "until it publishes"
    );
    assert_eq!(s.account_by_id(a).unwrap().unwrap().device_id, 5);
    assert_eq!(s.take_link(a, &[9; 16], 0).unwrap(), None);
    s.set_session_device(&[3; 32], fresh).unwrap();
    assert_eq!(s.session(&[3; 32], 0).unwrap().unwrap().device, Some(5));
    assert_eq!(s.active_devices(b).unwrap(), [1], "bob's are his own");
}

/// A KEM prekey with id `id`, key and signature filled with `fill` (the store checks neither).
fn kem(id: u32, fill: u8) -> KemPrekeyPublic {
    KemPrekeyPublic {
        id,
        public: [fill; KEM_PUBLIC_KEY_LEN],
        signature: [fill ^ 0xff; 64],
    }
}

/// KEM prekeys (PQXDH): per device, one-time ones handed out once each (lowest id first) with
/// the X3DH bundle, then the last-resort one again and again; the pace decides as for one-time
/// prekeys; revocation, starting over and deleting the account take them.
fn exercise_kem_prekeys(s: &mut dyn Store) {
    let a = s.create_account(&account("alice", 2, 100)).unwrap();
    let b = s.create_account(&account("bob", 0, 100)).unwrap();
    s.confirm_account(a).unwrap();
    s.confirm_account(b).unwrap();
    let spk = SignedPrekey {
        id: 7,
        key: Key32([2; 32]),
        signature: Sig64([2; 64]),
    };
    let second = s.add_device(a, "phone", 110).unwrap();
    s.set_signed_prekey(a, second, &spk).unwrap();
    let ids = |s: &mut dyn Store, device| {
        let mut ids = s.kem_prekey_ids(a, device).unwrap();
        ids.sort_unstable();
        ids
    };

    // Nothing published: the X3DH bundle, taken as FetchDeviceBundle takes it, and no KEM prekey.
    let t = s.take_kem_bundle("alice", 1, true).unwrap().unwrap();
    assert_eq!((t.bundle.owner, t.bundle.device), (a, 1));
    assert_eq!(t.bundle.prekey.map(|p| p.id), Some(10));
    assert_eq!((t.kem_prekey, t.kem_remaining), (None, 0));
    assert!(ids(s, 1).is_empty());

    // Each device its own: a last-resort one and one-time ones.
    s.set_last_resort_kem_prekey(a, 1, &kem(1000, 0xa0))
        .unwrap();
    s.add_kem_prekeys(a, 1, &[kem(3, 3), kem(1, 1), kem(2, 2)])
        .unwrap();
    s.set_last_resort_kem_prekey(a, second, &kem(2000, 0xb0))
        .unwrap();
    s.add_kem_prekeys(a, second, &[kem(1, 0x21)]).unwrap();
    assert_eq!(s.count_kem_prekeys(a, 1).unwrap(), 3);
    assert_eq!(s.count_kem_prekeys(a, second).unwrap(), 1);
    assert_eq!(ids(s, 1), [1, 2, 3, 1000]);
    assert_eq!(ids(s, second), [1, 2000]);

    // Past the pace: the last-resort one, and neither kind of one-time prekey goes.
    let t = s.take_kem_bundle("alice", 1, false).unwrap().unwrap();
    assert_eq!(t.kem_prekey, Some(kem(1000, 0xa0)));
    assert_eq!(t.kem_remaining, 3);
    assert_eq!((t.bundle.prekey, t.bundle.remaining), (None, 1));

    // Each one-time KEM prekey once, lowest id first, then the last-resort one, again and again.
    let mut got = Vec::new();
    for _ in 0..5 {
        let t = s.take_kem_bundle("alice", 1, true).unwrap().unwrap();
        let k = t.kem_prekey.unwrap();
        assert_eq!(k, kem(k.id, if k.id == 1000 { 0xa0 } else { k.id as u8 }));
        got.push((k.id, t.kem_remaining, t.bundle.prekey.map(|p| p.id)));
    }
    assert_eq!(
        got,
        [
            (1, 2, Some(11)),
            (2, 1, None),
            (3, 0, None),
            (1000, 0, None),
            (1000, 0, None)
        ]
    );
    assert_eq!(ids(s, 1), [1000], "the last-resort one stays");

    // The other device's were not touched; another account has none.
    assert_eq!(ids(s, second), [1, 2000]);
    let t = s.take_kem_bundle("alice", second, true).unwrap().unwrap();
    assert_eq!(
        (t.bundle.device, t.kem_prekey),
        (second, Some(kem(1, 0x21)))
    );
    let t = s.take_kem_bundle("bob", 1, true).unwrap().unwrap();
    assert_eq!((t.kem_prekey, t.kem_remaining), (None, 0));
    assert!(s.take_kem_bundle("nobody", 1, true).unwrap().is_none());
    assert!(s.take_kem_bundle("alice", 9, true).unwrap().is_none());

    // A new last-resort one replaces the old.
    s.set_last_resort_kem_prekey(a, 1, &kem(1001, 0xa1))
        .unwrap();
    assert_eq!(ids(s, 1), [1001]);
    let t = s.take_kem_bundle("alice", 1, true).unwrap().unwrap();
    assert_eq!(t.kem_prekey, Some(kem(1001, 0xa1)));

    // Revoking a device takes its KEM prekeys; a revoked device is given none.
    s.add_kem_prekeys(a, second, &[kem(5, 5)]).unwrap();
    assert!(s.revoke_device(a, second, 600).unwrap());
    assert!(ids(s, second).is_empty());
    assert_eq!(s.count_kem_prekeys(a, second).unwrap(), 0);
    assert_eq!(s.take_kem_prekey(a, second, true).unwrap(), None);
    s.add_kem_prekeys(a, second, &[kem(6, 6)]).unwrap();
    s.set_last_resort_kem_prekey(a, second, &kem(2001, 0xb1))
        .unwrap();
    assert!(ids(s, second).is_empty(), "stored for a revoked device");
    assert_eq!(ids(s, 1), [1001], "device 1's stay");

    // Starting over takes every device's (signed by the old identity).
    s.add_kem_prekeys(a, 1, &[kem(7, 7)]).unwrap();
    let fresh = s.set_identity(a, &[4; 32], &[4; 32], 700).unwrap();
    assert!(ids(s, 1).is_empty());
    assert!(ids(s, fresh).is_empty());
    s.set_signed_prekey(a, fresh, &spk).unwrap();
    s.set_last_resort_kem_prekey(a, fresh, &kem(9, 9)).unwrap();
    s.add_kem_prekeys(a, fresh, &[kem(1, 1), kem(2, 2)])
        .unwrap();
    let t = s.take_kem_bundle("alice", fresh, true).unwrap().unwrap();
    assert_eq!((t.kem_prekey, t.kem_remaining), (Some(kem(1, 1)), 1));

    // Deleting an account takes its.
    s.set_last_resort_kem_prekey(b, 1, &kem(1, 1)).unwrap();
    s.add_kem_prekeys(b, 1, &[kem(2, 2)]).unwrap();
    assert_eq!(s.count_kem_prekeys(b, 1).unwrap(), 1);
    s.delete_account(b).unwrap();
    assert_eq!(s.count_kem_prekeys(b, 1).unwrap(), 0);
    assert!(s.kem_prekey_ids(b, 1).unwrap().is_empty());
    assert_eq!(ids(s, fresh), [2, 9], "alice's new device keeps its");
}

/// Room messages per device: each of a member's devices is delivered them and acknowledges
/// them on its own; a device added later, or a member joining later, is not sent what came
/// before; the sender's other devices get it too, the sending one does not; a message stays
/// until every active device but the sending one has passed it.
fn exercise_room_devices(s: &mut dyn Store) {
    let a = s.create_account(&account("alice", 0, 100)).unwrap();
    let b = s.create_account(&account("bob", 0, 100)).unwrap();
    let c = s.create_account(&account("carol", 0, 100)).unwrap();
    for id in [a, b, c] {
        s.confirm_account(id).unwrap();
    }
    let r = s.create_room("team", a).unwrap();
    s.add_member(r, b).unwrap();
    let ids = |s: &mut dyn Store, who: AccountId, device: u32| -> Vec<u64> {
        s.pending_for(who, device, 0, 200, 10)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect()
    };
    let send = |s: &mut dyn Store, body: &[u8]| -> u64 {
        s.insert_message(&msg(None, Some(r), a, body)).unwrap()
    };
    let room = |sender_id| AckOutcome::Room { sender_id };

    // A device added later is not sent the room's earlier messages; the old one is.
    let before = send(s, b"before");
    assert_eq!(s.add_device(b, "laptop", 110).unwrap(), 2);
    assert_eq!(ids(s, b, 1), [before]);
    assert!(ids(s, b, 2).is_empty(), "sent before the device was added");
    assert_eq!(
        s.ack(b, 2, before).unwrap(),
        AckOutcome::Unknown,
        "never the new device's to acknowledge"
    );
    assert!(ids(s, a, 1).is_empty(), "not sent to its sender");

    // A message after it is delivered to both, and acknowledged by each on its own.
    let after = send(s, b"after");
    assert_eq!(ids(s, b, 1), [before, after]);
    assert_eq!(ids(s, b, 2), [after]);
    assert_eq!(
        s.pending_for(b, 2, 0, 200, 10).unwrap()[0].room.as_deref(),
        Some("team")
    );
    assert_eq!(s.ack(b, 1, before).unwrap(), room(a));
    assert_eq!(
        s.ack(b, 1, before).unwrap(),
        AckOutcome::Unknown,
        "acknowledged once"
    );
    assert_eq!(s.sweep(200).unwrap(), 1, "both devices are past `before`");
    assert_eq!(s.ack(b, 1, after).unwrap(), room(a));
    assert!(ids(s, b, 1).is_empty());
    assert_eq!(ids(s, b, 2), [after], "still pending on the other device");
    assert_eq!(
        s.sweep(200).unwrap(),
        0,
        "the second device has not acknowledged it"
    );
    assert_eq!(s.pending_room_count(r).unwrap(), 1);
    assert_eq!(s.ack(b, 2, after).unwrap(), room(a));
    assert_eq!(s.ack(b, 2, after).unwrap(), AckOutcome::Unknown);
    assert!(ids(s, b, 2).is_empty());
    assert_eq!(s.sweep(200).unwrap(), 1, "both devices acknowledged it");
    assert_eq!(s.pending_room_count(r).unwrap(), 0);

    // Revoking a device: what only it was missing goes at the next sweep.
    let missed = send(s, b"missed");
    assert_eq!(s.ack(b, 1, missed).unwrap(), room(a));
    assert_eq!(
        s.sweep(200).unwrap(),
        0,
        "the second device has not acknowledged it"
    );
    assert!(s.revoke_device(b, 2, 300).unwrap());
    assert_eq!(
        s.sweep(200).unwrap(),
        1,
        "only a revoked device was missing it"
    );

    // A member joining later is not sent the earlier messages.
    let early = send(s, b"early");
    s.add_member(r, c).unwrap();
    assert!(ids(s, c, 1).is_empty(), "sent before carol joined");
    let late = send(s, b"late");
    assert_eq!(ids(s, c, 1), [late]);
    assert_eq!(ids(s, b, 1), [early, late]);
    assert_eq!(s.ack(b, 1, early).unwrap(), room(a));
    assert_eq!(s.ack(b, 1, late).unwrap(), room(a));
    assert_eq!(
        s.sweep(200).unwrap(),
        1,
        "carol still has `late` to receive"
    );
    assert_eq!(s.ack(c, 1, late).unwrap(), room(a));
    assert_eq!(s.sweep(200).unwrap(), 1);

    // Leaving drops the member's device cursors: back in the room, none of its devices is
    // sent what came while it was away.
    let tablet = s.add_device(b, "tablet", 400).unwrap();
    s.remove_member(r, b).unwrap();
    let away = send(s, b"away");
    s.add_member(r, b).unwrap();
    assert!(ids(s, b, 1).is_empty(), "sent while bob was away");
    assert!(ids(s, b, tablet).is_empty(), "sent while bob was away");
    let back = send(s, b"back");
    assert_eq!(ids(s, b, 1), [back]);
    assert_eq!(ids(s, b, tablet), [back]);
    assert_eq!(ids(s, c, 1), [away, back]);
    assert_eq!(s.ack(c, 1, back).unwrap(), room(a));
    assert_eq!(
        s.sweep(200).unwrap(),
        1,
        "`away` is nobody's; bob has `back` to receive"
    );

    // Starting over: the new device is not sent what came before, and the revoked ones'
    // cursors hold nothing back.
    let fresh = s.set_identity(b, &[9; 32], &[9; 32], 500).unwrap();
    assert!(ids(s, b, fresh).is_empty(), "sent before the start-over");
    assert_eq!(s.ack(b, fresh, back).unwrap(), AckOutcome::Unknown);
    assert_eq!(
        s.sweep(200).unwrap(),
        1,
        "only revoked devices were missing `back`"
    );
    let last = send(s, b"last");
    assert_eq!(ids(s, b, fresh), [last]);
    assert_eq!(s.ack(b, fresh, last).unwrap(), room(a));
    assert_eq!(s.ack(c, 1, last).unwrap(), room(a));
    assert_eq!(s.sweep(200).unwrap(), 1);

    // The sender's other devices: what alice's laptop sends reaches her phone (and every
    // device of the others), never the laptop itself; it stays until the phone has it.
    let phone = s.add_device(a, "phone", 600).unwrap();
    let mut from_laptop = msg(None, Some(r), a, b"from the laptop");
    from_laptop.sender_device = 1;
    let from_laptop = s.insert_message(&from_laptop).unwrap();
    assert!(ids(s, a, 1).is_empty(), "not sent to the sending device");
    assert_eq!(ids(s, a, phone), [from_laptop]);
    assert_eq!(
        s.pending_for(a, phone, 0, 200, 10).unwrap()[0].sender_device,
        1,
        "names the sending device"
    );
    assert_eq!(s.ack(b, fresh, from_laptop).unwrap(), room(a));
    assert_eq!(s.ack(c, 1, from_laptop).unwrap(), room(a));
    assert_eq!(s.sweep(200).unwrap(), 0, "alice's phone has not read it");
    assert_eq!(s.ack(a, phone, from_laptop).unwrap(), room(a));
    assert_eq!(
        s.sweep(200).unwrap(),
        1,
        "every device but the sender's read it"
    );
    let mut from_phone = msg(None, Some(r), a, b"from the phone");
    from_phone.sender_device = phone;
    let from_phone = s.insert_message(&from_phone).unwrap();
    assert!(
        ids(s, a, phone).is_empty(),
        "not sent to the sending device"
    );
    assert_eq!(ids(s, a, 1), [from_phone]);

    // The cursors go with the room.
    s.delete_room(r).unwrap();
}

/// A room's roster chain: appended only at the next version, read back byte for byte, gone
/// with the room.
fn exercise_rosters(s: &mut dyn Store) {
    let a = s.create_account(&account("alice", 0, 100)).unwrap();
    s.confirm_account(a).unwrap();
    let r = s.create_room("team", a).unwrap();
    let other = s.create_room("club", a).unwrap();
    assert_eq!(s.latest_roster(r).unwrap(), None);
    assert_eq!(s.roster(r, 0).unwrap(), None);
    // The first is version 0: not 1, nor anything past.
    assert!(!s.append_roster(r, 1, b"v1").unwrap());
    assert!(!s.append_roster(r, u64::MAX, b"max").unwrap());
    assert!(s.append_roster(r, 0, b"v0").unwrap());
    // No version twice, no gap.
    assert!(!s.append_roster(r, 0, b"v0 again").unwrap());
    assert!(!s.append_roster(r, 2, b"v2").unwrap());
    assert!(s.append_roster(r, 1, b"v1").unwrap());
    assert!(s.append_roster(other, 0, b"club v0").unwrap());
    assert_eq!(s.latest_roster(r).unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(s.roster(r, 0).unwrap().as_deref(), Some(&b"v0"[..]));
    assert_eq!(s.roster(r, 1).unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(s.roster(r, 2).unwrap(), None);
    assert_eq!(s.roster(r, u64::MAX).unwrap(), None);
    assert_eq!(s.roster(other, 1).unwrap(), None);
    // Deleting a room deletes its chain; a new room of the same name starts again at 0.
    s.delete_room(r).unwrap();
    let again = s.create_room("team", a).unwrap();
    assert_eq!(s.latest_roster(again).unwrap(), None);
    assert_eq!(s.roster(again, 0).unwrap(), None);
    assert!(!s.append_roster(again, 2, b"v2").unwrap());
    assert!(s.append_roster(again, 0, b"new v0").unwrap());
    assert_eq!(
        s.roster(other, 0).unwrap().as_deref(),
        Some(&b"club v0"[..])
    );
}

#[test]
fn memory_store_behaves() {
    exercise(&mut MemoryStore::new());
}

#[test]
fn memory_store_links_devices() {
    exercise_linked_devices(&mut MemoryStore::new());
}

#[test]
fn sqlite_store_links_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise_linked_devices(&mut s);
}

#[test]
fn memory_store_hands_out_kem_prekeys() {
    exercise_kem_prekeys(&mut MemoryStore::new());
}

#[test]
fn sqlite_store_hands_out_kem_prekeys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise_kem_prekeys(&mut s);
    // Nothing of the revoked, replaced or deleted devices is left behind: one one-time KEM
    // prekey and one last-resort one, both of alice's new device.
    let rows: (i64, i64) = s
        .conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM device_kem_prekeys), \
             (SELECT COUNT(*) FROM devices WHERE kem_id IS NOT NULL OR kem_key IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, (1, 1));
}

#[test]
fn memory_store_delivers_room_messages_per_device() {
    exercise_room_devices(&mut MemoryStore::new());
}

#[test]
fn sqlite_store_delivers_room_messages_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise_room_devices(&mut s);
    // Nothing of the deleted room's cursors is left behind.
    let rows: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM room_cursors", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn memory_store_keeps_roster_chains() {
    exercise_rosters(&mut MemoryStore::new());
}

#[test]
fn sqlite_store_keeps_roster_chains() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise_rosters(&mut s);
    // Nothing of the deleted room's chain is left behind.
    let rows: i64 = s
        .conn
        .query_row("SELECT COUNT(*) FROM room_rosters", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

/// A database made by the previous schema (version 3, with data) opens: only the roster
/// migration runs, and what was there stays.
#[test]
fn sqlite_version_3_database_gains_rosters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 3; \
             INSERT INTO accounts (username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES ('alice', 'A', 'a@example.org', 'x', x'00', 1, x'00', x'00', 1); \
             INSERT INTO rooms (name, admin_id) VALUES ('team', 1); \
             INSERT INTO room_members (room_id, account_id, cursor) VALUES (1, 1, 0);",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    let version: i64 = s
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, sqlite::MIGRATIONS.len() as i64);
    let team = s.room("team").unwrap().unwrap();
    assert_eq!(team.members.len(), 1);
    assert!(s.append_roster(team.id, 0, b"v0").unwrap());
    assert_eq!(
        s.latest_roster(team.id).unwrap().as_deref(),
        Some(&b"v0"[..])
    );
}

/// A database of schema 6 (one device per account) opens at schema 7 without loss: the
/// account's signed and one-time prekeys, its session and its queued message are its device's.
#[test]
fn sqlite_version_6_database_keeps_keys_sessions_and_queue_for_its_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 6; \
             INSERT INTO accounts (id, username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, spk_id, spk_key, spk_sig, created_at, device_id) \
             VALUES (1, 'alice', 'A', 'a@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), \
               4, zeroblob(32), zeroblob(64), 1, 3); \
             INSERT INTO accounts (id, username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES (2, 'bob', 'B', 'b@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1); \
             INSERT INTO devices (account_id, device_id, added_at, last_seen) VALUES (1, 3, 1, 1); \
             INSERT INTO one_time_prekeys (account_id, prekey_id, key) VALUES (1, 12, zeroblob(32)); \
             INSERT INTO sessions (token_hash, account_id, expires_at) VALUES (zeroblob(32), 1, 900); \
             INSERT INTO messages (recipient_id, sender_id, sender, sent_at, expires_at, body) \
               VALUES (1, 2, 'bob', 5, 900, x'c0ffee');",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.active_devices(1).unwrap(), [3]);
    assert_eq!(s.session(&[0; 32], 0).unwrap().unwrap().device, Some(3));
    let bundle = s.take_bundle("alice", Some(3), true).unwrap().unwrap();
    assert_eq!((bundle.spk.id, bundle.prekey.map(|p| p.id)), (4, Some(12)));
    let queued = s.pending_for(1, 3, 0, 0, 10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].body.as_slice(), queued[0].sender_device),
        (&[0xc0, 0xff, 0xee][..], 1)
    );
    assert_eq!(
        s.ack(1, 3, queued[0].id).unwrap(),
        AckOutcome::Direct { sender_id: 2 }
    );
}

/// A database of schema 7 (one room cursor per member) opens at schema 8: each device starts at
/// its member's cursor (what the account had acknowledged), and acknowledges on its own from
/// there; a device added afterwards starts past every message.
#[test]
fn sqlite_version_7_database_keeps_member_room_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..7] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 7; \
             INSERT INTO accounts (id, username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES (1, 'alice', 'A', 'a@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1), \
               (2, 'bob', 'B', 'b@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1); \
             INSERT INTO devices (account_id, device_id, added_at, last_seen) \
               VALUES (1, 1, 1, 1), (2, 1, 1, 1); \
             INSERT INTO rooms (id, name, admin_id) VALUES (1, 'team', 1); \
             INSERT INTO messages (id, room_id, sender_id, sender, sent_at, expires_at, body) \
               VALUES (1, 1, 1, 'alice', 5, 900, x'01'), (2, 1, 1, 'alice', 5, 900, x'02'); \
             INSERT INTO room_members (room_id, account_id, cursor) VALUES (1, 1, 0), (1, 2, 1);",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    let ids = |s: &mut SqliteStore, device| -> Vec<u64> {
        s.pending_for(2, device, 0, 0, 10)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect()
    };
    assert_eq!(ids(&mut s, 1), [2], "bob had acknowledged message 1");
    assert_eq!(s.add_device(2, "laptop", 10).unwrap(), 2);
    assert!(ids(&mut s, 2).is_empty());
    assert_eq!(
        s.sweep(10).unwrap(),
        1,
        "message 1: every device is past it"
    );
    assert_eq!(s.ack(2, 1, 2).unwrap(), AckOutcome::Room { sender_id: 1 });
    assert_eq!(s.ack(2, 1, 2).unwrap(), AckOutcome::Unknown);
    assert_eq!(s.sweep(10).unwrap(), 1);
}

/// A database of schema 8 (receipts without devices) opens at schema 9: a kept receipt says
/// device 0, and new ones name theirs.
#[test]
fn sqlite_version_8_database_keeps_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..8] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 8; \
             INSERT INTO accounts (id, username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES (1, 'alice', 'A', 'a@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1); \
             INSERT INTO receipts (sender_id, server_id, recipient, expires_at) \
               VALUES (1, 41, 'bob', 900);",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    s.add_receipt(1, 42, "bob", 3, 900).unwrap();
    assert_eq!(
        s.take_receipts(1).unwrap(),
        [
            Receipt {
                server_id: 41,
                recipient: "bob".into(),
                device: 0
            },
            Receipt {
                server_id: 42,
                recipient: "bob".into(),
                device: 3
            }
        ]
    );
}

/// A database of schema 9 (before KEM prekeys) opens at schema 10: its devices keep their
/// signed prekeys and can publish KEM prekeys.
#[test]
fn sqlite_version_9_database_gains_kem_prekeys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..9] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 9; \
             INSERT INTO accounts (id, username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES (1, 'alice', 'A', 'a@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1); \
             INSERT INTO devices (account_id, device_id, added_at, last_seen, spk_id, spk_key, \
               spk_sig) VALUES (1, 1, 1, 1, 5, zeroblob(32), zeroblob(64));",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    let t = s.take_kem_bundle("alice", 1, true).unwrap().unwrap();
    assert_eq!((t.bundle.spk.id, t.kem_prekey), (5, None));
    s.set_last_resort_kem_prekey(1, 1, &kem(3, 3)).unwrap();
    let t = s.take_kem_bundle("alice", 1, true).unwrap().unwrap();
    assert_eq!(t.kem_prekey, Some(kem(3, 3)));
}

/// A database of the previous schema (version 4, before device ids) opens: every account is on
/// device 1, and starting over moves it to device 2.
#[test]
fn sqlite_version_4_database_gains_device_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &sqlite::MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4; \
             INSERT INTO accounts (username, name, email, password_phc, totp_secret, confirmed, \
               identity_sig, identity_dh, created_at) \
             VALUES ('alice', 'A', 'a@example.org', 'x', x'00', 1, zeroblob(32), zeroblob(32), 1);",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&path).unwrap();
    let alice = s.account_by_username("alice").unwrap().unwrap();
    assert_eq!(alice.device_id, 1);
    assert_eq!(alice.password_phc, "x");
    s.set_identity(alice.id, &[7; 32], &[8; 32], 2).unwrap();
    let alice = s.account_by_username("alice").unwrap().unwrap();
    assert_eq!((alice.device_id, alice.identity_dh), (2, [8; 32]));
}

#[test]
fn memory_store_recovers_accounts() {
    exercise_recovery(&mut MemoryStore::new());
}

#[test]
fn sqlite_store_recovers_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise_recovery(&mut s);
}

#[test]
fn sqlite_store_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    exercise(&mut s);
}

#[test]
fn sqlite_is_wal_full_and_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(SqliteStore::open(&path).unwrap());
    // Reopening does not re-run migrations (it would fail on existing tables).
    let s = SqliteStore::open(&path).unwrap();
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = s
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    let version: i64 = s
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (mode.as_str(), sync, version),
        ("wal", 2, sqlite::MIGRATIONS.len() as i64)
    );
}

#[test]
fn a_failing_job_does_not_undo_its_batch_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::spawn(SqliteStore::open(&dir.path().join("t.db")).unwrap()).unwrap();
    smol::block_on(async {
        let ok = db.call(|s| s.create_account(&account("alice", 0, 1)));
        let bad = db.call(|s| {
            s.create_account(&account("bob", 0, 1))?;
            Err::<(), _>(StoreError::Corrupt("forced"))
        });
        let (ok, bad) = futures_join(ok, bad).await;
        assert!(ok.is_ok());
        assert!(bad.is_err());
        let names = db
            .call(|s| -> Result<_, StoreError> {
                Ok((
                    s.account_by_username("alice")?.is_some(),
                    s.account_by_username("bob")?.is_some(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(names, (true, false), "bob's job rolled back alone");
    });
    db.shutdown();
}

async fn futures_join<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> (A, B) {
    smol::future::zip(a, b).await
}

#[cfg(feature = "postgres")]
/// A fresh database on the cluster in `SEALROOM_TEST_DATABASE` (ci/with-postgres), dropped
/// with the value; `None`, after saying the test is skipped, when there is none.
struct PgTestDb {
    admin: String,
    name: String,
    params: String,
}

#[cfg(feature = "postgres")]
impl PgTestDb {
    fn create(test: &str) -> Option<Self> {
        let Some(admin) = std::env::var("SEALROOM_TEST_DATABASE")
            .ok()
            .filter(|s| !s.trim().is_empty())
        else {
            assert!(
                std::env::var_os("SEALROOM_REQUIRE_POSTGRES").is_none(),
                "{test}: SEALROOM_REQUIRE_POSTGRES is set but there is no test cluster"
            );
            // Straight to stderr, past the test harness's capture: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs PostgreSQL (run under ci/with-postgres)"
            );
            return None;
        };
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).unwrap();
        let name = format!("u_{}", hex::encode(raw));
        let params = create_database(&admin, &name).unwrap();
        Some(Self {
            admin,
            name,
            params,
        })
    }
}

#[cfg(feature = "postgres")]
impl Drop for PgTestDb {
    fn drop(&mut self) {
        let _ = drop_database(&self.admin, &self.name);
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_behaves_and_migrates_once() {
    let Some(db) = PgTestDb::create("postgres_store_behaves_and_migrates_once") else {
        return;
    };
    let mut s = PgStore::open(&db.params).unwrap();
    exercise(&mut s);
    drop(s);
    // Reopening does not re-run migrations (it would fail on existing tables).
    drop(PgStore::open(&db.params).unwrap());
    let mut c = pg_connect(&db.params).unwrap();
    let version: i32 = c
        .query_one("SELECT version FROM sealroom_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 10);
    let sync: String = c.query_one("SHOW synchronous_commit", &[]).unwrap().get(0);
    assert_eq!(sync, "on");
}

/// A job whose statement fails inside the database (here a duplicate session token) is undone
/// alone: its neighbours in the batch still commit. Under PostgreSQL the failed statement
/// aborts the transaction, so this proves the savepoint is rolled back before the next job.
fn failing_statement_is_undone_alone(db: Db) {
    smol::block_on(async {
        let alice = db
            .call(|s| s.create_account(&account("alice", 0, 1)))
            .await
            .unwrap();
        db.call(move |s| s.create_session(alice, &[7; 32], 100, Some(1)))
            .await
            .unwrap();
        let dup = db.call(move |s| {
            s.create_account(&account("bob", 0, 1))?;
            s.create_session(alice, &[7; 32], 100, Some(1))
        });
        let ok = db.call(|s| s.create_account(&account("carol", 0, 1)));
        let (dup, ok) = futures_join(dup, ok).await;
        assert!(dup.is_err());
        assert!(ok.is_ok());
        let names = db
            .call(|s| -> Result<_, StoreError> {
                Ok((
                    s.account_by_username("bob")?.is_some(),
                    s.account_by_username("carol")?.is_some(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(names, (false, true));
    });
    db.shutdown();
}

#[test]
fn sqlite_failing_statement_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    failing_statement_is_undone_alone(
        Db::spawn(SqliteStore::open(&dir.path().join("t.db")).unwrap()).unwrap(),
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_failing_statement_is_undone_alone() {
    let Some(db) = PgTestDb::create("postgres_failing_statement_is_undone_alone") else {
        return;
    };
    failing_statement_is_undone_alone(Db::spawn(PgStore::open(&db.params).unwrap()).unwrap());
}

/// Two writers (two nodes) inserting messages: the second waits for the first's commit before
/// taking an id, so ids become visible in increasing order and a delivery task reading "after
/// the last id it sent" can never skip one committed late.
#[cfg(feature = "postgres")]
#[test]
fn postgres_message_ids_become_visible_in_order_across_writers() {
    let Some(db) = PgTestDb::create("postgres_message_ids_become_visible_in_order_across_writers")
    else {
        return;
    };
    let mut a = PgStore::open(&db.params).unwrap();
    let mut b = PgStore::open(&db.params).unwrap();
    let alice = a.create_account(&account("alice", 0, 1)).unwrap();
    let bob = a.create_account(&account("bob", 0, 1)).unwrap();

    a.begin_batch().unwrap();
    let first = a
        .insert_message(&msg(Some(bob), None, alice, b"one"))
        .unwrap();
    // Writer B, on a thread of its own, inserts while A's transaction is open.
    let second = std::thread::spawn(move || {
        b.begin_batch().unwrap();
        let id = b
            .insert_message(&msg(Some(bob), None, alice, b"two"))
            .unwrap();
        b.commit_batch().unwrap();
        id
    });
    // B must be waiting on the message-id lock (bounded wait for it to get there).
    let mut watcher = pg_connect(&db.params).unwrap();
    let mut waiting = 0i64;
    for _ in 0..200 {
        waiting = watcher
            .query_one(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        std::thread::sleep(core::time::Duration::from_millis(25));
    }
    assert_eq!(waiting, 1, "the second writer did not wait for the first");
    a.commit_batch().unwrap();
    let second = second.join().unwrap();
    assert!(second > first, "{second} committed after {first}");
    let mut reader = PgStore::open(&db.params).unwrap();
    let ids: Vec<u64> = reader
        .pending_for(bob, 1, 0, 0, 10)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![first, second]);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_links_devices() {
    let Some(db) = PgTestDb::create("postgres_store_links_devices") else {
        return;
    };
    let mut s = PgStore::open(&db.params).unwrap();
    exercise_linked_devices(&mut s);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_hands_out_kem_prekeys() {
    let Some(db) = PgTestDb::create("postgres_store_hands_out_kem_prekeys") else {
        return;
    };
    let mut s = PgStore::open(&db.params).unwrap();
    exercise_kem_prekeys(&mut s);
    let mut c = pg_connect(&db.params).unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT COUNT(*) FROM device_kem_prekeys), \
             (SELECT COUNT(*) FROM devices WHERE kem_id IS NOT NULL OR kem_key IS NOT NULL)",
            &[],
        )
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (1, 1),
        "nothing of the revoked, replaced or deleted devices is left behind"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_delivers_room_messages_per_device() {
    let Some(db) = PgTestDb::create("postgres_store_delivers_room_messages_per_device") else {
        return;
    };
    let mut s = PgStore::open(&db.params).unwrap();
    exercise_room_devices(&mut s);
    let mut c = pg_connect(&db.params).unwrap();
    let rows: i64 = c
        .query_one("SELECT COUNT(*) FROM room_cursors", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        rows, 0,
        "nothing of the deleted room's cursors is left behind"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_store_keeps_roster_chains() {
    let Some(db) = PgTestDb::create("postgres_store_keeps_roster_chains") else {
        return;
    };
    let mut s = PgStore::open(&db.params).unwrap();
    exercise_rosters(&mut s);
    let mut c = pg_connect(&db.params).unwrap();
    let rows: i64 = c
        .query_one("SELECT COUNT(*) FROM room_rosters", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 2);
}

/// Two writers (two nodes) appending the same roster version at once: the second waits for
/// the first's commit, then stores nothing; neither a duplicate nor a gap.
#[cfg(feature = "postgres")]
#[test]
fn postgres_roster_append_race_stores_one() {
    let Some(db) = PgTestDb::create("postgres_roster_append_race_stores_one") else {
        return;
    };
    let mut a = PgStore::open(&db.params).unwrap();
    let mut b = PgStore::open(&db.params).unwrap();
    let alice = a.create_account(&account("alice", 0, 1)).unwrap();
    let room = a.create_room("team", alice).unwrap();
    assert!(a.append_roster(room, 0, b"v0").unwrap());

    a.begin_batch().unwrap();
    assert!(a.append_roster(room, 1, b"v1 by a").unwrap());
    let second = std::thread::spawn(move || {
        b.begin_batch().unwrap();
        let stored = b.append_roster(room, 1, b"v1 by b").unwrap();
        b.commit_batch().unwrap();
        stored
    });
    let mut watcher = pg_connect(&db.params).unwrap();
    let mut waiting = 0i64;
    for _ in 0..200 {
        waiting = watcher
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        std::thread::sleep(core::time::Duration::from_millis(25));
    }
    assert_eq!(waiting, 1, "the second writer did not wait for the first");
    a.commit_batch().unwrap();
    assert!(!second.join().unwrap(), "version 1 stored twice");
    let mut reader = PgStore::open(&db.params).unwrap();
    assert_eq!(
        reader.latest_roster(room).unwrap().as_deref(),
        Some(&b"v1 by a"[..])
    );
    assert_eq!(
        reader.roster(room, 1).unwrap().as_deref(),
        Some(&b"v1 by a"[..])
    );
}
