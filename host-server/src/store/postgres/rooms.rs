//! Rooms and members in PostgreSQL.

use super::{PgStore, to_i64};
use crate::store::{AccountId, Invitation, Member, RoomId, RoomInfo, RoomStore, StoreError};

impl RoomStore for PgStore {
    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError> {
        let row = self.row(
            "INSERT INTO rooms (name, admin_id) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[&name, &admin],
        )?;
        let Some(row) = row else {
            return Err(StoreError::RoomTaken);
        };
        let id: i64 = row.try_get(0)?;
        self.add_member(id, admin)?;
        Ok(id)
    }

    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError> {
        let Some(row) = self.row("SELECT id, admin_id FROM rooms WHERE name = $1", &[&name])?
        else {
            return Ok(None);
        };
        let (id, admin): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let rows = self.rows(
            "SELECT a.id, a.username FROM room_members rm JOIN accounts a ON a.id = rm.account_id \
             WHERE rm.room_id = $1 ORDER BY rm.seq",
            &[&id],
        )?;
        let mut members = Vec::with_capacity(rows.len());
        for r in rows {
            members.push(Member {
                id: r.try_get(0)?,
                username: r.try_get(1)?,
            });
        }
        Ok(Some(RoomInfo {
            id,
            name: name.to_owned(),
            admin,
            members,
        }))
    }

    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO room_members (room_id, account_id, cursor) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(id), 0) FROM messages)) \
             ON CONFLICT DO NOTHING",
            &[&room, &account],
        )?;
        Ok(())
    }

    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM room_members WHERE room_id = $1 AND account_id = $2",
            &[&room, &account],
        )?;
        Ok(())
    }

    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        self.exec(
            "UPDATE rooms SET admin_id = $2 WHERE id = $1",
            &[&room, &account],
        )?;
        Ok(())
    }

    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError> {
        self.exec("DELETE FROM messages WHERE room_id = $1", &[&room])?;
        self.exec("DELETE FROM rooms WHERE id = $1", &[&room])?;
        Ok(())
    }

    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let rows = self.rows(
            "SELECT r.name FROM room_members rm JOIN rooms r ON r.id = rm.room_id \
             WHERE rm.account_id = $1 ORDER BY r.name COLLATE \"C\"",
            &[&account],
        )?;
        rows.iter()
            .map(|r| Ok(r.try_get::<_, String>(0)?))
            .collect()
    }

    fn add_invitation(
        &mut self,
        room: RoomId,
        account: AccountId,
        inviter: AccountId,
        at: u64,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "INSERT INTO room_invitations (room_id, account_id, inviter_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&room, &account, &inviter, &to_i64(at)],
        )?;
        Ok(n == 1)
    }

    fn remove_invitation(&mut self, room: RoomId, account: AccountId) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM room_invitations WHERE room_id = $1 AND account_id = $2",
            &[&room, &account],
        )?;
        Ok(n == 1)
    }

    fn invitations_of(&mut self, account: AccountId) -> Result<Vec<Invitation>, StoreError> {
        let rows = self.rows(
            "SELECT r.name, a.username FROM room_invitations i \
             JOIN rooms r ON r.id = i.room_id JOIN accounts a ON a.id = i.inviter_id \
             WHERE i.account_id = $1 ORDER BY i.created_at, r.name COLLATE \"C\"",
            &[&account],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Invitation {
                    room: r.try_get(0)?,
                    from: r.try_get(1)?,
                })
            })
            .collect()
    }

    fn latest_roster(&mut self, room: RoomId) -> Result<Option<Vec<u8>>, StoreError> {
        self.row(
            "SELECT roster FROM room_rosters WHERE room_id = $1 ORDER BY version DESC LIMIT 1",
            &[&room],
        )?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(Into::into)
    }

    fn roster(&mut self, room: RoomId, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        self.row(
            "SELECT roster FROM room_rosters WHERE room_id = $1 AND version = $2",
            &[&room, &version],
        )?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(Into::into)
    }

    /// One statement: the version must be the next one as of this statement, and a concurrent
    /// insert of the same version (another node) makes this one wait for it, then do nothing.
    fn append_roster(
        &mut self,
        room: RoomId,
        version: u64,
        roster: &[u8],
    ) -> Result<bool, StoreError> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(false);
        };
        let n = self.exec(
            "INSERT INTO room_rosters (room_id, version, roster) \
             SELECT $1, $2, $3 WHERE $2 = \
             (SELECT COALESCE(MAX(version) + 1, 0) FROM room_rosters WHERE room_id = $1) \
             ON CONFLICT DO NOTHING",
            &[&room, &version, &roster],
        )?;
        Ok(n == 1)
    }
}
