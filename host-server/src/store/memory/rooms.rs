//! Rooms and members in memory.

use std::collections::BTreeMap;

use super::{MemoryStore, Room};
use crate::store::{AccountId, Invitation, Member, RoomId, RoomInfo, RoomStore, StoreError};

impl RoomStore for MemoryStore {
    fn create_room(&mut self, name: &str, admin: AccountId) -> Result<RoomId, StoreError> {
        if self.room_by_name(name).is_some() {
            return Err(StoreError::RoomTaken);
        }
        self.next_room += 1;
        let id = self.next_room;
        self.rooms.insert(
            id,
            Room {
                name: name.to_owned(),
                admin,
                members: Vec::new(),
                device_cursors: BTreeMap::new(),
                invited: Vec::new(),
                rosters: Vec::new(),
            },
        );
        self.add_member(id, admin)?;
        Ok(id)
    }

    fn room(&mut self, name: &str) -> Result<Option<RoomInfo>, StoreError> {
        let Some((id, room)) = self.room_by_name(name) else {
            return Ok(None);
        };
        let members = room
            .members
            .iter()
            .filter_map(|(a, _)| {
                self.accounts.get(a).map(|acc| Member {
                    id: *a,
                    username: acc.username.clone(),
                })
            })
            .collect();
        Ok(Some(RoomInfo {
            id,
            name: room.name.clone(),
            admin: room.admin,
            members,
        }))
    }

    fn add_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        let newest = self.next_message;
        if let Some(r) = self.rooms.get_mut(&room)
            && !r.members.iter().any(|(a, _)| *a == account)
        {
            r.members.push((account, newest));
        }
        Ok(())
    }

    fn remove_member(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.retain(|(a, _)| *a != account);
            r.device_cursors.retain(|(a, _), _| *a != account);
        }
        Ok(())
    }

    fn set_admin(&mut self, room: RoomId, account: AccountId) -> Result<(), StoreError> {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.admin = account;
        }
        Ok(())
    }

    fn delete_room(&mut self, room: RoomId) -> Result<(), StoreError> {
        self.rooms.remove(&room);
        self.messages.retain(|_, m| m.room != Some(room));
        Ok(())
    }

    fn rooms_of(&mut self, account: AccountId) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .rooms
            .values()
            .filter(|r| r.members.iter().any(|(a, _)| *a == account))
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    fn add_invitation(
        &mut self,
        room: RoomId,
        account: AccountId,
        inviter: AccountId,
        at: u64,
    ) -> Result<bool, StoreError> {
        let Some(r) = self.rooms.get_mut(&room) else {
            return Ok(false);
        };
        if r.invited.iter().any(|(a, _, _)| *a == account) {
            return Ok(false);
        }
        r.invited.push((account, inviter, at));
        Ok(true)
    }

    fn remove_invitation(&mut self, room: RoomId, account: AccountId) -> Result<bool, StoreError> {
        let Some(r) = self.rooms.get_mut(&room) else {
            return Ok(false);
        };
        let before = r.invited.len();
        r.invited.retain(|(a, _, _)| *a != account);
        Ok(r.invited.len() != before)
    }

    fn invitations_of(&mut self, account: AccountId) -> Result<Vec<Invitation>, StoreError> {
        let mut out: Vec<(u64, Invitation)> = Vec::new();
        for r in self.rooms.values() {
            for (a, inviter, at) in &r.invited {
                if *a == account
                    && let Some(from) = self.accounts.get(inviter)
                {
                    out.push((
                        *at,
                        Invitation {
                            room: r.name.clone(),
                            from: from.username.clone(),
                        },
                    ));
                }
            }
        }
        out.sort_by(|x, y| (x.0, &x.1.room).cmp(&(y.0, &y.1.room)));
        Ok(out.into_iter().map(|(_, i)| i).collect())
    }

    fn latest_roster(&mut self, room: RoomId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .rooms
            .get(&room)
            .and_then(|r| r.rosters.last().cloned()))
    }

    fn roster(&mut self, room: RoomId, version: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(i) = usize::try_from(version) else {
            return Ok(None);
        };
        Ok(self
            .rooms
            .get(&room)
            .and_then(|r| r.rosters.get(i).cloned()))
    }

    fn append_roster(
        &mut self,
        room: RoomId,
        version: u64,
        roster: &[u8],
    ) -> Result<bool, StoreError> {
        let Some(r) = self.rooms.get_mut(&room) else {
            return Ok(false);
        };
        if usize::try_from(version).ok() != Some(r.rosters.len()) {
            return Ok(false);
        }
        r.rosters.push(roster.to_vec());
        Ok(true)
    }
}
