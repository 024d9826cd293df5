//! The server stores ciphertext only: a conversation encrypted with proto-core's PQXDH and
//! Double Ratchet, in the clients' envelopes, (and a room message sealed with ChaCha20-Poly1305) runs through a real
//! server, then the SQLite file, its WAL and shared-memory file (under PostgreSQL: the test's
//! database files and the WAL written meanwhile) are searched for every plaintext, every
//! private key, the password and the raw session tokens. None may appear.
// Helpers outside #[test] functions fail the test on any surprise, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use common::*;
use host_server::client::Client;
use proto_core::{
    Envelope, KEM_HEADER_LEN, KemPrekeyPair, KemPrekeyPublic, List, Message, OneTimePrekeyPublic,
    PREKEY_HEADER_LEN, RATCHET_OVERHEAD, RemoteBundle, Session, SignedPrekeyPair,
    SignedPrekeyPublic,
};

type Rng = getrandom::rand_core::UnwrapErr<getrandom::SysRng>;

fn rng() -> Rng {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

/// A direct message body as the clients send it: the envelope (with the pending prekey and KEM
/// headers until the first reply), then the ratchet message.
fn encrypt(session: &mut Session, plaintext: &[u8]) -> Vec<u8> {
    let mut out =
        vec![0u8; 1 + PREKEY_HEADER_LEN + KEM_HEADER_LEN + plaintext.len() + RATCHET_OVERHEAD];
    let prefix = Envelope::emit_prefix(
        session.pending_prekey_header(),
        session.pending_kem_header(),
        &mut out,
    )
    .unwrap();
    let n = session
        .encrypt(&mut rng(), plaintext, &mut out[prefix..])
        .unwrap();
    out.truncate(prefix + n);
    out
}

fn decrypt(session: &mut Session, body: &[u8]) -> Vec<u8> {
    let message = Envelope::parse(body).unwrap().message();
    let mut out = vec![0u8; message.len()];
    let n = session.decrypt(message, &mut out).unwrap();
    out.truncate(n);
    out
}

async fn deliver(c: &mut Client) -> (u64, Vec<u8>) {
    loop {
        let f = recv(c).await;
        if let Some(Message::Deliver {
            server_id, body, ..
        }) = f.msg()
        {
            return (server_id, body.to_vec());
        }
    }
}

async fn accepted(c: &mut Client) -> u64 {
    loop {
        let f = recv(c).await;
        match f.msg() {
            Some(Message::Accepted { server_id, .. }) => return server_id,
            Some(Message::Error { .. }) => panic!("{:?}", f.msg()),
            _ => {}
        }
    }
}

fn marker(label: &str) -> Vec<u8> {
    format!("{label} {}", hex::encode(&random32()[..8])).into_bytes()
}

fn db_bytes(ts: &TestServer, since: std::time::SystemTime, checkpoint: bool) -> Vec<u8> {
    #[cfg(feature = "postgres")]
    if let Some(db) = &ts.database {
        return postgres_bytes(db, since, checkpoint);
    }
    // Only PostgreSQL's files need them (SQLite's are read whole, as they are now).
    #[cfg(not(feature = "postgres"))]
    let _ = (since, checkpoint);
    let db = ts.db_path();
    let mut all = file_bytes(&db);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = db.clone().into_os_string();
        p.push(suffix);
        all.extend(file_bytes(std::path::Path::new(&p)));
    }
    all
}

#[cfg(feature = "postgres")]
/// Under PostgreSQL: this test's database files and the WAL segments written since it began
/// (the cluster's other databases belong to other tests).
fn postgres_bytes(db: &TestDatabase, since: std::time::SystemTime, checkpoint: bool) -> Vec<u8> {
    let mut client = db.client();
    if checkpoint {
        client.batch_execute("CHECKPOINT").unwrap();
    }
    let data: String = client
        .query_one("SELECT current_setting('data_directory')", &[])
        .unwrap()
        .get(0);
    let oid: u32 = client
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    let data = std::path::Path::new(&data);
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data.join("base").join(oid.to_string())).unwrap() {
        all.extend(file_bytes(&entry.unwrap().path()));
    }
    for entry in std::fs::read_dir(data.join("pg_wal")).unwrap() {
        let entry = entry.unwrap();
        let recent = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t + core::time::Duration::from_secs(2) >= since);
        if recent && entry.path().is_file() {
            all.extend(file_bytes(&entry.path()));
        }
    }
    all
}

#[test]
fn database_never_holds_plaintexts_or_private_keys() {
    let began = std::time::SystemTime::now();
    let ts = TestServer::start();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut must_be_stored: Vec<Vec<u8>> = Vec::new();
    run(async {
        let (mut a, alice) = register(&ts, "alice", 3).await;
        let (mut b, bob) = register(&ts, "bob", 3).await;
        for (who, u) in [("alice", &alice), ("bob", &bob)] {
            for (i, k) in u.device.private_byte_strings().into_iter().enumerate() {
                secrets.push((format!("{who} private key {i}"), k));
            }
            secrets.push((format!("{who} session token"), u.token.to_vec()));
            secrets.push((
                format!("{who} recovery code"),
                u.recovery[0].clone().into_bytes(),
            ));
        }
        secrets.push(("password".into(), PASSWORD.as_bytes().to_vec()));

        // Bob's device 1 publishes a signed prekey for its id and a KEM prekey (PQXDH).
        let spk_secret = random32();
        let spk =
            SignedPrekeyPair::from_secret_key_for_device(2, 1, &spk_secret, &bob.device.identity);
        let spk_public = spk.public();
        b.send(&Message::PublishSignedPrekey {
            prekey: proto_core::SignedPrekey {
                id: spk_public.id,
                key: proto_core::Key32(spk_public.public),
                signature: proto_core::Sig64(spk_public.signature),
            },
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut b).await);
        let kem_seed: [u8; 64] = [random32(), random32()].concat().try_into().unwrap();
        let kem = KemPrekeyPair::from_seed(7, &kem_seed);
        let kem_public = kem.public_for_device(1, &bob.device.identity);
        b.send(&Message::UploadKemPrekeys {
            last_resort: None,
            one_time: List::from_items(&[kem_public.to_wire()]),
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut b).await);
        secrets.push(("bob signed prekey v2".into(), spk_secret.to_vec()));
        secrets.push(("bob KEM prekey seed".into(), kem_seed.to_vec()));

        // Alice starts a session from Bob's device's bundle (PQXDH) and sends three messages.
        a.send(&Message::FetchKemBundle {
            username: "bob",
            device: 1,
        })
        .await
        .unwrap();
        let f = recv_reply(&mut a).await;
        let Some(Message::KemBundle { bundle, kem_prekey }) = f.msg() else {
            panic!("{:?}", f.msg())
        };
        let remote = RemoteBundle {
            identity: proto_core::IdentityPublicKey {
                signing: bundle.identity_sig.0,
                dh: bundle.identity_dh.0,
            },
            signed_prekey: SignedPrekeyPublic {
                id: bundle.signed_prekey.id,
                public: bundle.signed_prekey.key.0,
                signature: bundle.signed_prekey.signature.0,
            },
            one_time_prekey: bundle.one_time_prekey.map(|k| OneTimePrekeyPublic {
                id: k.id,
                public: k.key.0,
            }),
        };
        let kem_prekey = KemPrekeyPublic::from_bundle(kem_prekey.as_ref()).unwrap();
        let (mut alice_s, _, _) =
            Session::initiate_pqxdh(&mut rng(), &alice.device.identity, &remote, 1, &kem_prekey)
                .unwrap();
        let alice_lines: Vec<Vec<u8>> = (0..3)
            .map(|i| marker(&format!("alice says secret {i}")))
            .collect();
        for (i, line) in alice_lines.iter().enumerate() {
            let body = encrypt(&mut alice_s, line);
            assert_eq!(body[0], proto_core::ENVELOPE_PQ_PREKEY);
            a.send(&Message::SendToUser {
                to: "bob",
                client_id: i as u64,
                body: &body,
            })
            .await
            .unwrap();
            accepted(&mut a).await;
        }

        // Bob answers the prekey and KEM headers, decrypts, acknowledges, and replies.
        let mut bob_s: Option<Session> = None;
        for line in &alice_lines {
            let (id, body) = deliver(&mut b).await;
            let envelope = Envelope::parse(&body).unwrap();
            let s = bob_s.get_or_insert_with(|| {
                let h = envelope.prekey_header().unwrap();
                let opk = bob
                    .device
                    .opks
                    .iter()
                    .map(|(k, _)| k)
                    .find(|k| Some(k.id()) == h.one_time_prekey_id);
                let kem_header = envelope.kem_header().unwrap();
                Session::respond_pqxdh(&bob.device.identity, &spk, opk, &kem, h, &kem_header)
                    .unwrap()
            });
            assert_eq!(&decrypt(s, &body), line);
            b.send(&Message::Ack { server_id: id }).await.unwrap();
        }
        let bob_s = bob_s.as_mut().unwrap();
        let bob_lines: Vec<Vec<u8>> = (0..2)
            .map(|i| marker(&format!("bob replies secret {i}")))
            .collect();
        for (i, line) in bob_lines.iter().enumerate() {
            let body = encrypt(bob_s, line);
            b.send(&Message::SendToUser {
                to: "alice",
                client_id: i as u64,
                body: &body,
            })
            .await
            .unwrap();
            accepted(&mut b).await;
        }
        // Alice reads the first reply and leaves the second undelivered: it stays stored.
        let (id, body) = deliver(&mut a).await;
        assert_eq!(decrypt(&mut alice_s, &body), bob_lines[0]);
        a.send(&Message::Ack { server_id: id }).await.unwrap();
        let (_, body) = deliver(&mut a).await;
        must_be_stored.push(body);

        // A room message sealed under a random room key.
        a.send(&Message::CreateRoom {
            room: "secret-room",
        })
        .await
        .unwrap();
        expect_ok(&recv_reply(&mut a).await);
        invite_accepted(&mut a, &mut b, "secret-room", "bob").await;
        let room_key = random32();
        let room_line = marker("room plaintext");
        let cipher = ChaCha20Poly1305::new((&room_key).into());
        let nonce = [9u8; 12];
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), room_line.as_slice())
            .unwrap();
        a.send(&Message::SendToRoom {
            room: "secret-room",
            client_id: 9,
            body: &sealed,
        })
        .await
        .unwrap();
        accepted(&mut a).await;
        let (_, body) = deliver(&mut b).await;
        assert_eq!(
            cipher
                .decrypt(&Nonce::from(nonce), body.as_slice())
                .unwrap(),
            room_line
        );
        must_be_stored.push(body);
        secrets.push(("room key".into(), room_key.to_vec()));

        for (i, l) in alice_lines.iter().chain(&bob_lines).enumerate() {
            secrets.push((format!("plaintext {i}"), l.clone()));
        }
        secrets.push(("room plaintext".into(), room_line));
    });

    let check = |stage: &str, bytes: &[u8]| {
        assert!(bytes.len() > 4096, "{stage}: database files not found");
        for (what, s) in &secrets {
            assert!(
                !contains(bytes, s),
                "{stage}: the database holds the {what}"
            );
        }
    };
    // While running (most recent writes are in the WAL) ...
    let live = db_bytes(&ts, began, false);
    check("running", &live);
    // The search can find what is there: the undelivered ciphertexts are stored.
    for body in &must_be_stored {
        assert!(
            contains(&live, body),
            "the search failed to find a stored ciphertext"
        );
    }
    // ... and after a clean shutdown (WAL checkpointed into the main file).
    let mut ts = ts;
    if let Some(s) = ts.server.take() {
        s.shutdown();
    }
    check("stopped", &db_bytes(&ts, began, true));
}
