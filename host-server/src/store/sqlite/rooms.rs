//! Rooms and members in SQLite.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, is_unique_violation, to_i64};
use crate::store::{AccountId, Invitation, Member, RoomId, RoomInfo, RoomStore, StoreError};

impl RoomStore for SqliteStore {
    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError> {
        let inserted = self
            .conn
            .prepare_cached("INSERT INTO rooms (name, admin_id) VALUES (?1, ?2)")?
            .execute(params![name, admin]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::RoomTaken),
            Err(e) => return Err(e.into()),
        }
        let id = self.conn.last_insert_rowid();
        self.add_member(id, admin)?;
        Ok(id)
    }

    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError> {
        let row = self
            .conn
            .prepare_cached("SELECT id, admin_id FROM rooms WHERE name = ?1")?
            .query_row([name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .optional()?;
        let Some((id, admin)) = row else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT a.id, a.username FROM room_members rm JOIN accounts a ON a.id = rm.account_id \
             WHERE rm.room_id = ?1 ORDER BY rm.rowid",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(Member {
                id: r.get(0)?,
                username: r.get(1)?,
            })
        })?;
        let mut members = Vec::new();
        for row in rows {
            members.push(row?);
        }
        Ok(Some(RoomInfo {
            id,
            name: name.to_owned(),
            admin,
            members,
        }))
    }

    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO room_members (room_id, account_id, cursor) \
                 VALUES (?1, ?2, (SELECT COALESCE(MAX(id), 0) FROM messages))",
            )?
            .execute(params![room, account])?;
        Ok(())
    }

    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM room_members WHERE room_id = ?1 AND account_id = ?2")?
            .execute(params![room, account])?;
        Ok(())
    }

    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE rooms SET admin_id = ?2 WHERE id = ?1")?
            .execute(params![room, account])?;
        Ok(())
    }

    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM messages WHERE room_id = ?1")?
            .execute([room])?;
        self.conn
            .prepare_cached("DELETE FROM rooms WHERE id = ?1")?
            .execute([room])?;
        Ok(())
    }

    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.name FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.account_id = ?1 ORDER BY r.name",
        )?;
        let rows = stmt.query_map([account], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    fn add_invitation(
        &mut self,
        room: RoomId,
        account: AccountId,
        inviter: AccountId,
        at: u64,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO room_invitations (room_id, account_id, inviter_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![room, account, inviter, to_i64(at)])?;
        Ok(n == 1)
    }

    fn remove_invitation(&mut self, room: RoomId, account: AccountId) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM room_invitations WHERE room_id = ?1 AND account_id = ?2")?
            .execute(params![room, account])?;
        Ok(n == 1)
    }

    fn invitations_of(&mut self, account: AccountId) -> Result<Vec<Invitation>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.name, a.username FROM room_invitations i \
             JOIN rooms r ON r.id = i.room_id JOIN accounts a ON a.id = i.inviter_id \
             WHERE i.account_id = ?1 ORDER BY i.created_at, r.name",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok(Invitation {
                room: r.get(0)?,
                from: r.get(1)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    fn latest_roster(&mut self, room: RoomId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT roster FROM room_rosters WHERE room_id = ?1 ORDER BY version DESC LIMIT 1",
            )?
            .query_row([room], |r| r.get(0))
            .optional()?)
    }

    fn roster(&mut self, room: RoomId, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        Ok(self
            .conn
            .prepare_cached("SELECT roster FROM room_rosters WHERE room_id = ?1 AND version = ?2")?
            .query_row(params![room, version], |r| r.get(0))
            .optional()?)
    }

    fn append_roster(
        &mut self,
        room: RoomId,
        version: u64,
        roster: &[u8],
    ) -> Result<bool, StoreError> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(false);
        };
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO room_rosters (room_id, version, roster) \
                 SELECT ?1, ?2, ?3 WHERE ?2 = \
                 (SELECT COALESCE(MAX(version) + 1, 0) FROM room_rosters WHERE room_id = ?1)",
            )?
            .execute(params![room, version, roster]);
        match inserted {
            Ok(n) => Ok(n == 1),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
