//! Presence: devices aggregate into one status per user (online > away > offline, across
//! replicas); changes are announced to the user's contacts who may see them; offline comes
//! after a grace period (at once on sign-out), and a sweep catches users whose replica died.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Deps, time::Timestamp, views::PresenceView};
use crate::{
    clock::SharedClock,
    error::{AppError, AppResult},
    fanout::Fanout,
    shared_state::{LiveState, PresenceStatus, SharedState},
    storage::{
        Storage,
        models::{PresenceSharing, UserRecord},
    },
};

/// How much of a user's presence a viewer gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Visibility {
    Full,
    /// Looks offline, nothing else (blocks, `presenceSharing: nobody`).
    Masked,
    /// Friends only, and the viewer is not one.
    Forbidden,
}

pub struct PresenceService {
    storage: Arc<dyn Storage>,
    shared: SharedState,
    fanout: Fanout,
    clock: SharedClock,
    grace: Duration,
    /// Per user, a counter of socket departures on this replica: a grace timer acts only if
    /// no later departure re-armed it.
    departures: Mutex<HashMap<Uuid, u64>>,
}

impl PresenceService {
    /// Offline is announced `grace` after a user's last device went.
    pub fn new(deps: &Deps, grace: Duration) -> Self {
        Self {
            storage: deps.storage.clone(),
            shared: deps.shared.clone(),
            fanout: deps.fanout.clone(),
            clock: deps.clock.clone(),
            grace,
            departures: Mutex::default(),
        }
    }

    /// A socket authenticated (or sent a heartbeat): it counts, with `status`.
    pub async fn touch(&self, user: Uuid, socket: &str, status: PresenceStatus) {
        if let Err(err) = self.shared.presence.touch(user, socket, status).await {
            tracing::warn!(error = %err, "presence not recorded");
            return;
        }
        self.settle(user).await;
    }

    /// `user`'s audience for each of `users` (see [`Self::apply_audience_change`]).
    pub async fn audiences(&self, users: &[Uuid]) -> Vec<BTreeSet<Uuid>> {
        let mut audiences = Vec::with_capacity(users.len());
        for user in users {
            let audience = match self.storage.user_by_id(*user).await {
                Ok(Some(record)) => self.audience(&record).await.unwrap_or_default(),
                _ => Vec::new(),
            };
            audiences.push(audience.into_iter().collect());
        }
        audiences
    }

    /// After a block, an unfollow or a settings change: whoever lost sight of one of `users`
    /// sees them offline now, whoever gained it sees their current state.
    pub async fn apply_audience_change(&self, users: &[Uuid], before: Vec<BTreeSet<Uuid>>) {
        let after = self.audiences(users).await;
        for ((user, before), after) in users.iter().zip(before).zip(after) {
            let lost: Vec<Uuid> = before.difference(&after).copied().collect();
            let gained: Vec<Uuid> = after.difference(&before).copied().collect();
            let hidden = PresenceView {
                user_id: *user,
                status: PresenceStatus::Offline,
                last_activity: None,
                last_seen_at: None,
            };
            self.fanout.presence_changed(&hidden, &lost).await;
            if gained.is_empty() {
                continue;
            }
            if let Ok(Some((view, _))) = self.views_of(*user, &[*user], &[], &[]).await.map(|mut v| v.pop()) {
                self.fanout.presence_changed(&self.as_seen_by_others(*user, view).await, &gained).await;
            }
        }
    }

    /// A user's own view, trimmed to what others may see (`showLastSeen`).
    async fn as_seen_by_others(&self, user: Uuid, view: PresenceView) -> PresenceView {
        let shows = matches!(self.storage.user_by_id(user).await, Ok(Some(r)) if r.show_last_seen);
        if shows || view.status != PresenceStatus::Offline {
            return PresenceView { last_seen_at: view.last_seen_at.filter(|_| shows), ..view };
        }
        PresenceView { last_activity: None, last_seen_at: None, ..view }
    }

    /// A socket is gone. Offline is announced once no socket is left, after the grace
    /// period (none when `signed_out`).
    pub async fn socket_gone(self: &Arc<Self>, user: Uuid, socket: &str, signed_out: bool) {
        if let Err(err) = self.shared.presence.remove(user, socket).await {
            tracing::warn!(error = %err, "presence not updated on disconnect");
        }
        if signed_out || self.grace.is_zero() {
            self.settle_now(user).await;
            return;
        }
        // Each disconnect arms a timer; only the latest one for the user announces.
        let departure = {
            let mut departures = crate::sync::lock(&self.departures);
            let counter = departures.entry(user).or_insert(0);
            *counter += 1;
            *counter
        };
        // By the app clock, from this moment (not from when the task first runs).
        let deadline = self.clock.now_ms() + i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let service = self.clone();
        tokio::spawn(async move {
            service.clock.sleep_until(deadline).await;
            let latest = {
                let mut departures = crate::sync::lock(&service.departures);
                let latest = departures.get(&user) == Some(&departure);
                if latest {
                    departures.remove(&user);
                }
                latest
            };
            if latest {
                service.settle_now(user).await;
            }
        });
    }

    /// Announces `user`'s aggregate status if it differs from the last one announced; an
    /// offline announcement waits until the last device has been gone for the grace period
    /// (by the clock: this is the sweep's path; grace timers already waited).
    pub async fn settle(&self, user: Uuid) {
        if let Err(err) = self.try_settle(user, true).await {
            tracing::warn!(error = %err, %user, "presence not settled");
        }
    }

    /// Like [`Self::settle`], without the grace check (sign-out, or a grace timer).
    pub async fn settle_now(&self, user: Uuid) {
        if let Err(err) = self.try_settle(user, false).await {
            tracing::warn!(error = %err, %user, "presence not settled");
        }
    }

    async fn try_settle(&self, user: Uuid, grace: bool) -> AppResult<()> {
        let live = self.live(&[user]).await?.remove(0);
        if grace && live.status == PresenceStatus::Offline && live.announced != PresenceStatus::Offline {
            let gone_for = self.clock.now_ms() - live.last_activity_ms.unwrap_or(0);
            if gone_for < self.grace.as_millis() as i64 {
                return Ok(());
            }
        }
        let before = self.shared.presence.announce(user, live.status).await.map_err(internal)?;
        if before == live.status {
            return Ok(());
        }
        let Some(record) = self.storage.user_by_id(user).await? else { return Ok(()) };
        let last_seen = if live.status == PresenceStatus::Offline {
            let at =
                live.last_activity_ms.and_then(DateTime::from_timestamp_millis).unwrap_or_else(|| self.clock.now());
            self.storage.set_last_seen(user, at).await?;
            Some(at)
        } else {
            record.last_seen_at
        };
        let audience = self.audience(&record).await?;
        let hide_times = live.status == PresenceStatus::Offline && !record.show_last_seen;
        let view = PresenceView {
            user_id: user,
            status: live.status,
            last_activity: live
                .last_activity_ms
                .and_then(DateTime::from_timestamp_millis)
                .map(Timestamp)
                .filter(|_| !hide_times),
            last_seen_at: last_seen.filter(|_| record.show_last_seen).map(Timestamp),
        };
        self.fanout.presence_changed(&view, &audience).await;
        Ok(())
    }

    /// Who hears about `user`'s presence: friends and direct peers, minus blocks, narrowed
    /// by the user's `presenceSharing`.
    async fn audience(&self, user: &UserRecord) -> AppResult<Vec<Uuid>> {
        let contacts = self.storage.contacts(user.id).await?;
        let blocked: BTreeSet<Uuid> = contacts.blocked_either.iter().copied().collect();
        let mut audience: BTreeSet<Uuid> = match user.presence_sharing {
            PresenceSharing::Nobody => BTreeSet::new(),
            PresenceSharing::Friends => contacts.friends.iter().copied().collect(),
            PresenceSharing::Everyone => contacts.friends.iter().chain(&contacts.direct_peers).copied().collect(),
        };
        audience.retain(|u| !blocked.contains(u) && *u != user.id);
        Ok(audience.into_iter().collect())
    }

    /// Users announced present whose devices are all gone (their replica died): offline now.
    pub async fn sweep(&self) {
        match self.shared.presence.announced_present().await {
            Ok(users) => {
                metrics::gauge!("parley_users_online").set(users.len() as f64);
                for user in users {
                    self.settle(user).await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "presence sweep skipped"),
        }
    }

    /// `presence:bulk`: every contact whose presence `viewer` may see.
    pub async fn visible_contacts(&self, viewer: Uuid) -> AppResult<Vec<PresenceView>> {
        let contacts = self.storage.contacts(viewer).await?;
        let ids: BTreeSet<Uuid> = contacts.friends.iter().chain(&contacts.direct_peers).copied().collect();
        let ids: Vec<Uuid> = ids.into_iter().filter(|id| !contacts.blocked_either.contains(id)).collect();
        let views = self.views_of(viewer, &ids, &contacts.friends, &contacts.blocked_either).await?;
        Ok(views
            .into_iter()
            .filter_map(|(view, visibility)| (visibility == Visibility::Full).then_some(view))
            .collect())
    }

    /// One user's presence for `viewer`: 403 when they share with friends only.
    pub async fn view(&self, viewer: Uuid, target: Uuid) -> AppResult<PresenceView> {
        let relation = self.storage.relationship(viewer, target).await?;
        let friends = if relation.is_friend() { vec![target] } else { Vec::new() };
        let blocked = if relation.blocking || relation.blocked_by { vec![target] } else { Vec::new() };
        let (view, visibility) =
            self.views_of(viewer, &[target], &friends, &blocked).await?.pop().ok_or(AppError::NotFound("user"))?;
        match visibility {
            Visibility::Forbidden => Err(AppError::Forbidden("this user shares presence with friends only")),
            _ => Ok(view),
        }
    }

    /// Many users' presence for `viewer` (unknown ids left out; hidden ones look offline).
    pub async fn views(&self, viewer: Uuid, targets: &[Uuid]) -> AppResult<Vec<PresenceView>> {
        let contacts = self.storage.contacts(viewer).await?;
        let views = self.views_of(viewer, targets, &contacts.friends, &contacts.blocked_either).await?;
        Ok(views.into_iter().map(|(view, _)| view).collect())
    }

    async fn views_of(
        &self,
        viewer: Uuid,
        targets: &[Uuid],
        friends: &[Uuid],
        blocked: &[Uuid],
    ) -> AppResult<Vec<(PresenceView, Visibility)>> {
        let mut records = self.storage.users_by_ids(targets).await?;
        records.sort_by_key(|r| targets.iter().position(|t| *t == r.id));
        let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
        let states = self.live(&ids).await?;
        Ok(records
            .iter()
            .zip(states)
            .map(|(record, live)| {
                let visibility = if record.id == viewer {
                    Visibility::Full
                } else if blocked.contains(&record.id) {
                    Visibility::Masked
                } else {
                    match record.presence_sharing {
                        PresenceSharing::Everyone => Visibility::Full,
                        PresenceSharing::Friends if friends.contains(&record.id) => Visibility::Full,
                        PresenceSharing::Friends => Visibility::Forbidden,
                        PresenceSharing::Nobody => Visibility::Masked,
                    }
                };
                (present(record, live, visibility, viewer), visibility)
            })
            .collect())
    }

    async fn live(&self, users: &[Uuid]) -> AppResult<Vec<LiveState>> {
        self.shared.presence.states(users).await.map_err(internal)
    }
}

fn present(record: &UserRecord, live: LiveState, visibility: Visibility, viewer: Uuid) -> PresenceView {
    if visibility != Visibility::Full {
        return PresenceView {
            user_id: record.id,
            status: PresenceStatus::Offline,
            last_activity: None,
            last_seen_at: None,
        };
    }
    let own = record.id == viewer;
    let last_seen_visible = own || record.show_last_seen;
    let status = live.visible_status();
    let last_activity = match status {
        PresenceStatus::Offline => record.last_seen_at.filter(|_| last_seen_visible),
        _ => live.last_activity_ms.and_then(DateTime::<Utc>::from_timestamp_millis),
    };
    PresenceView {
        user_id: record.id,
        status,
        last_activity: last_activity.map(Timestamp),
        last_seen_at: record.last_seen_at.filter(|_| own || record.show_last_seen).map(Timestamp),
    }
}

fn internal(err: crate::shared_state::StateError) -> AppError {
    AppError::Internal(err.into())
}
