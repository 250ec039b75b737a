//! The people layer: what is addressed to a person rather than to a document.
//!
//! - [`notices`]: notifications derived from durable typed changes, delivered to each person's
//!   inbox in the store with the change's own group commit; the wake-up of open streams.
//! - [`online`]: who is online on each document, from authenticated sockets (not awareness).
//! - [`http`]: `/api/me/notifications`, `/api/me/events`, `/api/presence`, `/api/people`.
//! - [`Names`] (here): the people directory's cache: the name each `sub` signed in with, learnt
//!   from verified tokens and written to the store once per change.

pub mod http;
pub mod notices;
pub mod online;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tandem_storage::DocStore;

use crate::auth::Principal;
use crate::tracker::Tracker;

/// Longest display name kept, in characters (a token's `name` claim is the identity provider's
/// to choose; the directory shows it, it does not store essays).
pub const NAME_CHARS_MAX: usize = 100;

/// The directory as this node knows it: every name it has seen or read, so a sentence like "Ada
/// assigned you" needs no store read, and a token seen again writes nothing.
#[derive(Default)]
pub struct Names {
    known: Mutex<HashMap<String, String>>,
}

impl Names {
    /// Notes the name a verified caller signed in with; the store is written (off the async
    /// workers) only when it is new or changed.
    pub fn seen(&self, store: &Arc<dyn DocStore>, tasks: &Tracker, principal: &Principal) {
        let name: String = principal
            .name
            .as_deref()
            .unwrap_or(&principal.sub)
            .chars()
            .take(NAME_CHARS_MAX)
            .collect();
        {
            let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            match known.get(&principal.sub) {
                Some(old) if *old == name => return,
                // A token without a name never overwrites a name learnt from one that had it.
                Some(_) if principal.name.is_none() => return,
                _ => {}
            }
            known.insert(principal.sub.clone(), name.clone());
        }
        let (store, sub) = (Arc::clone(store), principal.sub.clone());
        // Tracked: shutdown waits for the write before its final flush.
        let token = tasks.track();
        let write = move || {
            let _token = token;
            if let Err(e) = store.remember(&sub, &name) {
                tracing::warn!(error = %e, "people directory: could not record a name");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(write)),
            Err(_) => write(),
        }
    }

    /// The name to show for `sub`: the one it signed in with, or the `sub` itself.
    pub fn name_of(&self, sub: &str) -> String {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(sub).cloned().unwrap_or_else(|| sub.to_string())
    }

    /// Fills the cache from the store (at start, so names survive restarts).
    pub fn load(&self, store: &dyn DocStore) {
        let mut after = String::new();
        loop {
            let page = match store.people(&after, 1000) {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "people directory: could not read names");
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            after = last.sub.clone();
            let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
            for p in page {
                known.entry(p.sub).or_insert(p.name);
            }
        }
    }
}

/// A stable colour per person (`#rrggbb`), the same in every client: a hue from the `sub`'s hash
/// at fixed saturation and lightness, readable on white and as a cursor.
pub fn color_of(sub: &str) -> String {
    // FNV-1a: tiny, stable across platforms and versions (std's hasher is neither promised).
    let hash = sub.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let sector = hash % 360 / 60;
    let hue = f64::from(u32::try_from(hash % 360).unwrap_or(0));
    let (s, l) = (0.65, 0.42);
    let c = (1.0 - (2.0 * l - 1.0_f64).abs()) * s;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match sector {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    // Clamped to 0..=255 first, so the conversion cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_differ() {
        assert_eq!(color_of("ada"), color_of("ada"));
        assert_ne!(color_of("ada"), color_of("bob"));
        let c = color_of("auth0|42");
        assert!(c.len() == 7 && c.starts_with('#'), "{c}");
    }

    #[test]
    fn names_come_from_tokens_and_a_nameless_token_keeps_the_name() {
        let store: Arc<dyn DocStore> = Arc::new(tandem_storage::memory::MemStore::new(
            tandem_storage::StoreConfig::default(),
        ));
        let names = Names::default();
        let mut ada = Principal::dev("ada");
        ada.name = Some("Ada Lovelace".into());
        names.seen(&store, &Tracker::default(), &ada);
        names.seen(&store, &Tracker::default(), &Principal::dev("ada"));
        assert_eq!(names.name_of("ada"), "Ada Lovelace");
        assert_eq!(names.name_of("bob"), "bob");
        let fresh = Names::default();
        fresh.load(store.as_ref());
        assert_eq!(fresh.name_of("ada"), "Ada Lovelace");
    }
}
