extern crate std;
use std::vec;
use std::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const ROOM: [u8; 16] = [7; 16];
type Small = Room<4, 4>;

fn trio(rng: &mut ChaCha20Rng) -> [Small; 3] {
    let ids = [[1u8; 32], [2; 32], [3; 32]];
    let mut rooms = ids.map(|id| Small::create(rng, ROOM, id, 0));
    for (i, room) in rooms.iter_mut().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i != j {
                room.add_member(id).unwrap();
            }
        }
    }
    exchange(&mut rooms);
    rooms
}

fn exchange(rooms: &mut [Small; 3]) {
    let dists: Vec<_> = rooms.iter().map(Small::distribution).collect();
    for (i, room) in rooms.iter_mut().enumerate() {
        for (j, d) in dists.iter().enumerate() {
            if i != j {
                let back = SenderKeyDistribution::from_bytes(&*d.to_bytes()).unwrap();
                room.handle_distribution(&back, back.sender()).unwrap();
            }
        }
    }
}

fn seal(room: &mut Small, pt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; pt.len() + ROOM_OVERHEAD];
    assert_eq!(room.encrypt(pt, &mut out).unwrap(), out.len());
    out
}

fn open(room: &mut Small, m: &[u8]) -> Result<Vec<u8>, RoomDecryptError> {
    let mut out = vec![0u8; m.len()];
    let p = room.decrypt(m, &mut out)?;
    out.truncate(p.len);
    Ok(out)
}

#[test]
fn three_members_exchange_messages() {
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let mut r = trio(&mut rng);
    let m = seal(&mut r[0], b"hi all");
    assert_eq!(open(&mut r[1], &m).unwrap(), b"hi all");
    assert_eq!(open(&mut r[2], &m).unwrap(), b"hi all");
    assert_eq!(open(&mut r[1], &m), Err(RoomDecryptError::Replay));
    let ms: Vec<_> = (0..4u8).map(|i| seal(&mut r[2], &[i])).collect();
    assert_eq!(open(&mut r[0], &ms[3]).unwrap(), [3]);
    assert_eq!(r[0].skipped_key_count(), 3);
    assert_eq!(open(&mut r[0], &ms[1]).unwrap(), [1]);
    assert_eq!(open(&mut r[0], &ms[1]), Err(RoomDecryptError::Replay));
}

#[test]
fn tamper_signature_epoch_and_skip_limits() {
    let mut rng = ChaCha20Rng::from_seed([2; 32]);
    let mut r = trio(&mut rng);
    let m = seal(&mut r[0], b"signed");
    for i in 0..m.len() {
        let mut bad = m.clone();
        bad[i] ^= 1;
        let err = open(&mut r[1], &bad).unwrap_err();
        assert!(
            matches!(
                err,
                RoomDecryptError::BadSignature
                    | RoomDecryptError::Malformed
                    | RoomDecryptError::WrongRoom
                    | RoomDecryptError::UnknownSender
                    | RoomDecryptError::WrongEpoch
            ),
            "byte {i}: {err:?}"
        );
    }
    assert_eq!(open(&mut r[1], &m).unwrap(), b"signed");
    let far: Vec<_> = (0..6).map(|_| seal(&mut r[0], b"x")).collect();
    assert_eq!(
        open(&mut r[1], &far[5]),
        Err(RoomDecryptError::TooManySkipped)
    );
    assert_eq!(open(&mut r[1], &far[4]).unwrap(), b"x");
}

#[test]
fn removal_starts_new_epoch_and_excludes_the_removed() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let mut r = trio(&mut rng);
    let old = seal(&mut r[0], b"epoch 0");
    // Member 3 leaves: 1 and 2 remove it and start epoch 1.
    r[0].remove_member(&mut rng, &[3; 32]).unwrap();
    r[1].remove_member(&mut rng, &[3; 32]).unwrap();
    assert_eq!(r[0].epoch(), 1);
    // Old-epoch keys are forgotten once the new epoch starts.
    assert_eq!(open(&mut r[1], &old), Err(RoomDecryptError::UnknownSender));
    let d0 = r[0].distribution();
    let d1 = r[1].distribution();
    r[1].handle_distribution(&d0, &[1; 32]).unwrap();
    r[0].handle_distribution(&d1, &[2; 32]).unwrap();
    let new = seal(&mut r[0], b"epoch 1");
    assert_eq!(open(&mut r[1], &new).unwrap(), b"epoch 1");
    // The removed member has no key for epoch 1 and may not distribute into the room.
    assert_eq!(open(&mut r[2], &new), Err(RoomDecryptError::WrongEpoch));
    assert_eq!(
        r[0].handle_distribution(&r[2].distribution(), &[3; 32]),
        Err(DistributionError::WrongEpoch)
    );
    r[2].start_epoch(&mut rng, 1).unwrap();
    let d2 = r[2].distribution();
    assert_eq!(
        r[0].handle_distribution(&d2, &[3; 32]),
        Err(DistributionError::NotMember)
    );
}

#[test]
fn distribution_checks() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    let mut r = trio(&mut rng);
    let d = r[0].distribution();
    assert_eq!(
        r[1].handle_distribution(&d, &[2; 32]),
        Err(DistributionError::SenderMismatch)
    );
    assert_eq!(r[1].handle_distribution(&d, &[1; 32]), Ok(()));
    let mut other = Small::create(&mut rng, [8; 16], [1; 32], 0);
    other.add_member(&[2; 32]).unwrap();
    assert_eq!(
        other.handle_distribution(&r[1].distribution(), &[2; 32]),
        Err(DistributionError::WrongRoom)
    );
    let fresh = Small::create(&mut rng, ROOM, [1; 32], 0).distribution();
    assert_eq!(
        r[1].handle_distribution(&fresh, &[1; 32]),
        Err(DistributionError::EpochConflict)
    );
    let bytes = d.to_bytes();
    assert_eq!(
        SenderKeyDistribution::from_bytes(&bytes[..120]).unwrap_err(),
        DistributionError::Malformed
    );
    let mut v = *bytes;
    v[0] = 9;
    assert_eq!(
        SenderKeyDistribution::from_bytes(&v).unwrap_err(),
        DistributionError::UnknownVersion
    );
    assert_eq!(std::format!("{d:?}"), "SenderKeyDistribution([redacted])");
}

#[test]
fn a_room_at_the_last_epoch_refuses_a_removal_and_changes_nothing() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let mut room = Small::create(&mut rng, ROOM, [1; 32], u32::MAX);
    room.add_member(&[2; 32]).unwrap();
    let before = room.distribution();
    assert_eq!(
        room.remove_member(&mut rng, &[2; 32]),
        Err(MembershipError::StaleEpoch)
    );
    // Still a member, same epoch, same keys: nothing half-done.
    assert!(room.is_member(&[2; 32]));
    assert_eq!(room.epoch(), u32::MAX);
    assert_eq!(room.distribution().to_bytes(), before.to_bytes());
}

#[test]
fn membership_limits() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut room = Room::<2, 4>::create(&mut rng, ROOM, [1; 32], 0);
    room.add_member(&[2; 32]).unwrap();
    assert_eq!(
        room.add_member(&[2; 32]),
        Err(MembershipError::AlreadyMember)
    );
    room.add_member(&[3; 32]).unwrap();
    assert_eq!(room.add_member(&[4; 32]), Err(MembershipError::RoomFull));
    assert_eq!(
        room.remove_member(&mut rng, &[9; 32]),
        Err(MembershipError::NotMember)
    );
    assert_eq!(
        room.start_epoch(&mut rng, 0),
        Err(MembershipError::StaleEpoch)
    );
}

#[test]
fn state_round_trip() {
    let mut rng = ChaCha20Rng::from_seed([6; 32]);
    let mut r = trio(&mut rng);
    let ms: Vec<_> = (0..3u8).map(|i| seal(&mut r[0], &[i])).collect();
    open(&mut r[1], &ms[2]).unwrap();
    let mut buf = vec![0u8; Small::STATE_LEN];
    r[1].write_state(&mut buf).unwrap();
    let mut back = Small::read_state(&buf).unwrap();
    let mut again = vec![0u8; Small::STATE_LEN];
    back.write_state(&mut again).unwrap();
    assert_eq!(buf, again);
    assert_eq!(open(&mut back, &ms[0]).unwrap(), [0]);
    let next = seal(&mut back, b"from restored");
    assert_eq!(open(&mut r[0], &next).unwrap(), b"from restored");
    assert_eq!(Room::<32, 64>::STATE_LEN, 7839);
}

#[test]
fn sender_ids_differ_by_device_and_identity() {
    let a = room_sender_id(&[1; 32], 1);
    assert_ne!(a, room_sender_id(&[1; 32], 2));
    assert_ne!(a, room_sender_id(&[2; 32], 1));
    assert_eq!(a, room_sender_id(&[1; 32], 1));
    // Never the identity itself: state from before sender ids is told apart by that.
    assert_ne!(a, [1; 32]);
}

#[test]
fn removing_all_devices_of_a_member_starts_one_epoch_and_shuts_each_out() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    // Our device, and a member with two devices.
    let [mut ours, mut phone, mut laptop] = trio(&mut rng);
    assert_eq!(ours.own_sender(), &[1; 32]);
    let before = ours.epoch();
    // Removing ids the room does not track changes nothing.
    assert_eq!(ours.remove_members(&mut rng, &[[9; 32]]), Ok(0));
    assert_eq!(ours.epoch(), before);
    assert_eq!(
        ours.remove_members(&mut rng, &[[2; 32], [3; 32], [9; 32]]),
        Ok(2)
    );
    assert_eq!(ours.epoch(), before + 1, "one new epoch for both devices");
    assert!(!ours.is_member(&[2; 32]) && !ours.is_member(&[3; 32]));
    // Neither device can read what we send next, and their messages are refused.
    let m = seal(&mut ours, b"after");
    let dist = SenderKeyDistribution::from_bytes(&*ours.distribution().to_bytes()).unwrap();
    assert!(phone.handle_distribution(&dist, dist.sender()).is_ok());
    let from_phone = seal(&mut phone, b"hi");
    assert_eq!(
        open(&mut ours, &from_phone),
        Err(RoomDecryptError::UnknownSender)
    );
    let from_laptop = seal(&mut laptop, b"hi");
    assert_eq!(
        open(&mut ours, &from_laptop),
        Err(RoomDecryptError::UnknownSender)
    );
    // (The removed phone could take a key handed to it, which is why a client only sends
    // keys to devices of members the roster lists; what it had before is useless.)
    assert!(open(&mut laptop, &m).is_err());
}

#[test]
fn removing_devices_at_the_last_epoch_changes_nothing() {
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let mut room = Small::create(&mut rng, ROOM, [1; 32], u32::MAX);
    room.add_member(&[2; 32]).unwrap();
    assert_eq!(
        room.remove_members(&mut rng, &[[2; 32]]),
        Err(MembershipError::StaleEpoch)
    );
    assert!(room.is_member(&[2; 32]));
}
