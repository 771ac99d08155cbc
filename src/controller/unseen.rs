//! Status writes the store has not shown yet.
//!
//! A reconcile compares each Release and Approval status it decided with the cached one
//! and writes only what differs. Under load the watch lags behind the writes, so the
//! cache still holds the old status when the next reconcile runs: without this memo the
//! same status would be written again, and each write's watch event would trigger yet
//! another reconcile. A fingerprint per written status (not the status itself) keeps the
//! memo small; an entry goes as soon as the store shows the status, or anything else
//! changes the object.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hasher},
    sync::Mutex,
};

use serde::Serialize;

/// (namespace, name) of an object.
type Key = (String, String);

/// What was written over which cached version.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Written {
    /// The resourceVersion of the cached object the write was decided from.
    over: Option<String>,
    /// A fingerprint of the status written.
    fingerprint: u64,
}

/// Statuses written since the cached version, by object.
#[derive(Default)]
pub struct Unseen {
    written: Mutex<HashMap<Key, Written>>,
}

/// Feeds serialized bytes into a hasher without building the string.
struct HashWriter(DefaultHasher);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fingerprint of a status: equal statuses have equal fingerprints.
pub fn fingerprint<S: Serialize>(status: &S) -> u64 {
    let mut writer = HashWriter(DefaultHasher::new());
    // Statuses are plain data: serializing them cannot fail, and if it did the
    // fingerprint would merely differ, causing one extra write.
    let _ = serde_json::to_writer(&mut writer, status);
    writer.0.finish()
}

impl Unseen {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Written>> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `status` must be written to the object cached at `cached_version` with a
    /// status of fingerprint `cached`: not if the cache already shows it, nor if this
    /// replica already wrote it over that same cached version.
    pub fn needs_write<S: Serialize>(
        &self,
        key: (&str, &str),
        cached_version: Option<&str>,
        cached: Option<u64>,
        status: &S,
    ) -> bool {
        let key = (key.0.to_owned(), key.1.to_owned());
        let pending = Written {
            over: cached_version.map(str::to_owned),
            fingerprint: fingerprint(status),
        };
        if cached == Some(pending.fingerprint) {
            self.lock().remove(&key);
            return false;
        }
        self.lock().get(&key) != Some(&pending)
    }

    /// Records that `status` was written over the cached version `cached_version`.
    pub fn wrote<S: Serialize>(&self, key: (&str, &str), cached_version: Option<&str>, status: &S) {
        self.lock().insert(
            (key.0.to_owned(), key.1.to_owned()),
            Written {
                over: cached_version.map(str::to_owned),
                fingerprint: fingerprint(status),
            },
        );
    }

    /// The store shows the object with a status of fingerprint `cached`: a write of that
    /// status is no longer in flight. (Without this, an entry would wait for the next
    /// decision about the object, and after a cold start 20,000 entries waited for a
    /// decision that nothing triggers.)
    pub fn seen(&self, key: (&str, &str), cached: Option<u64>) {
        let key = (key.0.to_owned(), key.1.to_owned());
        let mut written = self.lock();
        if written.get(&key).map(|w| Some(w.fingerprint)) == Some(cached) {
            written.remove(&key);
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: (&str, &str)) {
        self.lock().remove(&(key.0.to_owned(), key.1.to_owned()));
    }

    /// How many writes the store has not shown yet.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether every write has been seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: (&str, &str) = ("shop", "shop-1-0-0");

    #[test]
    fn a_write_is_forgotten_once_the_store_shows_it() {
        let unseen = Unseen::default();
        let new = "deploying".to_owned();
        unseen.wrote(KEY, Some("7"), &new);
        unseen.seen(KEY, Some(fingerprint(&"waiting".to_owned())));
        assert_eq!(
            unseen.len(),
            1,
            "the store shows another status: still in flight"
        );
        unseen.seen(KEY, Some(fingerprint(&new)));
        assert!(unseen.is_empty(), "the store shows what was written");
    }

    #[test]
    fn a_status_is_written_once_until_the_cache_moves() {
        let unseen = Unseen::default();
        let (old, new) = ("waiting".to_owned(), "deploying".to_owned());
        let old_print = Some(fingerprint(&old));
        assert!(unseen.needs_write(KEY, Some("7"), old_print, &new));
        unseen.wrote(KEY, Some("7"), &new);
        assert!(
            !unseen.needs_write(KEY, Some("7"), old_print, &new),
            "the cache still shows version 7: the write is in flight, not lost"
        );
        assert!(
            unseen.needs_write(KEY, Some("7"), old_print, &"healthy".to_owned()),
            "a different status is written"
        );
        assert!(
            unseen.needs_write(KEY, Some("9"), Some(fingerprint(&"failed")), &new),
            "someone else changed the object since: decide from what the cache shows"
        );
        assert!(!unseen.needs_write(KEY, Some("8"), Some(fingerprint(&new)), &new));
        assert!(unseen.is_empty(), "seen in the cache: the memo entry goes");
    }

    #[test]
    fn a_deleted_object_is_forgotten() {
        let unseen = Unseen::default();
        unseen.wrote(KEY, Some("7"), &"a");
        unseen.wrote(("shop", "other"), Some("3"), &"b");
        unseen.forget(("shop", "other"));
        assert_eq!(unseen.len(), 1);
    }
}
