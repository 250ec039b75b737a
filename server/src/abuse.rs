//! Rate limits against floods: a token bucket per socket, fixed windows per client IP, and
//! counts of what is open per key (sockets per user, event streams per user and per address). The numbers live in [`crate::config::Limits`].

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Messages a socket may send: `rate` per second on average, bursts up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    rate_per_s: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_s: u32, burst: u32, now: Instant) -> Self {
        Self::with_rate(f64::from(rate_per_s), burst, now)
    }

    pub fn per_minute(rate_per_min: u32, burst: u32, now: Instant) -> Self {
        Self::with_rate(f64::from(rate_per_min) / 60.0, burst, now)
    }

    fn with_rate(rate_per_s: f64, burst: u32, now: Instant) -> Self {
        TokenBucket {
            burst: f64::from(burst.max(1)),
            rate_per_s,
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes `n` tokens if there are enough.
    pub fn try_take(&mut self, n: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(self.burst);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// Keys tracked at once per window; beyond it the oldest windows are dropped first. Bounds the
/// memory an attacker cycling through source addresses can make us hold.
const WINDOW_KEYS_MAX: usize = 100_000;

/// At most `limit` events per key per `window` (a fixed window: simple, and its worst case of
/// twice the limit across a window boundary is acceptable for flood protection).
#[derive(Debug)]
pub struct WindowLimiter<K> {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq + Clone> WindowLimiter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        WindowLimiter {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event; false when the key is over its limit (the event is not counted).
    pub fn allow(&self, key: &K, now: Instant) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= WINDOW_KEYS_MAX {
            let window = self.window;
            counts.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        }
        let entry = counts.entry(key.clone()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// Open things per key (sockets per user, event streams per user or per address); a [`Slot`]
/// gives its place back when dropped. Keys at zero are removed, so memory follows what is open.
#[derive(Debug)]
pub struct OpenSlots<K: Hash + Eq> {
    open: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq> Default for OpenSlots<K> {
    fn default() -> Self {
        OpenSlots {
            open: Mutex::new(HashMap::new()),
        }
    }
}

pub struct Slot<K: Hash + Eq> {
    owner: Arc<OpenSlots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> OpenSlots<K> {
    /// A place for `key` if it holds fewer than `limit`.
    pub fn try_take(self: &Arc<Self>, key: K, limit: usize) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: Arc::clone(self),
            key,
        })
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The per-IP limiters of one server.
#[derive(Debug)]
pub struct IpLimits {
    pub connections: WindowLimiter<IpAddr>,
    pub auth_failures: WindowLimiter<IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // A bucket allows its burst at once, then exactly its rate.
    #[test]
    fn token_bucket_edge() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        for _ in 0..5 {
            assert!(b.try_take(1, t0));
        }
        assert!(!b.try_take(1, t0));
        assert!(b.try_take(1, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(1, t0 + Duration::from_millis(100)));
    }

    // The limit-th event of a window passes, the next is refused, and a new window starts over.
    #[test]
    fn window_edge() {
        let t0 = Instant::now();
        let w = WindowLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(w.allow(&ip, t0) && w.allow(&ip, t0) && w.allow(&ip, t0));
        assert!(!w.allow(&ip, t0));
        assert!(w.allow(&other, t0));
        assert!(w.allow(&ip, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn slots_are_returned() {
        let users = Arc::new(OpenSlots::default());
        let a = users.try_take("ada", 2).expect("first");
        let _b = users.try_take("ada", 2).expect("second");
        assert!(users.try_take("ada", 2).is_none());
        assert!(users.try_take("bob", 2).is_some());
        drop(a);
        assert!(users.try_take("ada", 2).is_some());
        assert!(
            users.try_take("eve", 0).is_none(),
            "a limit of zero refuses"
        );
        assert_eq!(
            users.open.lock().expect("lock").len(),
            1,
            "only ada holds places"
        );
    }
}
