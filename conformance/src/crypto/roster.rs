//! `roster.json`: signed roster chains (PROTOCOL.md §4.7), accepted and refused.
//!
//! Each case is a chain of signed rosters: the first is checked as a room's first roster, each
//! next one against the one before. Every roster is encoded here from its fields and signed
//! with the bare Ed25519 primitive (so refused rosters that `write_roster` would never write,
//! out of order or malformed, can be made); for the well-formed ones the encoding must equal
//! `write_roster`'s. A checker parses the chain and compares the outcome, and for accepted
//! chains the parsed fields, hashes and departures, with the file.

use proto_core::primitives::{ed25519_public, ed25519_sign};
use proto_core::{
    IdentityKeyPair, ROSTER_LABEL, Roster, RosterError, RosterFields, RosterMember, write_roster,
};
use serde_json::{Value, json};

use super::*;

/// The people of the vectors: name → Ed25519 seed.
const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "mallory"];

fn seed(name: &str) -> [u8; 32] {
    secret(&format!("roster/{name}/sig"))
}

fn key(name: &str) -> [u8; 32] {
    ed25519_public(&seed(name))
}

/// A roster's fields, as names; `members` may hold (username, key owner) pairs that differ
/// (a changed key) and any order (to make refused rosters).
#[derive(Clone)]
struct Spec {
    room_id: [u8; 16],
    version: u64,
    epoch: u32,
    prev: [u8; 32],
    admins: Vec<[u8; 32]>,
    members: Vec<(String, [u8; 32])>,
    signer: &'static str,
}

const ROOM: [u8; 16] = [0x52; 16];

impl Spec {
    fn new(version: u64, epoch: u32, prev: [u8; 32], admins: &[&str], members: &[&str]) -> Self {
        let mut admins: Vec<[u8; 32]> = admins.iter().map(|a| key(a)).collect();
        admins.sort_unstable();
        let mut members: Vec<(String, [u8; 32])> =
            members.iter().map(|m| ((*m).to_owned(), key(m))).collect();
        members.sort();
        Self {
            room_id: ROOM,
            version,
            epoch,
            prev,
            admins,
            members,
            signer: "alice",
        }
    }

    fn by(mut self, signer: &'static str) -> Self {
        self.signer = signer;
        self
    }

    /// The encoding, from the fields, as PROTOCOL.md §4.7 writes it.
    fn encode(&self) -> Vec<u8> {
        let mut e = self.room_id.to_vec();
        e.extend_from_slice(&self.version.to_be_bytes());
        e.extend_from_slice(&self.epoch.to_be_bytes());
        e.extend_from_slice(&self.prev);
        e.push(u8::try_from(self.admins.len()).unwrap_or(u8::MAX));
        for a in &self.admins {
            e.extend_from_slice(a);
        }
        e.extend_from_slice(
            &u16::try_from(self.members.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for (name, k) in &self.members {
            e.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            e.extend_from_slice(name.as_bytes());
            e.extend_from_slice(k);
        }
        e.extend_from_slice(&key(self.signer));
        e
    }

    /// Encoding || Ed25519(signer, label || encoding).
    fn signed(&self) -> Vec<u8> {
        let encoding = self.encode();
        let signature = ed25519_sign(&seed(self.signer), &[ROSTER_LABEL, &encoding].concat());
        [encoding, signature.to_vec()].concat()
    }

    /// The signed roster; if proto-core's writer accepts the fields, its bytes must be these.
    fn bytes(&self) -> R<Vec<u8>> {
        let bytes = self.signed();
        let members: Vec<RosterMember<'_>> = self
            .members
            .iter()
            .map(|(username, identity)| RosterMember {
                username,
                identity: *identity,
            })
            .collect();
        let fields = RosterFields {
            room_id: self.room_id,
            version: self.version,
            epoch: self.epoch,
            prev: self.prev,
            admins: &self.admins,
            members: &members,
        };
        let signer = IdentityKeyPair::from_secrets(&seed(self.signer), &[0; 32]);
        let mut out = vec![0u8; bytes.len() + ROSTER_LABEL.len()];
        if let Ok(n) = write_roster(&fields, &signer, &mut out) {
            ensure(out.get(..n) == Some(bytes.as_slice()), || {
                "write_roster's bytes differ from the primitives'".to_owned()
            })?;
        }
        Ok(bytes)
    }

    fn hash_of(&self) -> R<[u8; 32]> {
        let bytes = self.bytes()?;
        let r = Roster::parse(&bytes).map_err(|e| format!("a base roster does not parse: {e}"))?;
        Ok(r.hash())
    }
}

/// What a chain does: `Ok(departed names per step)` or the first error.
fn run_chain(rosters: &[Vec<u8>]) -> Result<Vec<Vec<String>>, RosterError> {
    let parsed = rosters
        .iter()
        .map(|b| Roster::parse(b))
        .collect::<Result<Vec<_>, _>>()?;
    let first = parsed.first().ok_or(RosterError::Truncated)?;
    first.check_first()?;
    let mut departed = Vec::new();
    for pair in parsed.windows(2) {
        let [prev, next] = pair else { continue };
        prev.check_next(next)?;
        departed.push(prev.departed(next).map(|m| m.username.to_owned()).collect());
    }
    Ok(departed)
}

fn summary(bytes: &[u8]) -> R<Value> {
    let r = Roster::parse(bytes).map_err(|e| e.to_string())?;
    Ok(json!({
        "version": r.version(),
        "epoch": r.epoch(),
        "signer": hx(r.signer()),
        "admins": r.admins().map(|a| hx(&a)).collect::<Vec<_>>(),
        "members": r.members().map(|m| json!({"username": m.username, "identity": hx(&m.identity)})).collect::<Vec<_>>(),
        "hash": hx(&r.hash()),
    }))
}

/// A case from a chain's bytes: its outcome (and for an accepted chain, what each roster says).
fn chain_case(description: &str, rosters: &[Vec<u8>]) -> R<Value> {
    let mut case = json!({
        "description": description,
        "rosters": rosters.iter().map(|r| hx(r)).collect::<Vec<_>>(),
    });
    match run_chain(rosters) {
        Ok(departed) => {
            case["expect"] = json!("accept");
            case["parsed"] =
                Value::Array(rosters.iter().map(|r| summary(r)).collect::<R<Vec<_>>>()?);
            case["departed"] = json!(departed);
        }
        Err(e) => case["expect"] = json!(format!("reject:{}", e.name())),
    }
    Ok(case)
}

fn chain(specs: &[Spec]) -> R<Vec<Vec<u8>>> {
    specs.iter().map(Spec::bytes).collect()
}

pub(super) fn gen_roster() -> R<Value> {
    let v0 = Spec::new(0, 0, [0; 32], &["alice"], &["alice", "bob", "carol"]);
    let h0 = v0.hash_of()?;
    let next =
        |epoch: u32, admins: &[&str], members: &[&str]| Spec::new(1, epoch, h0, admins, members);
    let mut cases = Vec::new();
    let mut accept = |d: &str, specs: &[Spec], want_ok: bool| -> R<()> {
        let case = chain_case(d, &chain(specs)?)?;
        let ok = case["expect"] == "accept";
        ensure(ok == want_ok, || format!("{d}: outcome {}", case["expect"]))?;
        cases.push(case);
        Ok(())
    };
    // ---- accepted ----
    accept(
        "a first roster: alice (admin), bob, carol",
        core::slice::from_ref(&v0),
        true,
    )?;
    accept(
        "alice adds dave: same epoch",
        &[
            v0.clone(),
            next(0, &["alice"], &["alice", "bob", "carol", "dave"]),
        ],
        true,
    )?;
    accept(
        "alice removes carol: epoch + 1",
        &[v0.clone(), next(1, &["alice"], &["alice", "bob"])],
        true,
    )?;
    accept(
        "bob leaves, signing it himself: epoch + 1",
        &[
            v0.clone(),
            next(1, &["alice"], &["alice", "carol"]).by("bob"),
        ],
        true,
    )?;
    accept(
        "alice makes bob an admin; then bob adds dave",
        &[
            v0.clone(),
            next(0, &["alice", "bob"], &["alice", "bob", "carol"]),
            Spec::new(
                2,
                0,
                next(0, &["alice", "bob"], &["alice", "bob", "carol"]).hash_of()?,
                &["alice", "bob"],
                &["alice", "bob", "carol", "dave"],
            )
            .by("bob"),
        ],
        true,
    )?;
    let mut swapped = next(1, &["alice"], &["alice", "bob", "carol"]);
    if let Some(m) = swapped.members.iter_mut().find(|m| m.0 == "carol") {
        m.1 = key("mallory");
    }
    accept(
        "carol's identity key changes (alice re-adds her with the new key): a departure, epoch + 1",
        &[v0.clone(), swapped.clone()],
        true,
    )?;
    // ---- refused: the chain ----
    let mut same_epoch_swap = swapped;
    same_epoch_swap.epoch = 0;
    accept(
        "carol's key changes without a new epoch",
        &[v0.clone(), same_epoch_swap],
        false,
    )?;
    accept(
        "alice removes carol without a new epoch",
        &[v0.clone(), next(0, &["alice"], &["alice", "bob"])],
        false,
    )?;
    accept(
        "alice adds dave and moves the epoch",
        &[
            v0.clone(),
            next(1, &["alice"], &["alice", "bob", "carol", "dave"]),
        ],
        false,
    )?;
    accept(
        "bob (not an admin) removes carol",
        &[v0.clone(), next(1, &["alice"], &["alice", "bob"]).by("bob")],
        false,
    )?;
    accept(
        "bob leaves and adds mallory in the same roster",
        &[
            v0.clone(),
            next(1, &["alice"], &["alice", "carol", "mallory"]).by("bob"),
        ],
        false,
    )?;
    accept(
        "the server's own key adds mallory",
        &[
            v0.clone(),
            next(0, &["alice"], &["alice", "bob", "carol", "mallory"]).by("mallory"),
        ],
        false,
    )?;
    accept(
        "version 2 follows version 0",
        &[
            v0.clone(),
            Spec::new(2, 0, h0, &["alice"], &["alice", "bob", "carol", "dave"]),
        ],
        false,
    )?;
    accept(
        "prev is not the hash of version 0 (a fork)",
        &[
            v0.clone(),
            Spec::new(
                1,
                0,
                [7; 32],
                &["alice"],
                &["alice", "bob", "carol", "dave"],
            ),
        ],
        false,
    )?;
    let mut other_room = next(0, &["alice"], &["alice", "bob", "carol", "dave"]);
    other_room.room_id = [0x53; 16];
    accept(
        "the next roster is for another room",
        &[v0.clone(), other_room],
        false,
    )?;
    let top = Spec::new(0, u32::MAX, [0; 32], &["alice"], &["alice", "bob"]);
    accept(
        "removing bob at epoch u32::MAX",
        &[
            top.clone(),
            Spec::new(1, 0, top.hash_of()?, &["alice"], &["alice"]),
        ],
        false,
    )?;
    accept(
        "a first roster with version 1",
        &[Spec::new(1, 0, [0; 32], &["alice"], &["alice", "bob"])],
        false,
    )?;
    accept(
        "a first roster signed by bob, who is not its admin",
        &[Spec::new(0, 0, [0; 32], &["alice"], &["alice", "bob"]).by("bob")],
        false,
    )?;
    // ---- refused: one roster's bytes ----
    let mut unsorted = v0.clone();
    unsorted.members.reverse();
    accept("members not in ascending order", &[unsorted], false)?;
    let mut upper = v0.clone();
    if let Some(m) = upper.members.get_mut(1) {
        m.0 = "Bob".to_owned();
    }
    accept("a username that is not folded (Bob)", &[upper], false)?;
    let mut no_admin = v0.clone();
    no_admin.admins.clear();
    accept("no admin", &[no_admin], false)?;
    let mut outsider = v0.clone();
    outsider.admins = vec![key("mallory")];
    accept("an admin who is not a member", &[outsider], false)?;
    let mut crowd = Spec::new(0, 0, [0; 32], &["alice"], &["alice"]);
    crowd
        .members
        .extend((0..256).map(|i| (format!("u{i:03}"), [1; 32])));
    crowd.members.sort();
    accept("257 members", &[crowd], false)?;
    let good = v0.bytes()?;
    let mut rosters = Vec::new();
    let mut flipped = good.clone();
    if let Some(b) = flipped.get_mut(40) {
        *b ^= 1;
    }
    rosters.push(("a flipped bit (the signature fails)", flipped));
    rosters.push(("the signature cut short", good[..good.len() - 1].to_vec()));
    rosters.push((
        "a byte after the signature",
        [good.as_slice(), &[0]].concat(),
    ));
    for (d, bytes) in rosters {
        let case = chain_case(d, &[bytes])?;
        ensure(case["expect"] != "accept", || format!("{d}: accepted"))?;
        cases.push(case);
    }
    Ok(json!({
        "description": "Signed rosters (PROTOCOL.md §4.7). Each case is a chain: the first roster is checked as a room's first, each next one against the one before; expect is the outcome of the whole chain. Rosters: room_id 16 | version u64 | epoch u32 | prev 32 | n_admins u8 | admins 32 each | n_members u16 | members (len u8 | username | IKs 32) | signer 32 | Ed25519(signer, \"Sealroom Roster v1\" || all before). hash = SHA-256 of the whole signed roster.",
        "identities": PEOPLE.iter().map(|p| json!({"name": p, "sig_private": hx(&seed(p)), "sig_public": hx(&key(p))})).collect::<Vec<_>>(),
        "cases": cases,
    }))
}

pub(super) fn check_roster(case: &Value) -> R<()> {
    let rosters = list(case, "rosters")?
        .iter()
        .map(|r| hex::decode(r.as_str().unwrap_or_default()).map_err(|e| e.to_string()))
        .collect::<R<Vec<_>>>()?;
    let again = chain_case(text(case, "description")?, &rosters)?;
    diff("", case, &again)
}

/// An invitation case: the outcome of parsing `roster` and checking it as the starting point
/// `sender` hands `receiver` in room `room` (PROTOCOL.md §4.7 step 3).
fn invitation_case(
    description: &str,
    room: &str,
    sender: &[u8; 32],
    receiver: (&str, &[u8; 32]),
    roster: &[u8],
) -> Value {
    let outcome = Roster::parse(roster).and_then(|r| {
        r.check_invitation(
            &proto_core::room_id_for_name(room),
            sender,
            receiver.0,
            receiver.1,
        )
    });
    json!({
        "description": description,
        "room": room,
        "sender": hx(sender),
        "receiver": receiver.0,
        "receiver_identity": hx(receiver.1),
        "roster": hx(roster),
        "expect": match outcome {
            Ok(()) => "accept".to_owned(),
            Err(e) => format!("reject:{}", e.name()),
        },
    })
}

/// `roster-invite.json`: rosters handed over in `Content::Roster`, taken as the receiver's
/// starting point or refused (PROTOCOL.md §4.7 step 3).
pub(super) fn gen_roster_invite() -> R<Value> {
    let family = proto_core::room_id_for_name("family");
    let spec = |room: [u8; 16], admins: &[&str], members: &[&str]| Spec {
        room_id: room,
        ..Spec::new(3, 1, [0x07; 32], admins, members)
    };
    let all = ["alice", "bob", "carol", "dave"];
    let listed = spec(family, &["alice"], &all).bytes()?;
    let dave = key("dave");
    let mut cases = Vec::new();
    let mut case = |d: &str, sender: &str, receiver_key: [u8; 32], roster: Vec<u8>, want: &str| {
        let c = invitation_case(d, "family", &key(sender), ("dave", &receiver_key), &roster);
        let ok = c["expect"] == want;
        cases.push(c);
        ensure(ok, || format!("{d}: not {want}"))
    };
    case(
        "alice, an admin, hands dave the roster that lists him",
        "alice",
        dave,
        listed.clone(),
        "accept",
    )?;
    case(
        "a first roster (version 0) as the invitation",
        "alice",
        dave,
        Spec {
            room_id: family,
            ..Spec::new(0, 0, [0; 32], &["alice"], &["alice", "dave"])
        }
        .bytes()?,
        "accept",
    )?;
    case(
        "another room's roster",
        "alice",
        dave,
        spec(proto_core::room_id_for_name("other"), &["alice"], &all).bytes()?,
        "reject:WrongRoom",
    )?;
    case(
        "alice's roster, handed over by bob",
        "bob",
        dave,
        listed.clone(),
        "reject:NotFromSender",
    )?;
    case(
        "signed and handed over by bob, who is not an admin",
        "bob",
        dave,
        spec(family, &["alice"], &all).by("bob").bytes()?,
        "reject:SignerNotAdmin",
    )?;
    case(
        "a roster that does not list dave",
        "alice",
        dave,
        spec(family, &["alice"], &["alice", "bob", "carol"]).bytes()?,
        "reject:NotListed",
    )?;
    case(
        "dave listed with another key (the server substituted his)",
        "alice",
        key("mallory"),
        listed.clone(),
        "reject:NotListed",
    )?;
    let mut forged = listed;
    if let Some(last) = forged.last_mut() {
        *last ^= 1;
    }
    case(
        "a signature that does not verify",
        "alice",
        dave,
        forged,
        "reject:BadSignature",
    )?;
    Ok(json!({
        "description": "Rosters handed over in Content::Roster (PROTOCOL.md §4.7 step 3): parse the roster, then check it for room_id_for_name(room), handed over by sender (IKs) to receiver with receiver_identity (IKs): the room (WrongRoom), signed by the sender (NotFromSender), the sender an admin in it (SignerNotAdmin), listing the receiver with that key (NotListed). expect is accept or reject:<RosterError>.",
        "cases": cases,
    }))
}

pub(super) fn check_roster_invite(case: &Value) -> R<()> {
    let roster = hex::decode(text(case, "roster")?).map_err(|e| e.to_string())?;
    let again = invitation_case(
        text(case, "description")?,
        text(case, "room")?,
        &arr::<32>(case, "sender")?,
        (
            text(case, "receiver")?,
            &arr::<32>(case, "receiver_identity")?,
        ),
        &roster,
    );
    diff("", case, &again)
}
