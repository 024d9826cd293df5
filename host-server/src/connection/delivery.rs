//! Store-and-forward, the sender's side: accept a message once it is durable, wake its
//! recipients; acknowledgements and "delivered" receipts.
//!
//! Delivery is pulled from the store, never copied around in memory: a send only *wakes* the
//! recipient's live connections, and each one's delivery task ([`crate::hub::run_delivery`])
//! reads the queue after the last id it sent.

use proto_core::limits::MAX_BODY;
use proto_core::{ErrorCode, Message};

use super::rooms::member_room;
use super::{Connection, Refusal, Reply, confirmed};
use crate::store::{AccountId, AckOutcome, NewMessage};

fn accepted(client_id: u64, server_id: u64) -> Reply {
    Reply::msg(&Message::Accepted {
        client_id,
        server_id,
    })
}

impl Connection {
    /// The logged-in sender of `body`, if the body is within [`MAX_BODY`] and the sender within
    /// its send rate.
    fn sender(&self, body: &[u8]) -> Result<(AccountId, String), Refusal> {
        let me = self.logged_in()?;
        if body.len() > MAX_BODY {
            return Err(Refusal::new(
                ErrorCode::TOO_LARGE,
                "message body is too large",
            ));
        }
        self.rate(&self.shared.limits.sends, &me.0, "messages sent")?;
        Ok(me)
    }

    /// `SendToUser`: commit, then answer `Accepted`, then wake the recipient.
    pub(super) async fn send_to_user(
        &mut self,
        to: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let (me, my_name) = self.sender(body)?;
        let to = crate::auth::normalize_username(to).map_err(|_| Refusal::no_such_user())?;
        let now = self.shared.clock.now();
        let message = NewMessage {
            recipient: None,
            room: None,
            sender_id: me,
            sender: my_name,
            sent_at: now,
            expires_at: now.saturating_add(self.shared.config.message_ttl),
            body: body.to_vec(),
        };
        let quota = self.shared.config.recipient_quota;
        let sender_quota = self.shared.config.sender_quota;
        let (recipient, server_id) = self
            .db(move |s| {
                let recipient =
                    confirmed(s.account_by_username(&to)?).ok_or_else(Refusal::no_such_user)?;
                if s.pending_direct_count_from(recipient.id, me)? >= sender_quota {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "too many of your messages are waiting for this recipient; try again \
                         once they have read some",
                    ));
                }
                if s.pending_direct_count(recipient.id)? >= quota {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "the recipient's queue is full; try again later",
                    ));
                }
                let id = s.insert_message(&NewMessage {
                    recipient: Some(recipient.id),
                    ..message
                })?;
                Ok((recipient.id, id))
            })
            .await?;
        self.shared.hub.wake(recipient);
        Ok(accepted(client_id, server_id))
    }

    /// `SendToRoom`: stored once; each other member's delivery task picks it up.
    pub(super) async fn send_to_room(
        &mut self,
        room: &str,
        client_id: u64,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let (me, my_name) = self.sender(body)?;
        let room = room.to_owned();
        let now = self.shared.clock.now();
        let ttl = self.shared.config.message_ttl;
        let quota = self.shared.config.recipient_quota;
        let body = body.to_vec();
        let (members, server_id) = self
            .db(move |s| {
                let info = member_room(s, &room, me)?;
                if s.pending_room_count(info.id)? >= quota {
                    return Err(Refusal::new(
                        ErrorCode::QUOTA_FULL,
                        "the room's queue is full; try again later",
                    ));
                }
                let id = s.insert_message(&NewMessage {
                    recipient: None,
                    room: Some(info.id),
                    sender_id: me,
                    sender: my_name,
                    sent_at: now,
                    expires_at: now.saturating_add(ttl),
                    body,
                })?;
                Ok((info.members, id))
            })
            .await?;
        for m in members {
            if m.id != me {
                self.shared.hub.wake(m.id);
            }
        }
        Ok(accepted(client_id, server_id))
    }

    /// `Ack`: delete (or move the room cursor), then tell the sender "delivered".
    ///
    /// No reply on success; an unknown id is ignored, so acknowledging twice is harmless.
    pub(super) async fn ack(&mut self, server_id: u64) -> Result<Reply, Refusal> {
        let (me, my_name) = self.logged_in()?;
        let shared = self.shared.clone();
        let name = my_name.clone();
        let expires = self
            .shared
            .clock
            .now()
            .saturating_add(self.shared.config.message_ttl);
        let outcome = self
            .db(move |s| {
                let outcome = s.ack(me, server_id)?;
                if let AckOutcome::Direct { sender_id } = outcome
                    && !shared.hub.is_online(sender_id)
                {
                    s.add_receipt(sender_id, server_id, &name, expires)?;
                }
                Ok(outcome)
            })
            .await?;
        match outcome {
            AckOutcome::Direct { sender_id } | AckOutcome::Room { sender_id } => {
                // If the receipt was kept for an offline sender who has just logged in, the
                // wake makes their delivery task pick it up.
                self.shared.hub.wake(sender_id);
                self.shared.hub.push(
                    sender_id,
                    &Message::Delivered {
                        server_id,
                        to: &my_name,
                    },
                );
            }
            AckOutcome::Unknown => {}
        }
        Ok(Reply::none())
    }
}
