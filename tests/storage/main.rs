//! The storage contract: every repository behaviour the application relies on, run against
//! SQLite always and PostgreSQL whenever it is reachable (always under CI), each test on a
//! fresh database. Test names read `sqlite::…` / `postgres::…` so the output shows both ran.

#[path = "../support/mod.rs"]
mod support;

mod contract;
mod conversations;
mod extras;
mod groups;
mod keys;
mod writer;

use std::sync::Arc;

use parley::storage::{Storage, postgres::PgStore, sqlite::SqliteStore};

/// A fresh store plus whatever keeps its database alive for the test.
pub struct Fixture {
    pub store: Arc<dyn Storage>,
    _keep: Box<dyn std::any::Any + Send>,
}

pub async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    let store = SqliteStore::connect(&url).await.expect("open SQLite");
    Fixture { store: Arc::new(store), _keep: Box::new(dir) }
}

pub async fn postgres() -> Option<Fixture> {
    if !support::postgres_available().await {
        return None;
    }
    let db = support::PgDatabase::create().await;
    let store = PgStore::connect(&db.url).await.expect("open PostgreSQL");
    Some(Fixture { store: Arc::new(store), _keep: Box::new(db) })
}

/// Declares each contract test once per backend.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = crate::sqlite().await;
                    crate::$name(fixture.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(fixture) = crate::postgres().await {
                        crate::$name(fixture.store.clone()).await;
                    }
                }
            )*
        }
    };
}

use contract::*;
use conversations::*;
use extras::*;
use groups::*;
use keys::*;
use writer::*;

contract_tests!(
    replies_and_mentions_are_stored_with_the_message,
    concurrent_reactions_count_exactly_and_the_emoji_limit_holds,
    pins_stop_at_the_limit_under_concurrency,
    search_matches_word_prefixes_in_the_given_conversations,
    search_scope_is_the_users_live_conversations_with_their_floors,
    a_direct_conversation_is_unique_per_pair,
    groups_have_one_owner_and_refuse_unknown_members,
    messages_get_consecutive_seqs_and_bump_the_conversation,
    a_retried_client_message_id_returns_the_original,
    concurrent_senders_get_gapless_unique_seqs,
    concurrent_retries_store_one_message,
    a_batch_numbers_per_conversation_and_answers_every_entry,
    send_checks_read_members_and_blocks_in_bulk,
    cached_send_checks_see_every_change_to_members_blocks_and_subscriptions,
    delivered_marks_are_written_in_bulk_and_only_forward,
    unmarking_moves_the_watermark_back_to_the_cutoff_only,
    settling_moves_the_watermark_forward_to_the_cutoff_only,
    history_pages_respect_the_floor_and_direction,
    edits_and_tombstones,
    the_last_owner_leaving_hands_over_and_the_last_member_deletes,
    newcomers_start_with_history_delivered_and_read,
    the_delivered_watermark_only_moves_forward,
    lists_page_by_activity_and_count_unread,
    the_read_watermark_only_moves_forward_and_counts_stay_exact,
    reports_its_backend_and_answers_pings,
    created_users_read_back_identically,
    emails_and_usernames_are_unique,
    search_matches_prefixes_in_byte_order_and_respects_blocks,
    profile_and_settings_patches_touch_only_given_fields,
    last_seen_is_stored,
    refresh_tokens_rotate_exactly_once,
    revoking_a_family_revokes_every_live_token_in_it,
    expired_refresh_tokens_are_purged,
    follows_are_idempotent_and_friends_are_mutual,
    blocking_drops_follows_both_ways_and_lists_newest_first,
    relationships_are_seen_from_the_viewer,
    a_patch_changes_only_the_fields_it_names,
    adds_stop_at_the_size_limit_even_when_concurrent,
    roles_change_and_ownership_moves_in_one_step,
    mute_is_kept_per_participant,
    invites_count_uses_and_stop_when_expired_used_up_or_revoked,
    a_device_has_one_active_key_and_rotation_replaces_it,
    concurrent_registrations_keep_the_device_limit,
    verifications_are_recorded_once_per_fingerprint,
    key_contacts_are_friends_and_conversation_partners,
    encrypted_messages_are_stored_untouched,
);
